"""Which files of a model an OMS signature covers, and how they compare (OMS v1.0, 6.1 and 6.2).

A model is a directory or a single file. The files are every regular file under the root
but the ignored ones: the git paths at the top (`.git`, `.github`, `.gitignore`,
`.gitattributes`), the paths the user or the signer named, and the signature file itself.
Symlinks and special files are refused, as `model_signing` does with allow_symlinks false.

A single-file model has one resource, named "." by `model_signing` and the Go client
(every release of both); the spec's text asks for the file name. Signatures name it ".",
so the verifiers in use accept them, and a verifier here accepts either name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from seedvault._text import MAX_LIST_ITEMS, cut, listing, quote
from seedvault.errors import IntegrityError, UnsafePathError, UsageError

# What `model_signing` ignores unless told not to (--ignore-git-paths is its default).
GIT_PATHS = (".gitignore", ".gitattributes", ".git", ".github")
SINGLE_FILE = "."  # the resource name of a single-file model, as model_signing writes it


def ignored(rel: str, ignore: Sequence[str]) -> bool:
    """Whether REL is one of the ignore entries or inside one (exact paths from the root)."""
    return any(rel == p or rel.startswith(p + "/") for p in ignore)


def clean_ignores(paths: Iterable[str]) -> list[str]:
    """The ignore entries that name something inside the model directory, normalized.

    Others (absolute, '..', '.', a Go signer's path relative to its working directory that
    names nothing here) cannot cover a model file the way model_signing applies them; they
    are dropped, so a file they would seem to cover counts as unsigned: an entry like '.'
    must not wave the whole directory through.
    """
    out = []
    for p in paths:
        parts = PurePosixPath(p).parts
        if parts and not PurePosixPath(p).is_absolute() and ".." not in parts and parts != (".",):
            out.append(PurePosixPath(*parts).as_posix())
    return out


def relative_ignores(model: Path, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Ignore paths given on a command line (absolute, or relative to the working directory)
    as paths relative to the model root; those outside the model are dropped, as
    model_signing drops them."""
    root = model.resolve() if model.is_dir() else model.resolve().parent
    out = []
    for p in paths:
        full = Path(p) if Path(p).is_absolute() else Path.cwd() / p
        try:
            rel = full.resolve().relative_to(root)
        except ValueError:
            continue
        if rel.parts:
            out.append(rel.as_posix())
    return out


def _inside(signature: Path | None, model: Path) -> str | None:
    """The signature's path relative to the model directory, when it lies inside it."""
    if signature is None or not model.is_dir():
        return None
    sig, root = signature.absolute(), model.absolute()
    return sig.relative_to(root).as_posix() if sig.is_relative_to(root) else None


def skipped(model: Path, ignore: Sequence[str], signature: Path | None) -> list[str]:
    """Everything left out of the signature, as OMS records it in serialization.ignore_paths:
    sorted, so the same model signed twice gives the same statement."""
    sig = _inside(signature, model)
    return sorted({*clean_ignores(ignore), *GIT_PATHS, *([sig] if sig else [])})


def _refuse_symlink(directory: Path, rel: str) -> None:
    if (directory / rel).is_symlink():
        raise UnsafePathError(f"{rel}: expected a regular file or directory, found a symlink "
                              "(OMS signatures are made with allow_symlinks false)")


def _check_name(rel: str) -> str:
    if any("\udc80" <= c <= "\udcff" for c in rel):  # os.walk's spelling of bytes that are not UTF-8
        raise UnsafePathError(f"{quote(rel)}: expected a file name in UTF-8, found other bytes "
                              "(an OMS bundle cannot name it exactly)")
    return rel


def model_files(model: Path, ignore: Sequence[str], signature: Path | None = None) -> list[str]:
    """The files an OMS signer or verifier covers under MODEL (a directory or one file),
    sorted by code point; a single-file model gives ["."]."""
    if model.is_symlink():
        raise UnsafePathError(f"{model}: expected a model directory or file, found a symlink")
    if model.is_file():
        return [SINGLE_FILE]
    if not model.is_dir():
        raise UsageError(f"{model}: expected a model directory or file, found "
                         + ("a special file" if model.exists() else "nothing"))
    skip = [*clean_ignores(ignore), *GIT_PATHS]
    sig_rel = _inside(signature, model)
    found = []
    for root, dirs, names in os.walk(model):
        base = Path(root).relative_to(model)
        dirs[:] = [d for d in dirs if not ignored((base / d).as_posix(), skip)]  # never descend into ignored trees
        for d in dirs:
            _refuse_symlink(model, (base / d).as_posix())
        for name in names:
            rel = (base / name).as_posix()
            if rel == sig_rel or ignored(rel, skip):
                continue
            _refuse_symlink(model, rel)
            if not (model / rel).is_file():
                raise UnsafePathError(f"{rel}: expected a regular file, found a special file")
            found.append(_check_name(rel))
    return sorted(found)


def file_of(model: Path, rel: str) -> Path:
    """Where resource REL of MODEL is on disk ("." is the model itself, when it is a file)."""
    return model if rel == SINGLE_FILE else model / rel


def single_file_name(expected: Mapping[str, str], model: Path) -> str:
    """The name a signature gives a single-file model: "." (model_signing, Go) or the file
    name (OMS v1.0's text); the file compares under whichever the signature used."""
    return model.name if model.name in expected and SINGLE_FILE not in expected else SINGLE_FILE


def compare(expected: Mapping[str, str], found: Mapping[str, str], model: Path, *,
            ignore_unsigned: bool = False) -> None:
    """Refuse any difference between signed and present files, naming each, digests in hex.

    With `ignore_unsigned`, files present but not signed are tolerated; every signed file
    must still be there with its digest (OMS v1.0, 8.5)."""
    problems = []
    missing = sorted(set(expected) - set(found))
    extra = [] if ignore_unsigned else sorted(set(found) - set(expected))
    if missing:
        problems.append(f"signed but missing: {listing(missing)}")
    if extra:
        problems.append(f"present but not signed: {listing(extra)}")
    changed = [p for p in expected if p in found and found[p] != expected[p]]
    for p in changed[:MAX_LIST_ITEMS]:
        problems.append(f"{cut(p)}: expected sha256 {expected[p]}, found {found[p]}")
    if len(changed) > MAX_LIST_ITEMS:
        problems.append(f"{len(changed) - MAX_LIST_ITEMS:,} more files with another sha256")
    if problems:
        first = changed[0] if changed else None
        raise IntegrityError(
            f"{model}: the files do not match the OMS signature; " + "; ".join(problems),
            path=first, expected=expected[first] if first else None, found=found[first] if first else None,
            hint="the model was changed after signing; do not use it"
            + ("" if ignore_unsigned or not extra else
               " (or, if the extra files are yours, pass --ignore-unsigned-files)"),
        )
