"""The client: publish, approve, admit, verify and load, composed from the pieces below.

Every path into the vault goes through `Client.admit`: the envelope is judged under the
local policy before a byte is copied, bytes land in a private staging directory, are
checked against the signed manifest, and only then move into blobs and a snapshot.
Loading re-judges the envelope (a key revoked since import takes effect) and hashes the
very bytes it hands out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seedvault import hashing, licenses, weights
from seedvault._text import count, listing, quote
from seedvault.behind import Prehashed
from seedvault.errors import (
    Error,
    IntegrityError,
    ManifestError,
    MissingFilesError,
    NotFoundError,
    PolicyError,
    SeedvaultWarning,
    SignatureError,
    UnsafePathError,
    UsageError,
    VerificationError,
    YankedError,
)
from seedvault.head import Head, first_head
from seedvault.heads import HeadStore
from seedvault.lineage import AncestorStore, LineageNode, ancestry
from seedvault.manifest import (
    FileEntry,
    License,
    LineageLink,
    Manifest,
    Origin,
    Ref,
    TorrentBinding,
    check_model_name,
    check_path_set,
    check_pickles,
    check_relative_path,
    check_version,
    format_time,
    info_hash_v2,
    torrent_name,
)
from seedvault.settings import DEFAULT_PIECE_LENGTH, READ_CHUNK, Paths, paths, worker_count
from seedvault.signing import Envelope, PrivateKey, TrustPolicy, Verdict, counted_signatures, evaluate
from seedvault.signing.trusted import (
    AcceptedHead,
    LogVerdict,
    Purpose,
    accept_head,
    check_lineage,
    check_logged,
    is_newer,
    signer_reports,
)
from seedvault.summaries import GGUFSummary, SafetensorsSummary
from seedvault.tlog.memory import LogMemory
from seedvault.vault import COPY, HARD_LINK, Entry, StoreMode, Vault, place_file

Progress = Callable[[int], None]
MAX_OFFERED_HEADS = 4  # heads read from one source for one model: the held head and its base, with room
# Directories a model checkout carries that are not part of the model.
IGNORED_DIRS = frozenset({".git", ".cache"})
IGNORED_FILES = frozenset({".gitattributes", ".gitignore"})
LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt")


@dataclass(frozen=True)
class Admitted:
    verdict: Verdict
    snapshot: Path
    envelope: Envelope
    already_present: bool = False  # publish: the identical release was already in the vault; nothing changed
    # publish: how many files entered the vault by each way (see vault.place_file): "reflink",
    # "hard link" (the publisher's file, made read-only, is the vault's copy) or "copy"
    stored: Mapping[str, int] = field(default_factory=dict)


def _check_release_label(name: str, version: str, expires: datetime | None) -> None:
    """What a publisher types (name, version, expiry), checked before any byte is read: a
    wrong one is a usage error, not bad data."""
    try:
        check_model_name(name)
        check_version(version)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    if expires is not None and expires <= datetime.now(UTC):
        raise UsageError(f"expires: expected a time in the future, found {format_time(expires)}, which has passed",
                         hint="give a later date, or leave the expiry out")


def expected_files(manifest: Manifest) -> list[hashing.Expected]:
    return [hashing.Expected(f.path, f.size, f.pieces_root, f.sha256) for f in manifest.files]


def scan_model_dir(directory: Path) -> list[str]:
    """Relative POSIX paths of the files to publish, sorted; refuses symlinks and specials."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: expected a model directory, found "
                         + ("a file" if directory.exists() else "nothing"))
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        for d in list(dirs):
            if (Path(root) / d).is_symlink():
                raise UnsafePathError(f"{rel_root / d}: symlinked directories are not published; "
                                      "copy the files in instead")
            if d in IGNORED_DIRS:
                dirs.remove(d)
        for name in files:
            full = Path(root) / name
            rel = (rel_root / name).as_posix()
            if full.is_symlink():
                raise UnsafePathError(f"{rel}: expected a regular file, found a symlink")
            if not full.is_file():
                raise UnsafePathError(f"{rel}: expected a regular file, found a special file")
            if name in IGNORED_FILES and rel_root == Path("."):
                continue
            found.append(check_relative_path(rel, "file"))
    if not found:
        raise UsageError(f"{directory}: expected model files, found none")
    found.sort(key=lambda p: p.split("/"))
    check_path_set(found, str(directory))
    return found


def listed_model_files(directory: Path, listed: Sequence[str]) -> list[str]:
    """LISTED, checked to be exactly the regular files under DIRECTORY (nothing left out, no
    links or special files), sorted as `scan_model_dir` sorts."""
    wanted = [check_relative_path(p, "file") for p in listed]
    check_path_set(wanted, str(directory))
    present = scan_files(directory, str(directory))
    if present != set(wanted):
        extra, missing = sorted(present - set(wanted)), sorted(set(wanted) - present)
        raise UsageError(f"{directory}: expected exactly the files listed"
                         + (f"; missing {listing(missing)}" if missing else "")
                         + (f"; not listed {listing(extra)}" if extra else ""))
    if not wanted:
        raise UsageError(f"{directory}: expected model files, found none")
    return sorted(wanted, key=lambda p: p.split("/"))


def left_out(rel: str) -> bool:
    """Whether publish leaves relative path REL out of a model: anything under a .git/ or
    .cache/ directory, and a top-level .gitattributes or .gitignore (the rule `publish`,
    `import-hf` and `verify DIR --envelope` share)."""
    parts = rel.split("/")
    return any(p in IGNORED_DIRS for p in parts[:-1]) or (len(parts) == 1 and parts[0] in IGNORED_FILES)


def not_published(manifest: Manifest) -> Callable[[str, bool], bool]:
    """What `publish` leaves out of a model directory (.git/ and .cache/ at any depth,
    .gitattributes and .gitignore at the top), unless the manifest lists it: the same
    folder then verifies against what was published from it."""
    listed = {f.path for f in manifest.files}

    def skip(rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if is_dir:
            return name in IGNORED_DIRS and not any(p.startswith(rel + "/") for p in listed)
        return left_out(rel) and rel not in listed

    return skip


def scan_files(base: Path, where: str, skip: Callable[[str, bool], bool] | None = None) -> set[str]:
    """Relative POSIX paths of the regular files under `base`, which must be a real directory.

    Nothing is followed: a symlink (to a file or a directory), a FIFO, a socket or a device
    anywhere in the tree is refused, naming it and what it is, since its content could
    change after it was checked (or, for a FIFO, reading it would block)."""
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        raise MissingFilesError(f"{where}: expected a directory at {quote(str(base))}, found nothing",
                             path=str(base), hint="import or pull the model again") from None
    if not stat.S_ISDIR(st.st_mode):
        raise IntegrityError(f"{where}: expected a directory at {quote(str(base))}, found "
                             f"{hashing.describe_mode(st.st_mode)}", path=str(base),
                             hint="a snapshot must be a real directory; import or pull the model again")
    present: set[str] = set()
    pending = [base]
    while pending:
        here = pending.pop()
        with os.scandir(here) as it:
            for item in it:
                mode = item.stat(follow_symlinks=False).st_mode
                rel = Path(item.path).relative_to(base).as_posix()
                if skip is not None and skip(rel, stat.S_ISDIR(mode)):
                    continue
                if stat.S_ISDIR(mode):
                    pending.append(Path(item.path))
                elif stat.S_ISREG(mode):
                    present.add(rel)
                else:
                    found = hashing.describe_mode(mode)
                    if stat.S_ISLNK(mode):
                        found += f" to {quote(os.readlink(item.path))}"
                    raise IntegrityError(
                        f"{where}: file {quote(rel)}: expected a regular file, found {found}",
                        path=rel, expected="a regular file", found=found,
                        hint="only regular files are verified and handed out; replace it with the real file",
                    )
    return present


def compare_file_sets(present: set[str], manifest: Manifest, where: str) -> None:
    """`present` is exactly the manifest's files: none missing, none extra. The one check
    every entry point (load, verify, snapshot_path, verify_dir, seed, export, import) uses."""
    wanted = {f.path for f in manifest.files}
    extra, missing = sorted(present - wanted), sorted(wanted - present)
    if extra or missing:
        parts = ([f"missing {listing(missing)}"] if missing else []) + (
            [f"not in the manifest: {listing(extra)}"] if extra else [])
        raise IntegrityError(
            f"{where}: expected exactly the {count(len(wanted), 'file')} the manifest of {manifest.ref} lists; "
            + "; ".join(parts),
            hint="a file was added, removed or renamed after signing",
        )


def check_exact_files(base: Path, manifest: Manifest, where: str | None = None) -> None:
    """The directory holds exactly the manifest's files, all regular: none missing, none
    extra, no links or special files."""
    where = where or str(base)
    compare_file_sets(scan_files(base, where), manifest, where)


def check_weights(base: Path, manifest: Manifest, skip: frozenset[str] = frozenset()) -> None:
    """Strict header validation of every weights file (safetensors, GGUF) of verified
    files, but those in SKIP (checked when first admitted); pickle only if the manifest allows."""
    check_pickles([f.path for f in manifest.files], "list", f"manifest of {manifest.ref}",
                  allowed=manifest.allow_pickle)
    for f in manifest.files:
        if f.path not in skip:
            weights.validate(base / f.path, f.path)


def _unchanged(before: os.stat_result, now: os.stat_result, size: int) -> bool:
    """The same file, with the same size and modification time (its ctime moves with our own
    links and chmod, so it cannot tell)."""
    return (now.st_ino, now.st_size, now.st_mtime_ns) == (before.st_ino, size, before.st_mtime_ns)


def _file_entry(path: str, target: Path, d: hashing.FileDigest) -> FileEntry:
    """A published file's entry, with the summary of its weights format (if any)."""
    summary = weights.summary(target, path)
    return FileEntry(path, d.size, d.sha256, d.pieces_root,
                     summary if isinstance(summary, SafetensorsSummary) else None,
                     gguf=summary if isinstance(summary, GGUFSummary) else None)


def _warn_disagreements(manifest: Manifest) -> None:
    """Tell the publisher where a GGUF file's own metadata contradicts what is signed."""
    bases = [link.ref for link in manifest.lineage]
    for f in manifest.files:
        if f.gguf is not None:
            for text in weights.gguf.disagreements(f.gguf, f.path, manifest.license.spdx, bases):
                warnings.warn(SeedvaultWarning(f"{manifest.ref}: {text}"), stacklevel=3)


class Client:
    """One user's view: their config, their trust policy, their vault."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else None
        self.paths: Paths = paths(home)
        self._vault: Vault | None = None
        self._heads: HeadStore | None = None
        self._logs: LogMemory | None = None

    @property
    def heads(self) -> HeadStore:
        if self._heads is None:
            self._heads = HeadStore(self.paths.vault_dir / "heads.db")
        return self._heads

    @property
    def logs(self) -> LogMemory:
        """The largest checkpoint seen per transparency log, and the releases' proofs."""
        if self._logs is None:
            self._logs = LogMemory(self.paths.data_dir / "tlog")
        return self._logs

    def check_logged(self, verdict: Verdict, policy: TrustPolicy | None = None) -> LogVerdict | None:
        """Under `trust require --logged`, the release's proof judged (signing.trusted.check_logged);
        None when the policy does not ask for one. A first checkpoint of a log is remembered."""
        policy = policy or self.policy
        if not policy.require_logged:
            return None
        logged = check_logged(verdict.manifest, verdict.digest, self.logs.proof(verdict.digest), policy,
                              self.logs.held)
        if self.logs.held(logged.origin) is None:
            self.logs.remember(logged.origin, logged.size, logged.root, logged.note)
        return logged

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault(self.paths.vault_dir)
        return self._vault

    def close(self) -> None:
        if self._vault is not None:
            self._vault.close()
            self._vault = None
        if self._heads is not None:
            self._heads.close()
            self._heads = None
        if self._logs is not None:
            self._logs.close()
            self._logs = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def policy(self) -> TrustPolicy:
        return TrustPolicy.load(self.paths.policy_file)

    def save_policy(self, policy: TrustPolicy) -> None:
        policy.save(self.paths.policy_file)

    # ---- publish ------------------------------------------------------------------------
    def publish(
        self,
        directory: Path,
        *,
        name: str,
        version: str,
        license: str,
        key: PrivateKey | Sequence[PrivateKey],
        publisher: str = "",
        source_url: str | None = None,
        source_revision: str | None = None,
        notes: str | None = None,
        origin_extra: Mapping[str, Any] | None = None,
        lineage: Sequence[tuple[str, str]] = (),
        expires: datetime | None = None,
        allow_pickle: bool = False,
        license_file: str | None = None,
        piece_length: int = DEFAULT_PIECE_LENGTH,
        progress: Progress | None = None,
        store: StoreMode = "auto",
        files: Sequence[str] | None = None,
    ) -> Admitted:
        """Hash, describe and sign a model directory, and store it in the vault.

        Each file is read once, and enters the vault by `store`:
        - "auto": a reflink (an independent copy-on-write clone) where the filesystem has them;
          else a hard link of the file, made read-only, when read-only protects it (not for
          root, whom a mode does not stop); else a copy made while hashing;
        - "link": as "auto", but a hard link even for root;
        - "copy": always a copy.
        A hard-linked file is the vault's copy: changed in place, the release fails `verify`.
        The signed digests are of exactly the bytes that enter the vault. Every key in `key`
        signs the release, and the model's new head (see `sign_head`).

        `files` names the files to publish instead of the directory's own rule (which leaves
        .git/, .cache/ and root .gitignore/.gitattributes out): a bridge publishing exactly what
        another signature covered. They must be all the regular files under `directory`.

        Publishing the identical release again (same name, version, files and statement,
        only the time differing) changes nothing and returns the stored one with
        `already_present`, so a rerun of a release job passes; different content under a
        name@version already published is refused (RollbackError).
        """
        keys = [key] if isinstance(key, PrivateKey) else list(key)
        if not keys:
            raise UsageError("publish: expected at least one signing key, found none")
        key = keys[0]
        _check_release_label(name, version, expires)
        license = licenses.normalize(license)  # before any byte is hashed
        directory = Path(directory)
        files = scan_model_dir(directory) if files is None else listed_model_files(directory, files)
        check_pickles(list(files), "publish", str(directory), allowed=allow_pickle)
        links = [self._lineage_link(relation, ref) for relation, ref in lineage]
        license_path = license_file or next((n for n in LICENSE_NAMES if n in files), None)
        if license_path is not None and license_path not in files:
            raise UsageError(f"license file {quote(license_path)} is not among the model's files")
        with self.vault.staging("publish") as staged:
            targets = [staged / p for p in files]
            for t in targets:
                t.parent.mkdir(parents=True, exist_ok=True)
            # Into the vault without a second full copy where the filesystem allows it.
            placed = [place_file(directory / p, t, store) for p, t in zip(files, targets, strict=True)]
            sources = [t if how else directory / p for p, t, how in zip(files, targets, placed, strict=True)]
            # A hard link is the publisher's own file: it must not change while (or after) it is hashed.
            hashed = {p: os.stat(t) for p, t, how in zip(files, targets, placed, strict=True) if how == HARD_LINK}
            digests = hashing.hash_files(sources, piece_length, progress,
                                         copy_to=[None if how else t for t, how in zip(targets, placed, strict=True)])
            for p, d in zip(files, digests, strict=True):
                if p in hashed and not _unchanged(hashed[p], os.stat(directory / p), d.size):
                    raise UsageError(f"{directory / p} changed while it was published", hint="publish again")
            # Each staged file as hashed: `vault.add` refuses one that changed since.
            as_hashed = {p: os.lstat(t) for p, t in zip(files, targets, strict=True)}
            entries = [_file_entry(path, target, d) for path, target, d in zip(files, targets, digests, strict=True)]
            by_path = {e.path: e for e in entries}
            info_hash = info_hash_v2(torrent_name(name, version), entries, piece_length)
            manifest = Manifest(
                name=name,
                version=version,
                created=datetime.now(UTC).replace(microsecond=0),
                files=tuple(entries),
                license=License(
                    license,
                    license_path,
                    by_path[license_path].sha256 if license_path else None,
                ),
                origin=Origin(publisher or key.key_id[:16], source_url, source_revision, notes,
                              dict(origin_extra or {})),
                torrent=TorrentBinding(piece_length, info_hash),
                lineage=tuple(links),
                expires=expires,
                allow_pickle=allow_pickle,
            )
            # Round-trip through the parser so we never sign what we would refuse to read.
            manifest = Manifest.from_dict(manifest.to_dict())
            _warn_disagreements(manifest)
            same = self._same_release(manifest)
            if same is not None:
                return Admitted(Verdict(same.manifest, same.digest, (), 0, 0), self.vault.snapshot_dir(same.manifest),
                                same.envelope, already_present=True)
            envelope = Envelope(manifest.to_payload())
            for k in keys:
                envelope = envelope.sign(k)
            snapshot = self.vault.add(envelope, manifest, staged, hashed=as_hashed)
            for p, before in hashed.items():  # the publisher's own file, linked: unchanged since it was hashed
                if not _unchanged(before, os.stat(directory / p), before.st_size):
                    # Changed in the instant after it was stored: nothing may certify it, so the
                    # next check hashes it again (and refuses it).
                    self.vault.forget_records(snapshot / p)
                    self.vault.forget_records(self.vault.blob_path(manifest.file(p)))
                    raise IntegrityError(f"{directory / p} changed while it was published (it is the vault's copy "
                                         "too: a hard link); the release no longer verifies",
                                         hint="restore the file and import the release from a copy, or publish "
                                         "with --copy")
        self.vault.save_layers(manifest, {p: d.piece_layer for p, d in zip(files, digests, strict=True)})
        self._record_snapshot(snapshot, manifest, envelope.digest)
        self._head_after_publish(manifest, envelope.digest, keys)
        verdict = Verdict(manifest, envelope.digest, (), 0, 0)
        stored: dict[str, int] = {}
        for how in placed:
            stored[how or COPY] = stored.get(how or COPY, 0) + 1
        return Admitted(verdict, snapshot, envelope, stored=stored)

    def _same_release(self, manifest: Manifest) -> Entry | None:
        """The vault's release of manifest's name@version when it says exactly what `manifest`
        says (its created time aside), else None."""
        try:
            held = self.vault.resolve(Ref(manifest.name, manifest.version))
        except (NotFoundError, ManifestError):
            return None
        return held if replace(manifest, created=held.manifest.created) == held.manifest else None

    def _lineage_link(self, relation: str, ref: str) -> LineageLink:
        digest = None
        with contextlib.suppress(NotFoundError):  # a base from outside this vault is named, not pinned
            digest = self.vault.resolve(Ref.parse(ref)).digest
        if digest is None:
            warnings.warn(f"base model {ref} is not in this vault: the lineage names it but does not pin its "
                          "manifest digest (import or pull the base first to pin it)", SeedvaultWarning,
                          stacklevel=3)
        return LineageLink.from_dict(
            {"relation": relation, "ref": ref, **({"manifest_digest": digest} if digest else {})},
            "lineage",
        )

    # ---- approve ------------------------------------------------------------------------
    def approve(self, ref: str, key: PrivateKey) -> Envelope:
        """Countersign a stored manifest's exact payload with an approver key.

        An approver vouches for the release, so it must verify first: publisher signatures
        under the local policy (approvals aside: this is one) and every byte of its files.
        """
        return self.countersign(ref, key)

    def countersign(self, ref: str, key: PrivateKey) -> Envelope:
        """Add `key`'s signature to a stored release, after verifying it as an approver
        would: an approval, or another publisher key's signature (key rotation: once the
        new key has signed, the old one can be revoked). Returns the stored envelope."""
        entry = self.vault.resolve(ref)
        self._verify_entry(entry, self.policy, fast=True, purpose="approve")
        signed = Envelope(entry.envelope.payload, entry.envelope.payload_type).sign(key)
        return self.vault.add_signatures(signed)

    # ---- lineage ------------------------------------------------------------------------
    @property
    def ancestor_store(self) -> AncestorStore:
        return AncestorStore(self.paths.data_dir / "ancestors")

    def envelope_by_digest(self, digest: str, offered: Mapping[str, Envelope] | None = None) -> Envelope | None:
        """A release's envelope by manifest digest: offered with it (a bundle's ancestors),
        in the vault, or in the ancestor store. Unjudged."""
        if offered and digest in offered:
            return offered[digest]
        with contextlib.suppress(NotFoundError):
            return self.vault.get(digest).envelope
        return self.ancestor_store.get(digest)

    def lineage(self, manifest: Manifest, digest: str, offered: Sequence[Envelope] = (),
                policy: TrustPolicy | None = None) -> LineageNode:
        """The release's ancestry tree, each ancestor with its verdict under the local policy."""
        by_digest = {e.digest: e for e in offered}
        return ancestry(manifest, digest, lambda d: self.envelope_by_digest(d, by_digest), policy or self.policy)

    def check_lineage(self, manifest: Manifest, digest: str, offered: Sequence[Envelope] = (),
                      policy: TrustPolicy | None = None) -> LineageNode | None:
        """Apply the policy's lineage rules (lineage_deny, verified_lineage) to the whole
        ancestry; None when the policy has none (nothing is walked)."""
        policy = policy or self.policy
        if not policy.lineage_deny and not policy.verified_lineage:
            return None
        tree = self.lineage(manifest, digest, offered, policy)
        check_lineage(manifest.ref, tree.ancestors(), policy)
        return tree

    # ---- admit --------------------------------------------------------------------------
    def judge(self, envelope: Envelope, ancestors: Sequence[Envelope] = ()) -> Verdict:
        """Policy verdict (signatures, then lineage, with `ancestors` offered alongside, then
        the transparency log) plus the vault's memory (substitution of a seen name@version)."""
        policy = self.policy
        verdict = evaluate(envelope, policy)
        self.check_lineage(verdict.manifest, envelope.digest, ancestors)
        self.vault.check_not_substituted(verdict.manifest, envelope.digest)
        self.check_logged(verdict, policy)
        return verdict

    def admit(
        self,
        envelope: Envelope,
        fill: Callable[[Manifest, Path], None],
        progress: Progress | None = None,
        ancestors: Sequence[Envelope] = (),
    ) -> Admitted:
        """Judge, stage, verify, then store. `fill` writes the manifest's files into staging.
        `ancestors`: envelopes of the release's ancestors offered with it (a bundle's); those
        its lineage pins are kept in the ancestor store once the release is admitted."""
        verdict = self.judge(envelope, ancestors)  # before any byte is fetched or copied
        with self.vault.staging(envelope.digest) as staged:
            fill(verdict.manifest, staged)
            admitted = self.admit_staged(envelope, verdict, staged, progress)
        if ancestors:
            self.keep_ancestors(verdict.manifest, envelope.digest, ancestors)
        return admitted

    def keep_ancestors(self, manifest: Manifest, digest: str, offered: Sequence[Envelope]) -> None:
        """Store the offered envelopes that the release's lineage pins (and only those)."""
        by_digest = {e.digest: e for e in offered}
        for node in self.lineage(manifest, digest, offered).walk():
            if node.digest in by_digest:
                self.ancestor_store.put(by_digest[node.digest])

    def admit_staged(
        self, envelope: Envelope, verdict: Verdict, staged: Path, progress: Progress | None = None, *,
        held: frozenset[str] = frozenset(), prehashed: Mapping[str, Prehashed] | None = None,
        checked_by_swarm: frozenset[str] = frozenset(), layers_given: Mapping[str, bytes] | None = None,
    ) -> Admitted:
        """Verify files already in a staging directory and move them into the vault.

        The caller judged `envelope` (see `judge`) before putting bytes in `staged`. Files in
        `held` are not staged: the vault holds them verified (a delta pull), and `vault.add`
        checks that again as it links them. A file in `prehashed` (hashed while it arrived)
        is not read again when it is unchanged since and its digests match the signed ones;
        one whose SHA-256 alone was hashed (`root_by_swarm`) only when it is in
        `checked_by_swarm`: libtorrent hashed every one of its pieces against the signed
        pieces root in this run. Any other file is read and checked against both digests.
        `layers_given`: piece layers the caller verified against the signed roots (for seeding).
        """
        manifest = verdict.manifest
        where = str(staged)
        compare_file_sets(scan_files(staged, where) | held, manifest, where)
        todo, layers = [], {}
        as_hashed: dict[str, os.stat_result] = {}  # each file as it was when hashed: `vault.add` checks it
        for item in expected_files(manifest):
            if item.path in held:
                continue
            done = (prehashed or {}).get(item.path)
            # Read again from disk: a file not hashed behind the download, changed since, or whose
            # digests disagree with the signed ones (the disk, read now, has the last word).
            if done is not None and done.root_by_swarm:
                # The pieces root was checked by libtorrent piece by piece as the bytes came; the
                # SHA-256 here, from the file as it is on disk.
                usable = (item.path in checked_by_swarm and item.sha256 is not None
                          and done.digest.sha256 == item.sha256 and done.digest.size == item.size)
            else:
                usable = done is not None and hashing.digest_mismatch(item, done.digest) is None
            if done is None or not usable or not done.still_current(staged / item.path):
                todo.append(item)
                as_hashed[item.path] = os.lstat(staged / item.path)  # before it is hashed below
                continue
            as_hashed[item.path] = done.stat
            if done.digest.piece_layer:
                layers[item.path] = done.digest.piece_layer
        layers = {**(layers_given or {}), **layers}
        layers.update(hashing.verify_files(staged, todo, manifest.torrent.piece_length, progress))
        check_weights(staged, manifest, skip=held)  # held files were checked when first admitted
        envelope = self.trusted_signatures(envelope)
        snapshot = self.vault.add(envelope, manifest, staged, held=held, hashed=as_hashed)
        self.vault.save_layers(manifest, layers)
        self._record_snapshot(snapshot, manifest, envelope.digest)
        return Admitted(verdict, snapshot, envelope)

    def trusted_signatures(self, envelope: Envelope) -> Envelope:
        """Only the signatures that count under the local policy, one per key: what every
        admission stores (see `signing.counted_signatures`)."""
        return counted_signatures(envelope, Manifest.from_payload(envelope.payload).name, self.policy)

    def merge_signatures(self, offered: Envelope) -> Envelope:
        """Add to a release already stored the offered signatures that count under the local
        policy (approvals, another publisher's): the stored envelope afterwards.

        Raises PolicyError when the offer brings no new signature that counts, naming what
        each offered signature amounted to."""
        stored = self.vault.get(offered.digest).envelope
        if offered.payload_type != stored.payload_type:
            raise IntegrityError(f"signatures for {offered.digest}: expected payload type "
                                 f"{stored.payload_type}, found {offered.payload_type}")
        name = Manifest.from_payload(stored.payload).name
        known = {s.keyid for s in stored.signatures}
        new = [s for s in counted_signatures(offered, name, self.policy).signatures if s.keyid not in known]
        if not new:
            reports = [r for r, sig in signer_reports(offered, name, self.policy) if sig.keyid not in known]
            found = "; ".join(r.describe() for r in reports[:8]) or "only signatures already held"
            raise PolicyError(f"signatures for {name} ({offered.digest[:16]}): expected at least one new "
                              f"signature by a key this vault trusts for {name}, found {found}",
                              hint="the signing key must be in this side's trust policy (seedvault trust list)")
        return self.vault.add_signatures(Envelope(stored.payload, stored.payload_type, tuple(new)))

    def _record_snapshot(self, snapshot: Path, manifest: Manifest, digest: str) -> None:
        for f in manifest.files:
            p = snapshot / f.path
            self.vault.record_verified(p, digest, f.pieces_root, p.stat())

    # ---- verify, locate, load ---------------------------------------------------------
    def verify(
        self, ref: str, *, fast: bool = False, progress: Progress | None = None, need_layers: bool = False
    ) -> Verdict:
        """Re-judge the stored envelope under the current policy and check every file.

        `need_layers` forces the per-piece check, which also stores the piece layers that
        seeding needs; otherwise similar-sized shards are checked by whole-file SHA-256.
        """
        verdict = self._verify_entry(self.resolve(ref), self.policy, fast=fast, progress=progress,
                                     need_layers=need_layers)
        return replace(verdict, yanked=self.yank_reason(verdict.manifest))

    def _verify_entry(
        self, entry: Entry, policy: TrustPolicy, *, fast: bool, progress: Progress | None = None,
        need_layers: bool = False, purpose: Purpose = "use",
    ) -> Verdict:
        verdict = evaluate(entry.envelope, policy, purpose=purpose)
        self.check_logged(verdict, policy)
        manifest = verdict.manifest
        self.check_lineage(manifest, entry.digest, policy=policy)
        snapshot = self.checked_snapshot(manifest)
        todo = [f for f in manifest.files
                if not (fast and self.vault.has_valid_record(snapshot / f.path, entry.digest, f.pieces_root))]
        # Stat before hashing: a change during or after the hash then invalidates the record.
        before = {f.path: hashing.lstat_regular(snapshot / f.path, f.path, f.size) for f in todo}
        layers = hashing.verify_files(
            snapshot,
            [hashing.Expected(f.path, f.size, f.pieces_root, f.sha256) for f in todo],
            manifest.torrent.piece_length,
            progress,
            need_layers=need_layers,
            both=False,  # admission checked both digests; either one binds the bytes since
        )
        self.vault.save_layers(manifest, layers)
        for f in todo:
            self.vault.record_verified(snapshot / f.path, entry.digest, f.pieces_root, before[f.path])
        return verdict

    def checked_snapshot(self, manifest: Manifest) -> Path:
        """The snapshot directory of a stored release, fit to be read or handed out: every
        directory from the vault down to it a real directory (no symlink swapped in for a
        snapshot or a namespace), holding exactly the manifest's files, all regular.

        Hashing then opens each file without following links (see `hashing.open_regular`)."""
        snapshot = self.vault.snapshot_dir(manifest)
        where = f"{manifest.ref}: snapshot"
        part = self.vault.root
        for name in snapshot.relative_to(self.vault.root).parts[:-1]:
            part = part / name
            try:
                mode = os.lstat(part).st_mode
            except FileNotFoundError:
                break  # scan_files names the missing snapshot
            if not stat.S_ISDIR(mode):
                raise IntegrityError(
                    f"{where}: expected {quote(str(part))} to be a directory of the vault, found "
                    f"{hashing.describe_mode(mode)}", path=str(part),
                    hint="the vault was changed by hand; remove the link and import or pull the model again",
                )
        check_exact_files(snapshot, manifest, where)
        return snapshot

    def verify_dir(self, directory: Path, envelope: Envelope, progress: Progress | None = None,
                   ancestors: Sequence[Envelope] = ()) -> Verdict:
        """Check a loose directory (not in the vault) against an envelope, under policy.

        Like an admission, every file must be a regular file (no links, FIFOs, devices)
        and match both signed digests: this certifies the directory for consumers that
        check only the SHA-256 (Hugging Face, OMS) as well as for peers."""
        verdict = evaluate(envelope, self.policy)
        self.check_lineage(verdict.manifest, envelope.digest, ancestors)
        # The directory named may be reached through a link (the user's choice); nothing in it may be one.
        directory = Path(directory).resolve()
        compare_file_sets(scan_files(directory, str(directory), not_published(verdict.manifest)), verdict.manifest,
                          str(directory))
        hashing.verify_files(
            directory, expected_files(verdict.manifest), verdict.manifest.torrent.piece_length, progress,
            need_layers=False,
        )
        check_weights(directory, verdict.manifest)
        return verdict

    def snapshot_path(self, ref: str, *, fast: bool = True) -> Path:
        """The verified snapshot directory, for loaders that take a path (transformers...).

        Fast by default: files unchanged since their last full verification (same size,
        mtime, inode and ctime) are not re-hashed; any change triggers a full check.
        """
        verdict = self.verify(ref, fast=fast)
        self.check_usable(verdict.manifest)
        snapshot = self.vault.snapshot_dir(verdict.manifest)
        # Loaders such as llama.cpp parse weights headers in native code: each is validated
        # strictly again (only the headers are read) before the path is handed out.
        check_weights(snapshot, verdict.manifest)
        return snapshot

    def gguf_path(self, ref: str, *, fast: bool = True) -> Path:
        """The verified path of a release's GGUF file, for llama.cpp-style loaders (which
        take a file); a release with several names them (use snapshot_path and choose)."""
        snapshot = self.snapshot_path(ref, fast=fast)
        manifest = self.resolve(ref).manifest
        found = [f.path for f in manifest.files if weights.format_of(f.path) is weights.gguf.FORMAT]
        if len(found) != 1:
            if not found:
                raise NotFoundError(f"{manifest.ref} has no GGUF file", hint=f"its files are under {snapshot}")
            raise UsageError(f"{manifest.ref} has {len(found)} GGUF files ({listing(found)}); expected one",
                             hint=f"pick one under snapshot_path: {snapshot}")
        return snapshot / found[0]

    def load(
        self,
        ref: str,
        *,
        framework: str = "numpy",
        per_file: bool = False,
        fast: bool = False,
    ) -> dict[str, Any]:
        """Tensors of a verified model. The bytes hashed are the bytes returned.

        `fast=True` skips hashing files whose verification record still matches.
        """
        entry = self.resolve(ref)
        verdict = evaluate(entry.envelope, self.policy)
        manifest = verdict.manifest
        self.check_lineage(manifest, entry.digest)
        self.check_usable(manifest)
        check_pickles([f.path for f in manifest.files], "load", manifest.ref)
        # Exactly what `verify` checks: no extra file, no link or special file, nothing missing.
        snapshot = self.checked_snapshot(manifest)
        tensor_files = [f for f in manifest.files if weights.format_of(f.path) is not None]
        if not tensor_files:
            raise NotFoundError(f"{manifest.ref} has no weights files (safetensors or GGUF) to load",
                                hint=f"its files are under {snapshot}")
        piece_length = manifest.torrent.piece_length
        # Several similar shards read at once: each thread hashes its own file whole.
        whole_file = hashing.whole_file_balanced([f.size for f in tensor_files], worker_count())

        def read(f: FileEntry) -> tuple[FileEntry, Any]:
            path = snapshot / f.path
            expected = hashing.Expected(f.path, f.size, f.pieces_root, f.sha256)
            if fast and self.vault.has_valid_record(path, entry.digest, f.pieces_root):
                buf = hashing.read_verified(path, expected, piece_length, check=False)
                # Still unchanged after the read? Otherwise the bytes may be mixed: check them.
                if self.vault.has_valid_record(path, entry.digest, f.pieces_root):
                    return f, buf
            before = hashing.lstat_regular(path, f.path, f.size)  # a change after this invalidates the record
            buf = hashing.read_verified(path, expected, piece_length, whole_file=whole_file)
            self.vault.record_verified(path, entry.digest, f.pieces_root, before)
            return f, buf

        # Files in parallel: each read overlaps the pool's hashing of the others.
        with ThreadPoolExecutor(min(len(tensor_files), worker_count()), thread_name_prefix="seedvault-load") as ex:
            buffers = list(ex.map(read, tensor_files))
        out: dict[str, Any] = {}
        per: dict[str, Any] = {}
        for f, buf in buffers:
            fmt = weights.format_of(f.path)
            assert fmt is not None
            tensors = fmt.tensors(buf, f.path, framework)
            if len(buffers) == 1 and not per_file:
                return tensors  # as the format gives it (a GGUF file's carries its metadata)
            if per_file:
                per[f.path] = tensors
                continue
            clash = set(tensors) & set(out)
            if clash:
                raise UsageError(f"{manifest.ref}: tensor names appear in several files: "
                                 f"{listing(sorted(clash), 3)}", hint="load with per_file=True")
            out.update(tensors)
        return per if per_file else out

    # ---- listing ------------------------------------------------------------------------
    def show(self, ref: str) -> tuple[Manifest, Envelope, Verdict | Error]:
        """The stored statement and its verdict under the local policy (or why it fails)."""
        entry = self.vault.resolve(ref)
        try:
            verdict: Verdict | Error = replace(evaluate(entry.envelope, self.policy),
                                               yanked=self.yank_reason(entry.manifest))
        except Error as exc:
            verdict = exc
        return entry.manifest, entry.envelope, verdict

    # ---- heads: what the publisher says about a model now ----------------------------------
    def admit_heads(
        self, offered: Sequence[Envelope], name: str
    ) -> tuple[AcceptedHead | None, list[VerificationError]]:
        """Judge heads offered for model `name` (from a registry, bundle or peer) and keep the
        highest that is accepted. Returns the head held afterwards (None: none) and why each
        refused one was refused; a lower sequence than the held head is one such refusal."""
        refusals: list[VerificationError] = []
        parsed: list[tuple[Head, Envelope]] = []
        for envelope in offered[:MAX_OFFERED_HEADS]:
            try:
                head = Head.from_payload(envelope.payload)
            except ManifestError as exc:
                refusals.append(exc)
                continue
            if head.name != name:
                refusals.append(ManifestError(f"{head.ref}: expected a head of {name}"))
                continue
            parsed.append((head, envelope))
        policy = self.policy
        # Lowest first: a publisher-signed head offered beside a timestamp refresh of it is
        # taken first, so the refresh can be checked against it.
        for _head, envelope in sorted(parsed, key=lambda p: p[0].sequence):
            try:
                accepted = accept_head(envelope, policy, self.heads.held(name))
                if not accepted.known:
                    self.heads.put(accepted, envelope)
            except VerificationError as exc:
                refusals.append(exc)
        return self.current_head(name), refusals

    def current_head(self, name: str, *, policy: TrustPolicy | None = None) -> AcceptedHead | None:
        """The held head of `name`, judged again under the current policy (a key revoked since
        takes effect), or None when there is none or it does not verify now."""
        held = self.heads.held(name)
        if held is None:
            return None
        envelopes = self.heads.envelopes(name)
        policy = policy or self.policy
        bases: tuple[Head, ...] = ()
        try:
            if len(envelopes) > 1:
                base = accept_head(envelopes[1], policy, None)
                bases = (base.head,) if base.by_publishers else ()
            return accept_head(envelopes[0], policy, None, bases=bases)
        except VerificationError:
            return None  # e.g. its key was revoked: `seedvault head` says why

    def resolve(self, ref: str | Ref) -> Entry:
        """A stored release: `NS/NAME@V` exactly; `NS/NAME` the newest one held that its head
        does not yank (the newest held, yanked, when every one is)."""
        wanted = Ref.parse(ref) if isinstance(ref, str) else ref
        entry = self.vault.resolve(wanted)
        if wanted.version is not None:
            return entry
        current = self.current_head(wanted.name, policy=replace(self.policy, fresh_heads=False))
        if current is None or current.head.yank_reason(entry.manifest.version) is None:
            return entry
        usable = [e for e in self.vault.entries()
                  if e.manifest.name == wanted.name and current.head.yank_reason(e.manifest.version) is None]
        best = None
        for e in usable:
            if best is None or is_newer(e.manifest, best.manifest):
                best = e
        return best or entry

    def yank_reason(self, manifest: Manifest) -> str | None:
        # A stale head's yanks still stand: the publisher said so, and nothing newer is known.
        current = self.current_head(manifest.name, policy=replace(self.policy, fresh_heads=False))
        return current.head.yank_reason(manifest.version) if current is not None else None

    def check_usable(self, manifest: Manifest) -> str | None:
        """Refuse a yanked release under the policy's `yanked = "refuse"` (the default); with
        "warn", warn and go on. Returns the yank reason, if any."""
        reason = self.yank_reason(manifest)
        if reason is None:
            return None
        if self.policy.yanked == "refuse":
            raise YankedError(
                f"{manifest.ref} was yanked by its publisher: {reason}",
                hint=f"use another version (seedvault head {manifest.name} names the latest), or, to use it "
                     'anyway, set yanked = "warn" in your trust policy')
        warnings.warn(SeedvaultWarning(f"{manifest.ref} was yanked by its publisher: {reason}"), stacklevel=2)
        return reason

    def sign_head(self, name: str, keys: Sequence[PrivateKey], change: Callable[[Head], Head], *,
                  base: Head | None = None, expires: datetime | None = None) -> tuple[Head, Envelope]:
        """Sign and keep the next head of `name`: `change` applied to the newest head known
        (held here, or `base`, e.g. the one a registry serves), with a higher sequence."""
        held = self.heads.held(name)
        known = [h for h in (held.head if held else None, base) if h is not None]
        if not known:
            raise NotFoundError(f"no head of {name} is known here",
                                hint="publish a release (which signs a head), or fetch it: seedvault head "
                                     f"{name} --registry URL")
        newest = max(known, key=lambda h: h.sequence)
        head = change(newest).successor(expires=expires)
        head = Head.from_dict(head.to_dict())  # never sign what we would refuse to read
        envelope = Envelope(head.to_payload())
        for k in keys:
            envelope = envelope.sign(k)
        self._keep_own_head(head, envelope)
        return head, envelope

    def _keep_own_head(self, head: Head, envelope: Envelope) -> None:
        """Store a head signed here, to push and export it. Kept even when this side's policy
        does not trust the signing key (a publisher need not trust itself): it is judged,
        like any head, whenever it is used. Only one this policy accepts as signed by
        publishers becomes what later timestamp refreshes are checked against."""
        try:
            accepted = accept_head(envelope, self.policy, self.heads.held(head.name))
        except (PolicyError, SignatureError):
            accepted = AcceptedHead(head, envelope.digest, (), False, False, False)
        self.heads.put(accepted, envelope)

    def _head_after_publish(self, manifest: Manifest, digest: str, keys: Sequence[PrivateKey]) -> None:
        held = self.heads.held(manifest.name)
        if held is None:
            head = first_head(manifest.name, manifest.version, digest)
        else:
            newer = self._newer_than_latest(manifest, held.head)
            head = replace(held.head, latest_version=manifest.version, latest_digest=digest) if newer else held.head
            head = head.successor()
        envelope = Envelope(head.to_payload())
        for k in keys:
            envelope = envelope.sign(k)
        self._keep_own_head(head, envelope)

    def _newer_than_latest(self, manifest: Manifest, head: Head) -> bool:
        try:
            latest = self.vault.get(head.latest_digest).manifest
        except NotFoundError:
            return True  # the head names a release this vault does not hold: the new one is what we know
        return is_newer(manifest, latest)

    def head_envelopes(self, name: str) -> list[Envelope]:
        return self.heads.envelopes(name)


def copy_files(source: Path, manifest: Manifest, staged: Path) -> None:
    """Fill staging from a plain directory (a bundle's files/ or a loose model dir).

    Each source is opened without following a symlink and must be a regular file (a FIFO
    is refused without blocking): the bytes copied are those of the file checked."""
    for f in manifest.files:
        dst = staged / f.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        with hashing.open_regular_file(source / f.path, f.path, f.size) as src, open(dst, "xb") as out:
            shutil.copyfileobj(src, out, READ_CHUNK)
