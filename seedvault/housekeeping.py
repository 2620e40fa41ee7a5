"""Housekeeping of the vault: remove releases (`rm`), collect what nothing uses (`gc`), and
count the bytes each model holds (`du`).

Blobs are shared: one file per content, linked into every snapshot that lists it. So `rm`
removes only a snapshot and its record, and `gc` deletes a blob only when nothing uses it:
no manifest in the vault names its pieces root, no running pull's manifest names it, and no
snapshot file is a link to it (a release whose envelope no longer reads keeps its bytes).
`gc` holds the vault's housekeeping lock exclusively while it decides and deletes, and
admission holds it shared (see `Vault.housekeeping_lock`), so no admission links to a blob
`gc` is deleting. A pull in progress holds a lock on `incoming/<digest>.pull`: `gc` leaves
its staging, resume data and blobs alone, and removes those of pulls nobody holds.

Bytes are file sizes; an inode is counted once, and only when every name it has is deleted
does it count as freed (a blob still linked from elsewhere frees nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from seedvault.errors import Error, ExpiredError, NotFoundError, UsageError
from seedvault.manifest import Manifest, Ref
from seedvault.signing import Envelope, evaluate
from seedvault.vault import Entry, Vault

if TYPE_CHECKING:
    from seedvault.client import Client

UPLOAD_STAGING_SUFFIX = ".upload"  # a registry node's upload staging under incoming/ (see registry/node.py)
UPLOAD_TTL = 900.0  # seconds an upload may sit untouched before the node drops it
STALE_AFTER = 3600.0  # seconds before an unlocked, unrecognised entry of incoming/ counts as left behind
_DIGEST = r"[0-9a-f]{64}"
_STAGING = re.compile(r"[A-Za-z0-9_-]+\.[0-9a-f]{8}")  # Vault.staging: locked by its owner while in use
_PULL_FILE = re.compile(rf"\.?({_DIGEST})(?:\.pull|\.resume(?:\..*\.tmp)?)?")  # a pull's staging, marker, resume

Kind = Literal["blob", "layer", "pull", "staging", "upload", "leftover", "snapshot"]


# ---- rm -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removed:
    ref: str
    digest: str
    files: int | None  # None: a release whose envelope no longer reads
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "files": self.files, "size": self.size}


@dataclass(frozen=True)
class Row:
    """One stored release as the index names it, read or not."""

    digest: str
    name: str
    version: str
    manifest: Manifest | None  # None: damaged (its envelope no longer reads)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def rows(vault: Vault) -> list[Row]:
    found = [Row(e.digest, e.manifest.name, e.manifest.version, e.manifest) for e in vault.entries()]
    found += [Row(d.digest, d.name, d.version, None) for d in vault.damaged()]
    return found


def select(vault: Vault, ref: str, *, all_versions: bool = False) -> list[Row]:
    """The releases REF names: NS/NAME@V that one; NS/NAME the newest (`latest`), or with
    `all_versions` every version of NS/NAME. A release that no longer reads is named too."""
    wanted = Ref.parse(ref)
    if all_versions and wanted.version is not None:
        raise UsageError(f"--all-versions: expected NS/NAME, found {wanted} (which names one version)",
                         hint=f"seedvault rm {wanted.name} --all-versions, or seedvault rm {wanted} alone")
    of_name = [r for r in rows(vault) if r.name == wanted.name]
    if all_versions:
        chosen = of_name
    elif wanted.version is not None:
        chosen = [r for r in of_name if r.version == wanted.version]
    else:
        latest = vault.latest_version(wanted.name)
        chosen = [r for r in of_name if r.version == latest]
    if not chosen:
        present = sorted(r.version for r in of_name)
        raise NotFoundError(f"{wanted} is not in the vault"
                            + (f"; versions present: {', '.join(present)}" if present else ""),
                            hint="seedvault list shows what is here")
    return chosen


def remove(vault: Vault, chosen: Iterable[Row]) -> list[Removed]:
    """Remove each release: its snapshot (renamed aside, then deleted, so it vanishes at once),
    its manifests and records rows, and `latest` moved back. Blobs stay for `gc`."""
    done = []
    with vault.housekeeping_lock(exclusive=True):
        for row in chosen:
            snapshot = vault.snapshots.joinpath(*row.name.split("/"), row.version)
            aside = snapshot.with_name(f".rm-{row.version}-{uuid.uuid4().hex[:8]}")
            moved = _rename(snapshot, aside)
            try:
                vault.drop_release(row.digest)
            except BaseException:
                if moved:
                    os.rename(aside, snapshot)  # nothing changed: the release stays whole
                raise
            _delete_tree(aside)
            for parent in (snapshot.parent, snapshot.parent.parent):  # the model's, then the namespace's
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty
            m = row.manifest
            done.append(Removed(row.ref, row.digest, len(m.files) if m else None, m.total_size if m else None))
    return done


def _rename(src: Path, dst: Path) -> bool:
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        return False  # its snapshot was already gone (deleted by hand): the record still goes
    return True


# ---- gc -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One thing gc deletes (or, with --dry-run, would delete)."""

    kind: Kind
    path: Path
    why: str

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path.relative_to(root).as_posix(), "why": self.why}


@dataclass(frozen=True)
class Collected:
    dry_run: bool
    items: tuple[Item, ...]
    freed: int  # bytes of the inodes whose every name is among the items
    pulls_kept: tuple[str, ...]  # refs of the pulls in progress left alone
    blobs_kept: int
    note: str | None = None  # why some blobs were kept although unnamed

    def count(self, kind: Kind) -> int:
        return sum(1 for i in self.items if i.kind == kind)


def collect(vault: Vault, *, dry_run: bool = False, keep: Collection[Path] = (),
            now: float | None = None) -> Collected:
    """Delete blobs, layers, staging and resume data nothing uses; `keep` names staging a
    caller owns (a node's live uploads). With `dry_run`, decide the same and delete nothing."""
    with vault.housekeeping_lock(exclusive=True):
        plan = _plan(vault, set(keep), time.time() if now is None else now)
        freed = _freed_bytes(plan.items)
        if not dry_run:
            for item in plan.items:
                _delete(item.path)
            for item in plan.items:
                if item.kind == "blob":
                    vault.forget_records(item.path)  # a blob of that name later is hashed again
    return Collected(dry_run, tuple(plan.items), freed, plan.pulls_kept, plan.blobs_kept, plan.note)


def would_free(vault: Vault) -> int:
    """What `gc` would free now, in bytes."""
    return collect(vault, dry_run=True).freed


@dataclass
class _Plan:
    items: list[Item] = field(default_factory=list)
    pulls_kept: tuple[str, ...] = ()
    blobs_kept: int = 0
    note: str | None = None


def _plan(vault: Vault, keep: set[Path], now: float) -> _Plan:
    plan = _Plan()
    stored = rows(vault)
    named = {vault.blob_path(f).name for r in stored if r.manifest for f in r.manifest.files}
    linked = _snapshot_plan(vault, stored, plan)

    running, unreadable = _running_pulls(vault)
    plan.pulls_kept = tuple(sorted(Manifest.from_payload(e.payload).ref for e in running.values() if e))
    for e in running.values():
        if e is not None:
            named |= {vault.blob_path(f).name for f in Manifest.from_payload(e.payload).files}
    _incoming_plan(vault, set(running), keep, now, plan)

    if unreadable:
        plan.note = (f"a pull in progress ({', '.join(unreadable)}) has a marker that does not read: "
                     "no blob was deleted, since it may need any of them")
    for blob in sorted(_files(vault.blobs)):
        if blob.name in named or unreadable:
            plan.blobs_kept += 1
        elif _inode(blob) in linked:
            plan.blobs_kept += 1  # a snapshot file links to it: a release the index cannot read uses it
        else:
            plan.items.append(Item("blob", blob, "no release or pull in progress names it"))
    roots = {f.pieces_root for r in stored if r.manifest for f in r.manifest.files}
    roots |= {f.pieces_root for e in running.values() if e for f in Manifest.from_payload(e.payload).files}
    for layer in sorted(_files(vault.layers)):
        if layer.name.startswith("."):
            plan.items.append(Item("layer", layer, "a piece layer left half-written"))
        elif layer.name not in roots and not unreadable:
            plan.items.append(Item("layer", layer, "no release or pull in progress names its pieces root"))
    return plan


def _snapshot_plan(vault: Vault, stored: list[Row], plan: _Plan) -> set[tuple[int, int]]:
    """Leftovers under snapshots/ go into the plan; returns the inodes live snapshots link."""
    live = {vault.snapshots.joinpath(*r.name.split("/"), r.version) for r in stored}
    linked: set[tuple[int, int]] = set()
    for model in sorted(p for ns in _dirs(vault.snapshots) for p in _dirs(ns)):
        for snap in sorted(model.iterdir()):
            if snap.name.startswith((".tmp-", ".rm-")):
                plan.items.append(Item("leftover", snap, "a snapshot left half-made or half-removed"))
            elif snap not in live:
                plan.items.append(Item("snapshot", snap, "no release in the vault's index is stored here"))
            else:
                linked |= {_inode(f) for f in _files(snap, recursive=True)}
    return linked


def _running_pulls(vault: Vault) -> tuple[dict[str, Envelope | None], list[str]]:
    """Digest -> envelope of each pull in progress (None when its marker does not read), and
    the markers that did not read."""
    envelopes = {e.digest: e for e in vault.pulls_in_progress()}
    running: dict[str, Envelope | None] = {}
    for marker in vault.incoming.glob("*.pull"):
        digest = marker.name.removesuffix(".pull")
        if _locked(marker):
            running[digest] = envelopes.get(digest)
    return running, sorted(f"{d[:16]}.pull" for d, e in running.items() if e is None)


def _incoming_plan(vault: Vault, running: set[str], keep: set[Path], now: float, plan: _Plan) -> None:
    for entry in sorted(vault.incoming.iterdir()):
        name = entry.name
        pull = _PULL_FILE.fullmatch(name)
        if pull is not None:
            if pull.group(1) not in running:
                plan.items.append(Item("pull", entry, "a pull nobody is running any more left it"))
        elif name.endswith(UPLOAD_STAGING_SUFFIX):
            if entry not in keep and _newest_mtime(entry) < now - UPLOAD_TTL:
                plan.items.append(Item("upload", entry, f"an upload untouched for {UPLOAD_TTL:g} s"))
        elif name.startswith(".link-"):
            plan.items.append(Item("leftover", entry, "a link an admission left half-made"))
        elif entry.is_dir() and not entry.is_symlink() and _STAGING.fullmatch(name):
            if not _locked(entry):
                plan.items.append(Item("staging", entry, "staging whose command has ended"))
        elif entry not in keep and _newest_mtime(entry) < now - STALE_AFTER:
            plan.items.append(Item("staging", entry, f"untouched for {STALE_AFTER:g} s and held by nobody"))


def _locked(path: Path) -> bool:
    """Whether another open file holds a lock on PATH (a live pull's marker, a staging in use)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock just taken
    return False


def _freed_bytes(items: Iterable[Item]) -> int:
    """Bytes of the inodes whose every link is deleted by ITEMS, each inode counted once."""
    seen: dict[tuple[int, int], list[int]] = {}  # inode -> [size, links, links deleted]
    for item in items:
        for path in _walk(item.path):
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                slot = seen.setdefault((st.st_dev, st.st_ino), [st.st_size, st.st_nlink, 0])
                slot[2] += 1
    return sum(size for size, links, deleted in seen.values() if deleted >= links)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _delete_tree(path)
    else:
        path.unlink(missing_ok=True)


def _delete_tree(path: Path) -> None:
    """Delete a directory tree; read-only files go too (only the directories need to be writable)."""
    def retry(func: Any, target: str, exc_info: Any) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return
        os.chmod(os.path.dirname(target), 0o700)  # a directory made read-only: the only thing that stops unlink
        func(target)

    if path.exists():
        shutil.rmtree(path, onerror=retry)


# ---- du -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Bytes a release (or a model) holds: `total` of its distinct blobs, `unique` of those no
    other release (model) uses, `shared` the rest; `missing` blobs it names that are gone."""

    name: str
    version: str | None
    digest: str | None
    total: int
    unique: int
    shared: int
    missing: int = 0

    @property
    def ref(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "name": self.name}
        if self.version is not None:
            out |= {"version": self.version, "digest": self.digest}
        return out | {"total": self.total, "unique": self.unique, "shared": self.shared, "missing_blobs": self.missing}


@dataclass(frozen=True)
class DiskUsage:
    releases: tuple[Usage, ...]
    models: tuple[Usage, ...]
    blobs: int  # files in blobs/
    blob_bytes: int  # each blob once
    snapshot_copy_bytes: int  # snapshot files that are not a link to a blob (a copy, or an older inode)
    layer_bytes: int
    staging_bytes: int  # incoming/: pulls, uploads, imports under way or left behind
    disk_bytes: int  # all of the above, each inode once

    def to_dict(self) -> dict[str, Any]:
        return {"releases": [u.to_dict() for u in self.releases], "models": [u.to_dict() for u in self.models],
                "vault": {"blobs": self.blobs, "blob_bytes": self.blob_bytes,
                          "snapshot_copy_bytes": self.snapshot_copy_bytes, "layer_bytes": self.layer_bytes,
                          "staging_bytes": self.staging_bytes, "disk_bytes": self.disk_bytes}}


def disk_usage(vault: Vault, ref: str | None = None) -> DiskUsage:
    """Bytes per model and per release (all of them, or those of REF: NS/NAME or NS/NAME@V),
    and the vault's totals. Shared and unique are judged against the whole vault."""
    readable = [r for r in rows(vault) if r.manifest is not None]
    sizes: dict[str, int] = {}
    for blob in _files(vault.blobs):
        sizes[blob.name] = blob.lstat().st_size
    uses = {r.digest: {vault.blob_path(f).name for f in r.manifest.files} for r in readable if r.manifest}
    by_model: dict[str, set[str]] = {}
    for r in readable:
        by_model.setdefault(r.name, set()).update(uses[r.digest])

    def usage(name: str, version: str | None, digest: str | None, mine: set[str], others: Iterable[set[str]]) -> Usage:
        elsewhere = set().union(*others)
        total = sum(sizes.get(b, 0) for b in mine)
        unique = sum(sizes.get(b, 0) for b in mine - elsewhere)
        return Usage(name, version, digest, total, unique, total - unique, sum(1 for b in mine if b not in sizes))

    wanted = Ref.parse(ref) if ref is not None else None
    chosen = [r for r in readable if wanted is None or (r.name == wanted.name
                                                         and wanted.version in (None, r.version))]
    if wanted is not None and not chosen:
        raise NotFoundError(f"{wanted} is not in the vault", hint="seedvault list shows what is here")
    releases = tuple(usage(r.name, r.version, r.digest, uses[r.digest],
                           (b for d, b in uses.items() if d != r.digest)) for r in chosen)
    models = tuple(usage(n, None, None, by_model[n], (b for m, b in by_model.items() if m != n))
                   for n in sorted({r.name for r in chosen}))

    blob_inodes = {_inode(b): sizes[b.name] for b in _files(vault.blobs)}
    everything: dict[tuple[int, int], int] = dict(blob_inodes)
    copies: dict[tuple[int, int], int] = {}
    for f in _files(vault.snapshots, recursive=True):
        st = f.lstat()
        if (st.st_dev, st.st_ino) not in blob_inodes:
            copies[(st.st_dev, st.st_ino)] = st.st_size
    layers = {_inode(f): f.lstat().st_size for f in _files(vault.layers)}
    staging = {_inode(f): f.lstat().st_size for f in _files(vault.incoming, recursive=True)}
    for part in (copies, layers, staging):
        everything.update(part)
    return DiskUsage(releases, models, len(blob_inodes), sum(blob_inodes.values()), sum(copies.values()),
                     sum(layers.values()), sum(staging.values()), sum(everything.values()))


# ---- list: how each release stands here ------------------------------------------------------

Status = Literal["trusted", "refused", "yanked", "expired"]


def release_status(client: Client, entry: Entry) -> tuple[Status, str | None]:
    """How a stored release stands under the client's policy now, and why when not trusted:
    refused (the reason), expired (its signed expiry passed), yanked (its publisher's reason)."""
    try:
        evaluate(entry.envelope, client.policy)
    except ExpiredError as exc:
        return "expired", str(exc)
    except Error as exc:
        return "refused", str(exc)
    reason = client.yank_reason(entry.manifest)
    return ("yanked", reason) if reason is not None else ("trusted", None)


def matches(pattern: str | None, name: str, version: str) -> bool:
    """A `list` PATTERN: a glob on the model name (`acme/*`), or on NS/NAME@VERSION."""
    return pattern is None or fnmatchcase(name, pattern) or fnmatchcase(f"{name}@{version}", pattern)


# ---- small file helpers -----------------------------------------------------------------------


def _dirs(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from (p for p in path.iterdir() if p.is_dir() and not p.is_symlink())


def _files(path: Path, *, recursive: bool = False) -> Iterator[Path]:
    """Regular files in PATH (and below it, with `recursive`), never following a link."""
    if not path.is_dir():
        return
    for p in path.rglob("*") if recursive else path.iterdir():
        if stat.S_ISREG(p.lstat().st_mode):
            yield p


def _walk(path: Path) -> Iterator[Path]:
    if path.is_dir() and not path.is_symlink():
        yield from (p for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
    elif os.path.lexists(path):
        yield path


def _inode(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_dev, st.st_ino


def _newest_mtime(path: Path) -> float:
    try:
        return max([path.lstat().st_mtime] + [p.lstat().st_mtime for p in _walk(path)])
    except OSError:  # vanished while looking: nothing to collect
        return float("inf")
