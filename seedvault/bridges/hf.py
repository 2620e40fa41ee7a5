"""Hugging Face bridge: a cached snapshot in as a signed release, a verified release out as a cache entry.

In (`import_hf`). The source is a repo id in the local Hugging Face cache, found offline
through huggingface_hub's own lookup (`snapshot_download(local_files_only=True)`), or a
snapshot directory of such a cache (what `snapshot_download` returns). The cache names
each LFS blob by the SHA-256 of its content and every other blob by its git blob id
(SHA-1 over b"blob <size>\\0" + content). Every file is copied into private staging while
hashed, and the import is refused if any content disagrees with its blob's name: a
corrupted cache is a real failure of that ecosystem, whose loaders never re-hash. Snapshot
entries are symlinks into ../../blobs; an entry that is not, or that resolves outside the
repo's cache folder (or outside the cache-wide shared blob store huggingface_hub 2 keeps
in <cache>/blobs), is refused. The staged copy, never the cache, is what gets published,
so the bytes checked are the bytes signed.

Origin comes from what Hugging Face knows: the repo URL and commit, the model card's
`license` mapped to SPDX (refused when there is no mapping, unless the caller names the
license), and `base_model`, recorded as lineage when the vault holds a release imported
from that repo.

Out (`export_hf`). A verified release becomes

    <cache>/models--{org}--{name}/blobs/<sha256>            the file contents, read-only
    <cache>/models--{org}--{name}/snapshots/<rev>/<path>    relative symlinks to ../../blobs/<sha256>
    <cache>/models--{org}--{name}/refs/main                 <rev> (and refs/<version> too)

so that huggingface_hub, offline, and loaders built on it (transformers' from_pretrained)
open it unchanged. `<rev>` is the first 40 hex characters of the manifest digest: the shape
of a git commit id, which huggingface_hub takes as a commit hash, and deterministic, so the
same release always lands in the same snapshot and two releases never share one. Every
blob is named by SHA-256, also for files Hugging Face would name by git SHA-1: its offline
loaders only follow the symlinks and never re-derive a blob's name (tests check it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.repocard import metadata_load

# Public as huggingface_hub.utils.validate_repo_id, but exported lazily, which mypy cannot see.
from huggingface_hub.utils._validators import validate_repo_id

# PyYAML comes with huggingface_hub and ships no type information.
from yaml import YAMLError  # type: ignore[import-untyped]

from seedvault import licenses
from seedvault._text import listing, quote
from seedvault.bridges._files import copy_hashed, write_atomic
from seedvault.client import Admitted, Client, Progress, left_out
from seedvault.errors import IntegrityError, NotFoundError, TransferError, UnsafePathError, UsageError
from seedvault.manifest import check_relative_path
from seedvault.settings import DEFAULT_PIECE_LENGTH
from seedvault.signing import PrivateKey

HF_URL = "https://huggingface.co"
REVISION_LENGTH = 40
CARD = "README.md"
# huggingface_hub >= 2 may keep LFS payloads once per cache in <cache>/blobs/<xx>/<hash>, with
# repo blobs linking there; that directory carries this marker file.
SHARED_BLOBS_MARKER = ".huggingface-shared-blobs"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")

# Hugging Face license ids (the model card's `license`) to SPDX. Only ids with one exact
# meaning: "gpl-3.0" and kin do not say "-only" or "-or-later", so they, "other" and
# "unknown" are refused unless the publisher names the license. Model-specific licenses
# without an SPDX id become LicenseRef-<id>, as SPDX prescribes for such licenses.
HF_LICENSES: Mapping[str, str] = {
    "apache-2.0": "Apache-2.0",
    "mit": "MIT",
    "afl-3.0": "AFL-3.0",
    "artistic-2.0": "Artistic-2.0",
    "bsl-1.0": "BSL-1.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-3-clause-clear": "BSD-3-Clause-Clear",
    "cc0-1.0": "CC0-1.0",
    "cc-by-2.0": "CC-BY-2.0",
    "cc-by-2.5": "CC-BY-2.5",
    "cc-by-3.0": "CC-BY-3.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-3.0": "CC-BY-SA-3.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-nc-2.0": "CC-BY-NC-2.0",
    "cc-by-nc-3.0": "CC-BY-NC-3.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0",
    "cc-by-nd-4.0": "CC-BY-ND-4.0",
    "cc-by-nc-nd-3.0": "CC-BY-NC-ND-3.0",
    "cc-by-nc-nd-4.0": "CC-BY-NC-ND-4.0",
    "cc-by-nc-sa-2.0": "CC-BY-NC-SA-2.0",
    "cc-by-nc-sa-3.0": "CC-BY-NC-SA-3.0",
    "cc-by-nc-sa-4.0": "CC-BY-NC-SA-4.0",
    "cdla-sharing-1.0": "CDLA-Sharing-1.0",
    "cdla-permissive-1.0": "CDLA-Permissive-1.0",
    "cdla-permissive-2.0": "CDLA-Permissive-2.0",
    "ecl-2.0": "ECL-2.0",
    "epl-1.0": "EPL-1.0",
    "epl-2.0": "EPL-2.0",
    "eupl-1.1": "EUPL-1.1",
    "eupl-1.2": "EUPL-1.2",
    "isc": "ISC",
    "lppl-1.3c": "LPPL-1.3c",
    "ms-pl": "MS-PL",
    "mpl-2.0": "MPL-2.0",
    "ncsa": "NCSA",
    "odbl": "ODbL-1.0",
    "odc-by": "ODC-By-1.0",
    "ofl-1.1": "OFL-1.1",
    "osl-3.0": "OSL-3.0",
    "pddl": "PDDL-1.0",
    "postgresql": "PostgreSQL",
    "unlicense": "Unlicense",
    "wtfpl": "WTFPL",
    "zlib": "Zlib",
    "llama2": "LicenseRef-llama2",
    "llama3": "LicenseRef-llama3",
    "llama3.1": "LicenseRef-llama3.1",
    "llama3.2": "LicenseRef-llama3.2",
    "llama3.3": "LicenseRef-llama3.3",
    "llama4": "LicenseRef-llama4",
    "gemma": "LicenseRef-gemma",
    "openrail": "LicenseRef-openrail",
    "creativeml-openrail-m": "LicenseRef-creativeml-openrail-m",
    "bigscience-openrail-m": "LicenseRef-bigscience-openrail-m",
    "bigscience-bloom-rail-1.0": "LicenseRef-bigscience-bloom-rail-1.0",
    "bigcode-openrail-m": "LicenseRef-bigcode-openrail-m",
}

# The model card's `base_model_relation` to a seedvault lineage relation.
HF_RELATIONS: Mapping[str, str] = {
    "finetune": "fine-tuned-from",
    "adapter": "fine-tuned-from",
    "quantized": "quantized-from",
    "merge": "merged-from",
}


# ---- finding a snapshot ---------------------------------------------------------------


@dataclass(frozen=True)
class HfFile:
    """One file of a cached snapshot."""

    path: str  # relative POSIX path in the repo
    source: Path  # the regular file holding its content (symlinks resolved and checked)
    blob_name: str | None  # the cache's content address for it; None for a plain file in the snapshot


@dataclass(frozen=True)
class HfSnapshot:
    repo_id: str
    revision: str  # the commit hash: the snapshot folder's name
    path: Path  # <repo folder>/snapshots/<revision>
    files: tuple[HfFile, ...]

    @property
    def url(self) -> str:
        return f"{HF_URL}/{self.repo_id}"


def find_snapshot(
    source: str | os.PathLike[str],
    *,
    cache_dir: Path | None = None,
    revision: str | None = None,
    download: bool = False,
) -> HfSnapshot:
    """Locate a snapshot (a directory, or a repo id in the cache) and check every link in it.

    Offline unless `download`: a repo id is looked up with huggingface_hub's own cache
    lookup, which never touches the network with local_files_only. A SOURCE that names an
    existing directory is taken as a directory.
    """
    path = Path(source)
    if path.is_dir():
        if revision is not None:
            raise UsageError("--revision applies to a repo id; a snapshot directory is one revision already")
        snapshot = path.absolute()
    else:
        snapshot = _lookup(str(source), cache_dir, revision, download)
    # Lexical, not resolved: links are judged against where the snapshot is, not where they lead.
    snapshot = Path(os.path.normpath(snapshot))
    repo_dir = snapshot.parent.parent
    if snapshot.parent.name != "snapshots" or not repo_dir.name.startswith("models--"):
        raise UsageError(
            f"{source}: expected a snapshot directory of a Hugging Face cache "
            "(.../models--ORG--NAME/snapshots/<commit>), found another directory",
            hint="a plain model directory is published with `seedvault publish`",
        )
    if not _HEX40.fullmatch(snapshot.name):
        raise UsageError(f"{snapshot}: expected a snapshot folder named by a 40-hex commit id, "
                         f"found {quote(snapshot.name)}")
    repo_id = repo_dir.name.removeprefix("models--").replace("--", "/")
    files = tuple(_snapshot_files(snapshot, repo_dir))
    if not files:
        raise UsageError(f"{snapshot}: expected model files in the snapshot, found none")
    return HfSnapshot(repo_id, snapshot.name, snapshot, files)


def _lookup(repo_id: str, cache_dir: Path | None, revision: str | None, download: bool) -> Path:
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UsageError(
            f"{quote(repo_id)}: expected a snapshot directory or a Hugging Face repo id (ORG/NAME), found neither",
            hint=_REPO_ID_RULE,
        ) from None
    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache_dir, revision=revision, local_files_only=not download
        )
    except LocalEntryNotFoundError:
        where = cache_dir or hf_constants.HF_HUB_CACHE
        raise NotFoundError(
            f"{repo_id}{'@' + revision if revision else ''}: expected a complete snapshot in the Hugging Face "
            f"cache {where}, found none",
            hint="download it first (hf download REPO_ID), pass --cache-dir, or use --download",
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise TransferError(f"{repo_id}: downloading from Hugging Face failed"
                            + (f" (HTTP {status})" if isinstance(status, int) else ""),
                            hint="check the repo id and revision, your network, and HF_TOKEN for a gated "
                            "or private repo") from None
    return Path(folder).absolute()


def _allowed_roots(repo_dir: Path) -> list[Path]:
    """Where a snapshot's links may finally land: this repo's blobs, or the cache's shared store."""
    roots = [(repo_dir / "blobs").resolve()]
    shared = repo_dir.parent / "blobs"
    if (shared / SHARED_BLOBS_MARKER).is_file():
        roots.append(shared.resolve())
    return roots


def _snapshot_files(snapshot: Path, repo_dir: Path) -> list[HfFile]:
    """Every file of the snapshot, each link checked to land in this repo's cache."""
    blobs = repo_dir / "blobs"
    roots = _allowed_roots(repo_dir)
    found: list[HfFile] = []
    for root, dirs, names in os.walk(snapshot):
        here = Path(root)
        for d in dirs:
            if (here / d).is_symlink():
                rel = (here / d).relative_to(snapshot).as_posix()
                raise UnsafePathError(f"{rel}: expected a directory in the snapshot, found a symlink to "
                                      f"{os.readlink(here / d)}")
        for name in names:
            entry = here / name
            rel = check_relative_path(entry.relative_to(snapshot).as_posix(), "snapshot file")
            if left_out(rel):
                continue  # not part of a model, as publish decides (.gitattributes, .git/, .cache/)
            found.append(_snapshot_file(entry, rel, blobs, roots))
    found.sort(key=lambda f: f.path.split("/"))
    return found


def _snapshot_file(entry: Path, rel: str, blobs: Path, roots: Sequence[Path]) -> HfFile:
    if not entry.is_symlink():
        if not entry.is_file():
            raise UnsafePathError(f"{rel}: expected a regular file or a link to a blob, found a special file")
        # Where symlinks are unavailable huggingface_hub copies files into the snapshot.
        return HfFile(rel, entry, None)
    target = os.readlink(entry)
    # The first hop names the content (like huggingface_hub's own cache scan, which keeps it).
    first = Path(os.path.normpath(entry.parent / target))
    if first.parent != blobs:
        raise UnsafePathError(
            f"{rel}: expected a link into the repo's blobs folder {blobs}, found a link to {quote(target)}"
        )
    try:
        real = entry.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise IntegrityError(f"{rel}: expected a link to a cached blob, found a broken link to {quote(target)}",
                             path=rel, hint="the cache is incomplete; download the model again") from None
    if not any(real.is_relative_to(r) for r in roots):
        raise UnsafePathError(
            f"{rel}: expected its blob to stay inside {roots[0]}, found it resolves to {real}",
            hint="a link out of the cache could make the import read any file; refusing",
        )
    if not real.is_file():
        raise UnsafePathError(f"{rel}: expected its blob {real} to be a regular file, found something else")
    return HfFile(rel, real, first.name)


# ---- staging and cross-checking -------------------------------------------------------


def stage_file(file: HfFile, staged: Path) -> bool:
    """Copy one file into staging while hashing it; refuse content that contradicts its blob name.

    Returns whether the file was cross-checked (False only for plain files in a snapshot).
    """
    target = staged / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    name = file.blob_name
    if name is not None and not (_HEX64.fullmatch(name) or _HEX40.fullmatch(name)):
        raise IntegrityError(
            f"{file.path}: expected its cache blob to be named by SHA-256 (64 hex) or git blob SHA-1 "
            f"(40 hex), found {quote(name)}",
            path=file.path, hint="the cache is damaged; download the model again",
        )
    sha1_named = name is not None and _HEX40.fullmatch(name) is not None
    copied = copy_hashed(file.source, target, rel=file.path, git_sha1=sha1_named)
    if name is None:
        return False
    found, kind = (copied.git_sha1, "git blob SHA-1") if sha1_named else (copied.sha256, "SHA-256")
    if found != name:
        raise IntegrityError(
            f"file {quote(file.path)}: expected {kind} {name}, the name of its Hugging Face cache blob; its content "
            f"hashes to {found}",
            path=file.path, expected=name, found=found,
            hint="the cached blob is corrupted or was replaced; delete it and download the model again",
        )
    return True


# ---- the model card ---------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """What the model card's YAML front matter says about license and ancestry."""

    license: str | None = None
    base_models: tuple[str, ...] = ()
    relation: str | None = None

    @classmethod
    def read(cls, path: Path) -> Card:
        if not path.is_file():
            return cls()
        try:
            data = metadata_load(path) or {}
        except (ValueError, YAMLError) as exc:  # not UTF-8, not YAML, or not a mapping
            raise UsageError(f"{CARD}: expected YAML front matter holding a mapping, found {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Card:
        license_ = data.get("license")
        if license_ is not None and not isinstance(license_, str):
            raise UsageError(f"{CARD} license: expected one license id, found {quote(license_)}",
                             hint="name the license with --license")
        raw = data.get("base_model")
        bases: tuple[str, ...] = ()
        if isinstance(raw, str):
            bases = (raw,)
        elif isinstance(raw, list) and all(isinstance(b, str) for b in raw):
            bases = tuple(raw)
        elif raw is not None:
            raise UsageError(f"{CARD} base_model: expected a repo id or a list of them, found {quote(raw)}")
        relation = data.get("base_model_relation")
        if relation is not None and relation not in HF_RELATIONS:
            raise UsageError(f"{CARD} base_model_relation: expected one of "
                             f"{listing(sorted(HF_RELATIONS), len(HF_RELATIONS))}, found {quote(relation)}")
        return cls(license_, bases, relation)


def spdx_license(card_license: str | None, given: str | None) -> str:
    """The SPDX expression to sign: the one given, else the card's mapped (or the card's own,
    when it is already valid SPDX); others are refused."""
    if given:
        return licenses.normalize(given, "--license")
    if card_license is None:
        raise UsageError(f"{CARD}: expected a `license` in the model card, found none",
                         hint="name the license with --license SPDX-ID")
    mapped = HF_LICENSES.get(card_license.strip().lower())
    if mapped is None and licenses.is_valid(card_license):
        # A card id that is already SPDX as written; never a deprecated one SPDX would
        # rename (gpl-3.0 could mean -only or -or-later: the publisher must say).
        spelled = licenses.normalize(card_license)
        mapped = spelled if spelled.lower() == card_license.strip().lower() else None
    if mapped is None:
        raise UsageError(
            f"{CARD} license {quote(card_license)}: expected a Hugging Face license id with an SPDX equivalent "
            f"(e.g. {', '.join(list(HF_LICENSES)[:4])}), found one without",
            hint="read the model's license and name it with --license (an SPDX id or LicenseRef-...)",
        )
    return mapped


def find_base(client: Client, repo_id: str) -> str | None:
    """The newest release in the vault imported from Hugging Face repo `repo_id`, as name@version."""
    url = f"{HF_URL}/{repo_id}".casefold()
    matches = [e.manifest for e in client.vault.entries() if (e.manifest.origin.source_url or "").casefold() == url]
    if not matches:
        return None
    return max(matches, key=lambda m: m.created).ref


def lineage_of(client: Client, card: Card) -> tuple[list[tuple[str, str]], list[str]]:
    """Lineage links for the card's bases known to the vault, and the bases it does not know."""
    relation = HF_RELATIONS.get(card.relation or "", "merged-from" if len(card.base_models) > 1 else "fine-tuned-from")
    links: list[tuple[str, str]] = []
    unknown: list[str] = []
    for base in card.base_models:
        ref = find_base(client, base)
        if ref is None:
            unknown.append(base)
        else:
            links.append((relation, ref))
    return links, unknown


# ---- import -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HfImport:
    admitted: Admitted
    snapshot: HfSnapshot
    license: str
    card: Card
    lineage: tuple[tuple[str, str], ...]
    unknown_bases: tuple[str, ...]
    checked: int  # files whose content matched their blob name

    def to_dict(self) -> dict[str, Any]:
        m = self.admitted.verdict.manifest
        return {
            "ref": m.ref, "digest": self.admitted.envelope.digest, "snapshot": str(self.admitted.snapshot),
            "repo_id": self.snapshot.repo_id, "revision": self.snapshot.revision, "license": self.license,
            "card_license": self.card.license, "lineage": [{"relation": r, "ref": ref} for r, ref in self.lineage],
            "unknown_bases": list(self.unknown_bases), "files": len(self.snapshot.files),
            "cross_checked": self.checked,
        }


def import_hf(
    client: Client,
    source: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    key: PrivateKey,
    license: str | None = None,
    cache_dir: Path | None = None,
    revision: str | None = None,
    download: bool = False,
    publisher: str = "",
    notes: str | None = None,
    expires: datetime | None = None,
    allow_pickle: bool = False,
    piece_length: int = DEFAULT_PIECE_LENGTH,
    progress: Progress | None = None,
) -> HfImport:
    """Publish a Hugging Face snapshot as NAME@VERSION, after checking every file against the cache."""
    snap = find_snapshot(source, cache_dir=cache_dir, revision=revision, download=download)
    with client.vault.staging("import-hf") as staged:
        # The card first: a license that cannot be named refuses the import before big files are copied.
        card_files = [f for f in snap.files if f.path == CARD]
        checked = sum(stage_file(f, staged) for f in card_files)
        card = Card.read(staged / CARD)
        spdx = spdx_license(card.license, license)
        links, unknown = lineage_of(client, card)
        checked += sum(stage_file(f, staged) for f in snap.files if f.path != CARD)
        admitted = client.publish(
            staged, name=name, version=version, license=spdx, key=key, publisher=publisher,
            source_url=snap.url, source_revision=snap.revision,
            notes=_notes(snap, card, spdx, unknown, checked, notes), lineage=links, expires=expires,
            allow_pickle=allow_pickle, piece_length=piece_length, progress=progress,
        )
    return HfImport(admitted, snap, spdx, card, tuple(links), tuple(unknown), checked)


def _notes(snap: HfSnapshot, card: Card, spdx: str, unknown: Sequence[str], checked: int, extra: str | None) -> str:
    parts = [f"Imported from Hugging Face {snap.repo_id} at commit {snap.revision}; {checked} of "
             f"{len(snap.files)} files matched their content-addressed cache blob names."]
    if card.license is not None and HF_LICENSES.get(card.license.strip().lower()) != spdx:
        parts.append(f"Model card license: {card.license}.")
    if unknown:
        parts.append(f"Base model(s) not in this vault, so not pinned as lineage: {', '.join(unknown)}.")
    if extra:
        parts.append(extra)
    return " ".join(parts)


# ---- export -----------------------------------------------------------------------------


def hf_revision(manifest_digest: str) -> str:
    """The commit id an exported release gets: the first 40 hex characters of its manifest digest."""
    return manifest_digest[:REVISION_LENGTH]


@dataclass(frozen=True)
class HfExport:
    ref: str
    digest: str
    repo_id: str
    revision: str
    cache_dir: Path
    snapshot: Path
    refs: tuple[str, ...]
    main_was: str | None = None  # the revision refs/main named before, when this export moved it

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "repo_id": self.repo_id, "revision": self.revision,
                "cache_dir": str(self.cache_dir), "snapshot": str(self.snapshot), "refs": list(self.refs),
                "main_was": self.main_was}


_REPO_ID_RULE = ("a repo id is ORG/NAME: letters, digits, '-', '_' and '.', at most 96 characters, no '--' or "
                 "'..', not starting or ending with '-' or '.'")


def check_repo_id(repo_id: str) -> str:
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UsageError(f"repo id: expected ORG/NAME as Hugging Face accepts it, found {quote(repo_id)}",
                         hint=_REPO_ID_RULE) from None
    if repo_id.count("/") != 1:
        raise UsageError(f"repo id: expected ORG/NAME, found {quote(repo_id)}")
    return repo_id


def export_hf(client: Client, ref: str, cache_dir: Path, repo_id: str | None = None) -> HfExport:
    """Write a verified release into a Hugging Face cache as repo `repo_id` (default: its name).

    The signature and policy are checked first; each file's bytes are then hashed as they
    are copied and compared with the signed SHA-256, so the cache receives exactly the
    verified bytes. Blobs and refs are replaced by rename; the snapshot appears whole.
    """
    verdict = client.verify(ref, fast=True)
    manifest = verdict.manifest
    repo_id = check_repo_id(repo_id or manifest.name)
    revision = hf_revision(verdict.digest)
    repo_dir = Path(cache_dir).absolute() / repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    source = client.vault.snapshot_dir(manifest)
    for f in manifest.files:
        tmp = blobs / f".{f.sha256}.{uuid.uuid4().hex[:8]}.incomplete"
        try:
            copied = copy_hashed(source / f.path, tmp, rel=f.path)
            if copied.sha256 != f.sha256:
                raise IntegrityError(
                    f"file {quote(f.path)}: expected SHA-256 {f.sha256} (signed), found {copied.sha256} in the vault",
                    path=f.path, expected=f.sha256, found=copied.sha256,
                    hint=f"run `seedvault verify {manifest.ref}`: if it fails, the vault copy was damaged (import "
                    "the model again); if it passes, the release's manifest pins a SHA-256 its own pieces root "
                    "contradicts (admitted by an older seedvault): remove it and get a correct release",
                )
            os.chmod(tmp, 0o444)
            os.replace(tmp, blobs / f.sha256)
        finally:
            tmp.unlink(missing_ok=True)
    snapshot = _write_snapshot(repo_dir, revision, [(f.path, f.sha256) for f in manifest.files])
    refs_dir = repo_dir / "refs"
    refs_dir.mkdir(exist_ok=True)
    refs = ("main", manifest.version) if manifest.version != "main" else ("main",)
    try:
        before = (refs_dir / "main").read_text(errors="replace").strip()[:64]
    except OSError:
        before = None
    main_was = before if before and before != revision else None
    for name in refs:
        write_atomic(refs_dir / name, revision.encode())  # no newline: huggingface_hub reads it verbatim
    return HfExport(manifest.ref, verdict.digest, repo_id, revision, Path(cache_dir), snapshot, refs, main_was)


def _write_snapshot(repo_dir: Path, revision: str, files: Sequence[tuple[str, str]]) -> Path:
    """Build snapshots/<revision> beside it and rename it into place.

    The staging folder sits two levels below the repo folder, like the snapshot, so the
    relative links made there stay right after the rename, and it is not under snapshots/,
    where a leftover would look like a revision to huggingface_hub's cache scan.
    """
    final = repo_dir / "snapshots" / revision
    final.parent.mkdir(parents=True, exist_ok=True)
    work = repo_dir / f".seedvault-{uuid.uuid4().hex[:8]}"
    tmp = work / revision
    try:
        for path, sha256 in files:
            link = tmp / path
            link.parent.mkdir(parents=True, exist_ok=True)
            # Relative, as huggingface_hub makes them: the cache folder stays movable.
            os.symlink(os.path.relpath(repo_dir / "blobs" / sha256, (final / path).parent), link)
        old = work / "old"
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, old)  # an earlier export of this same release: same digest, same files
        os.rename(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
