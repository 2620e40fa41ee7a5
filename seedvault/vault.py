"""The local store: content-addressed blobs, one snapshot per name@version, and SQLite.

Layout under the vault directory:

    index.db                     manifests, envelopes, first-seen digests, latest, records
    blobs/<pieces root>          file contents, named by their verified BEP 52 merkle root, read-only
    snapshots/<ns>/<name>/<ver>/ hard links to blobs, exactly the manifest's files
    layers/<pieces root>         verified BitTorrent v2 piece layers, for seeding without re-reading
    incoming/<digest>/           staging for bytes not yet verified (never a snapshot)
    housekeeping.lock            shared by admissions, exclusive for gc and rm (see seedvault/housekeeping.py)

The vault stores what it is given after the caller verified it; it enforces the rules
that need its memory: a name@version keeps the first digest ever seen (rollback and
substitution), and `latest` never moves to an older release. Snapshot directories appear
by one atomic rename, so a reader sees either nothing or the complete verified set.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from seedvault import hashing
from seedvault._sqlite import open_database
from seedvault.errors import BusyError, Error, IntegrityError, NotFoundError, UsageError
from seedvault.manifest import FileEntry, Manifest, Ref, format_time
from seedvault.signing.dsse import Envelope
from seedvault.signing.trusted import check_not_substituted, is_newer

MAX_PULL_MARKER = 16 * 1024 * 1024  # an envelope, as any the vault accepts
HOUSEKEEPING_LOCK = "housekeeping.lock"  # under the vault root; see `Vault.housekeeping_lock`
HOUSEKEEPING_WAIT_S = 120.0  # an admission or a gc waits this long for the other, then says the vault is busy
BLOB_RECORD = "blob"  # the digest column of a blob's own record (snapshot files record their release)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifests (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    created TEXT NOT NULL,
    envelope BLOB NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS first_seen (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS latest (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    path TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    pieces_root TEXT,
    verified_at TEXT NOT NULL
);
-- One release per name@version, whoever writes: two threads or processes admitting at once
-- cannot both succeed (the first-seen check runs inside the writing transaction too).
CREATE UNIQUE INDEX IF NOT EXISTS manifests_name_version ON manifests (name, version);
"""

__all__ = ["Damaged", "Entry", "FileRecord", "Vault", "is_newer"]


@dataclass(frozen=True)
class Entry:
    """One stored manifest with its envelope."""

    digest: str
    envelope: Envelope
    manifest: Manifest
    added_at: str


@dataclass(frozen=True)
class Damaged:
    """A stored envelope that no longer reads: named, so the rest of the vault stays usable."""

    digest: str
    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class FileRecord:
    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileRecord:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class Vault:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.snapshots = root / "snapshots"
        self.incoming = root / "incoming"
        self.layers = root / "layers"
        for d in (self.blobs, self.snapshots, self.incoming, self.layers):
            d.mkdir(parents=True, exist_ok=True)
        # Shared across threads (a server runs vault work in an executor); writes are
        # serialized by the lock, and Python's sqlite3 here is built thread-safe.
        self._db = open_database(root / "index.db", _SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- paths --------------------------------------------------------------------------
    def snapshot_dir(self, manifest: Manifest) -> Path:
        ns, name = manifest.name.split("/")
        return self.snapshots / ns / name / manifest.version

    def blob_path(self, entry: FileEntry) -> Path:
        """Blobs are named by what verification checks, the pieces root, not by the
        manifest's whole-file SHA-256 (which is carried for other tools and not re-hashed):
        a manifest cannot make two different contents share a blob name."""
        return self.blobs / (entry.pieces_root or EMPTY_SHA256)

    @contextlib.contextmanager
    def staging(self, digest: str) -> Iterator[Path]:
        """A private directory for unverified bytes; removed whatever happens."""
        path = self.incoming / f"{digest}.{uuid.uuid4().hex[:8]}"
        with self.housekeeping_lock(exclusive=False):  # gc sees it locked from its first moment
            path.mkdir(parents=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(fd, fcntl.LOCK_EX)  # in use while held: `gc` leaves a locked staging alone
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    @contextlib.contextmanager
    def pull_in_progress(self, envelope: Envelope) -> Iterator[Path]:
        """Mark a pull of ENVELOPE's release as running while the block runs: an exclusive lock
        on `incoming/<digest>.pull`, which holds the envelope. Housekeeping (`gc`) leaves alone a
        locked pull's staging, resume data and every blob its manifest names; two pulls of one
        release at once are refused. Yields the staging directory (kept for a later resume)."""
        marker = self.incoming / f"{envelope.digest}.pull"
        with contextlib.ExitStack() as claim:
            # Claimed under the shared housekeeping lock: gc never sees a marker made but not locked.
            claim.enter_context(self.housekeeping_lock(exclusive=False))
            fd = _lock_marker(marker, Manifest.from_payload(envelope.payload).ref)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, envelope.to_json())
                staging = self.incoming / envelope.digest
                staging.mkdir(parents=True, exist_ok=True)
                claim.close()  # the pull's own lock marks it from here on
                yield staging
            finally:
                os.close(fd)  # releases the lock; the marker stays beside resume data until gc or success

    def pulls_in_progress(self) -> list[Envelope]:
        """The envelopes of pulls running now (their marker locked by a live process)."""
        running = []
        for marker in sorted(self.incoming.glob("*.pull")):
            try:
                fd = os.open(marker, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # held: that pull is running
                    with contextlib.suppress(Error, OSError):
                        running.append(Envelope.from_json(marker.read_bytes()[:MAX_PULL_MARKER],
                                                          f"pull marker {marker.name}"))
                else:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return running

    # ---- rollback and substitution ----------------------------------------------------
    def _first_seen(self, db: sqlite3.Connection, manifest: Manifest) -> tuple[str, str] | None:
        row = db.execute(
            "SELECT digest, seen_at FROM first_seen WHERE name=? AND version=?",
            (manifest.name, manifest.version),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def check_not_substituted(self, manifest: Manifest, digest: str) -> None:
        """Refuse a manifest whose name@version was first seen with another digest (early,
        before any byte moves; `add` checks again inside its transaction)."""
        check_not_substituted(manifest, digest, self._first_seen(self._db, manifest))

    def _claim(self, manifest: Manifest, digest: str) -> None:
        """Record `digest` as the one release of its name@version, or raise RollbackError.

        Check and record happen in one write transaction, so of two admissions racing with
        different digests (threads of one node, or a node and a `mirror --once`) exactly
        one gets the snapshot; the other is refused before it touches it."""
        now = format_time(datetime.now(UTC))
        with self._tx() as db:
            check_not_substituted(manifest, digest, self._first_seen(db, manifest))
            db.execute(
                "INSERT OR IGNORE INTO first_seen (name, version, digest, seen_at) VALUES (?, ?, ?, ?)",
                (manifest.name, manifest.version, digest, now),
            )

    # ---- adding -------------------------------------------------------------------------
    def add(self, envelope: Envelope, manifest: Manifest, staged: Path, *, held: frozenset[str] = frozenset(),
            hashed: Mapping[str, os.stat_result] | None = None) -> Path:
        """Move verified staged files into blobs and publish the snapshot atomically.

        The caller has verified `staged` against `manifest` and the envelope under policy.
        Runs under the shared housekeeping lock: `gc` cannot delete a blob this links.
        A file whose blob is already here and still verifies (its record unchanged since it
        was hashed) is stored once: the staged copy is dropped and the snapshot links to
        the blob. Files in `held` were not staged at all (a delta pull left them out because
        this vault holds them); their blobs must still verify, or IntegrityError.

        `hashed`: each staged file as it was when the caller hashed it (taken before the
        hash, or from the reader that hashed it). A file whose inode, size, mtime or ctime
        differs now changed after it was verified: IntegrityError, and nothing is stored.
        """
        with self.housekeeping_lock(exclusive=False):
            return self._add(envelope, manifest, staged, held, hashed or {})

    def _add(self, envelope: Envelope, manifest: Manifest, staged: Path, held: frozenset[str],
             hashed: Mapping[str, os.stat_result]) -> Path:
        digest = envelope.digest
        self._claim(manifest, digest)
        final = self.snapshot_dir(manifest)
        new_blobs: list[Path] = []
        created = False
        # Everything that can refuse is checked before the first file moves: a refusal half-way
        # would leave staging without the files already moved (and then removed again).
        for f in manifest.files:
            if f.path in held:
                if not self.blob_verified(f):
                    raise IntegrityError(
                        f"{manifest.ref}: file {f.path!r} was taken from this vault's copy, which changed "
                        "since it was verified", path=f.path,
                        hint="run the same pull again: the file is then fetched from peers")
            else:
                _check_as_hashed(staged / f.path, hashed.get(f.path), manifest.ref, f.path)
        try:
            for f in manifest.files:
                blob = self.blob_path(f)
                src = staged / f.path
                if f.path not in held and _is_same_file(src, blob):
                    # The staged file is the blob itself (publish linked a file the vault held):
                    # just hashed, so recorded afresh; nothing to move.
                    self.record_verified(blob, BLOB_RECORD, f.pieces_root, os.stat(blob))
                    src.unlink()
                    continue
                if self.blob_verified(f):
                    if f.path not in held:
                        src.unlink()  # the same verified bytes are stored already: one copy
                    continue
                if f.path in held:
                    raise IntegrityError(
                        f"{manifest.ref}: file {f.path!r} was taken from this vault's copy, which changed "
                        "since it was verified", path=f.path,
                        hint="run the same pull again: the file is then fetched from peers")
                try:
                    damaged: os.stat_result | None = os.stat(blob)
                except FileNotFoundError:
                    damaged = None
                    new_blobs.append(blob)
                # A blob of this name that no longer verifies (damaged on disk) is replaced by the
                # freshly verified copy, and so is every snapshot file of other releases that
                # shared its inode: one re-import repairs them all.
                os.chmod(src, 0o444)
                os.replace(src, blob)
                self.record_verified(blob, BLOB_RECORD, f.pieces_root, blob.stat())
                if damaged is not None:
                    self._relink_sharers(damaged, blob)
            if not final.exists():
                self._publish_snapshot(final, manifest)
                created = True
            else:
                self._repair_snapshot(final, manifest)
            self._record(envelope, manifest)
        except BaseException:
            # A full disk or a failed record: nothing this call made is left without a record.
            # Snapshots already linked keep their inodes, so removing a new blob path loses
            # no one's bytes.
            if created:
                shutil.rmtree(final, ignore_errors=True)
            for blob in new_blobs:
                blob.unlink(missing_ok=True)
            raise
        return final

    def _relink_sharers(self, old: os.stat_result, blob: Path) -> None:
        """Point the snapshot files that were links to OLD (a damaged blob's inode) at BLOB."""
        rows = self._db.execute("SELECT path FROM records WHERE ino=? AND path != ?", (old.st_ino, str(blob)))
        for (path,) in rows.fetchall():
            target = Path(path)
            try:
                if not _same_inode(os.lstat(target), old) or self.snapshots not in target.parents:
                    continue
            except FileNotFoundError:
                continue
            tmp = self.incoming / f".link-{uuid.uuid4().hex}"
            self._link(blob, tmp)
            os.replace(tmp, target)

    def blob_verified(self, entry: FileEntry) -> bool:
        """Whether the blob for ENTRY exists and is unchanged since it was verified (its
        record: size, mtime, inode and ctime as they were when it was hashed)."""
        return self.has_valid_record(self.blob_path(entry), BLOB_RECORD, entry.pieces_root)

    def _link(self, blob: Path, target: Path) -> None:
        """Link TARGET to BLOB, keeping the verification records of the blob's inode valid.

        A new hard link changes the inode's ctime, which alone would make every record of
        it (the blob's and each snapshot's) look stale and cost a full re-hash. The change
        is ours: records that matched the inode just before the link are moved on to its
        new ctime, and only when size and mtime show that nothing else changed it."""
        before = os.stat(blob)
        _link_or_copy(blob, target)
        after = os.stat(blob)
        if (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns):
            with self._tx() as db:
                db.execute("UPDATE records SET ctime_ns=? WHERE ino=? AND size=? AND mtime_ns=? AND ctime_ns=?",
                           (after.st_ctime_ns, before.st_ino, before.st_size, before.st_mtime_ns,
                            before.st_ctime_ns))

    def _publish_snapshot(self, final: Path, manifest: Manifest) -> None:
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            for f in manifest.files:
                target = tmp / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self._link(self.blob_path(f), target)
            _fsync_dir(tmp)
            os.rename(tmp, final)  # atomic: the snapshot appears complete or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _repair_snapshot(self, snapshot: Path, manifest: Manifest) -> None:
        """Admitting a release again repairs its snapshot: each file is relinked to its freshly
        verified blob (one atomic rename per file), and files the manifest does not list go."""
        for f in manifest.files:
            target = snapshot / f.path
            blob = self.blob_path(f)
            with contextlib.suppress(OSError):
                if _same_inode(os.lstat(target), os.stat(blob)):
                    continue  # linked to the verified blob already (rename would do nothing)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.incoming / f".link-{uuid.uuid4().hex}"  # same filesystem, outside the snapshot
            self._link(blob, tmp)
            os.replace(tmp, target)
        wanted = {f.path for f in manifest.files}
        for dirpath, _dirs, files in os.walk(snapshot):
            for name in files:
                path = Path(dirpath) / name
                if path.relative_to(snapshot).as_posix() not in wanted:
                    path.unlink()

    def _record(self, envelope: Envelope, manifest: Manifest) -> None:
        now = format_time(datetime.now(UTC))
        digest = envelope.digest
        with self._tx() as db:
            check_not_substituted(manifest, digest, self._first_seen(db, manifest))
            row = db.execute("SELECT envelope FROM manifests WHERE digest=?", (digest,)).fetchone()
            if row:
                with contextlib.suppress(Error):  # one that no longer reads is replaced: repaired
                    envelope = self._stored_envelope(row[0], digest).merge(envelope)
            db.execute(
                "INSERT INTO manifests (digest, name, version, created, envelope, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET envelope=excluded.envelope",
                (digest, manifest.name, manifest.version, format_time(manifest.created),
                 envelope.to_json(), now),
            )
            current = db.execute("SELECT digest FROM latest WHERE name=?", (manifest.name,)).fetchone()
            if current is None or self._newer_than_stored(manifest, current[0]):
                db.execute(
                    "INSERT INTO latest (name, version, digest) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET version=excluded.version, digest=excluded.digest",
                    (manifest.name, manifest.version, digest),
                )

    def _newer_than_stored(self, manifest: Manifest, digest: str) -> bool:
        try:
            return is_newer(manifest, self._entry(digest).manifest)
        except Error:  # the release `latest` named no longer reads: any readable one replaces it
            return True

    def add_signatures(self, envelope: Envelope) -> Envelope:
        """Merge signatures into a stored envelope over the same payload.

        The caller passes only signatures that count under its policy
        (`signing.counted_signatures`); read and write happen in one transaction, so two
        approvals arriving at once both stay."""
        with self._tx() as db:
            row = db.execute("SELECT envelope FROM manifests WHERE digest=?", (envelope.digest,)).fetchone()
            if row is None:
                raise NotFoundError(f"no manifest with digest {envelope.digest} in the vault")
            merged = self._stored_envelope(row[0], envelope.digest).merge(envelope)
            db.execute("UPDATE manifests SET envelope=? WHERE digest=?", (merged.to_json(), envelope.digest))
        return merged

    # ---- reading ------------------------------------------------------------------------
    def _entry(self, digest: str) -> Entry:
        row = self._db.execute(
            "SELECT envelope, added_at FROM manifests WHERE digest=?", (digest,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no manifest with digest {digest} in the vault")
        envelope = self._stored_envelope(row[0], digest)
        return Entry(digest, envelope, Manifest.from_payload(envelope.payload), row[1])

    @staticmethod
    def _stored_envelope(raw: bytes, digest: str) -> Envelope:
        return Envelope.from_json(raw, f"stored envelope {digest}")

    def has(self, digest: str) -> bool:
        return self._db.execute("SELECT 1 FROM manifests WHERE digest=?", (digest,)).fetchone() is not None

    def get(self, digest: str) -> Entry:
        return self._entry(digest)

    def resolve(self, ref: Ref | str) -> Entry:
        """`ns/name@version` to its stored entry; `ns/name` to the newest release."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        if ref.version is None:
            row = self._db.execute("SELECT digest FROM latest WHERE name=?", (ref.name,)).fetchone()
        else:
            row = self._db.execute(
                "SELECT digest FROM manifests WHERE name=? AND version=?", (ref.name, ref.version)
            ).fetchone()
        if row is None:
            known = [v for (v,) in self._db.execute(
                "SELECT version FROM manifests WHERE name=? ORDER BY created", (ref.name,))]
            raise NotFoundError(
                f"{ref} is not in the vault"
                + (f"; versions present: {', '.join(known)}" if known else ""),
                hint="import a bundle or pull it first (seedvault list shows what is here)",
            )
        return self._entry(row[0])

    def entries(self) -> list[Entry]:
        """Every release that reads; one that does not (see `damaged`) never hides the rest."""
        return [e for e in self._scan() if isinstance(e, Entry)]

    def damaged(self) -> list[Damaged]:
        """Stored releases whose envelope no longer reads, with the reason."""
        return [e for e in self._scan() if isinstance(e, Damaged)]

    def _scan(self) -> Iterator[Entry | Damaged]:
        rows = self._db.execute("SELECT digest, name, version FROM manifests ORDER BY name, created, rowid").fetchall()
        for digest, name, version in rows:
            try:
                yield self._entry(digest)
            except Error as exc:
                yield Damaged(digest, name, version, str(exc))

    def latest_version(self, name: str) -> str | None:
        row = self._db.execute("SELECT version FROM latest WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    # ---- piece layers -------------------------------------------------------------------
    def save_layers(self, manifest: Manifest, layers: dict[str, bytes]) -> None:
        """Keep verified piece layers, named by the pieces root they hash up to (under the
        shared housekeeping lock, so `gc` sees a layer's temporary file only when it is stale)."""
        with self.housekeeping_lock(exclusive=False):
            self._save_layers(manifest, layers)

    def _save_layers(self, manifest: Manifest, layers: dict[str, bytes]) -> None:
        for f in manifest.files:
            layer = layers.get(f.path)
            if not layer or f.pieces_root is None:  # files within one piece have no layer
                continue
            target = self.layers / f.pieces_root
            if not target.exists():
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
                tmp.write_bytes(layer)
                os.replace(tmp, target)

    def load_layer(self, pieces_root: str) -> bytes | None:
        """A stored piece layer; the caller checks it against the signed root before use."""
        try:
            return (self.layers / pieces_root).read_bytes()
        except FileNotFoundError:
            return None

    # ---- verification records (fast mode) -------------------------------------------
    def record_verified(self, path: Path, digest: str, pieces_root: str | None, st: os.stat_result) -> None:
        rec = FileRecord.of(st)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (str(path), digest, rec.size, rec.mtime_ns, rec.ino, rec.ctime_ns, pieces_root,
                 format_time(datetime.now(UTC))),
            )

    def forget_records(self, path: Path) -> None:
        """PATH's verification record goes: the next check hashes it again."""
        with self._tx() as db:
            db.execute("DELETE FROM records WHERE path=?", (str(path),))

    def has_valid_record(self, path: Path, digest: str, pieces_root: str | None) -> bool:
        """True only if the file is unchanged since a full verification of these bytes."""
        row = self._db.execute(
            "SELECT digest, size, mtime_ns, ino, ctime_ns, pieces_root FROM records WHERE path=?",
            (str(path),),
        ).fetchone()
        if row is None:
            return False
        try:
            current = FileRecord.of(path.stat())
        except FileNotFoundError:
            return False
        return (row[0], row[5]) == (digest, pieces_root) and FileRecord(*row[1:5]) == current

    # ---- housekeeping: the lock `gc` and admission share, and removing a release ---------
    # `gc` (seedvault/housekeeping.py) deletes blobs no manifest or running pull names, and
    # staging nothing holds. It takes HOUSEKEEPING_LOCK exclusively while it decides and
    # deletes; whatever makes a blob or a staging entry used holds it shared: an admission
    # (`add`, `save_layers`) for its whole run, a pull or a staging directory while it is
    # claimed (their own locks mark them in use afterwards). flock locks belong to one open
    # file, so threads of one process exclude each other as processes do.

    @contextlib.contextmanager
    def housekeeping_lock(self, *, exclusive: bool, timeout: float = HOUSEKEEPING_WAIT_S) -> Iterator[None]:
        """Hold the vault's housekeeping lock, shared or exclusive, waiting at most `timeout`."""
        fd = os.open(self.root / HOUSEKEEPING_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BusyError(
                            f"the vault at {self.root} is busy: expected "
                            + ("adding and cleaning to pause" if exclusive else "its cleanup (gc, rm) to finish")
                            + f" within {timeout:g} s, found it still running",
                            hint="try again when the other seedvault command has finished") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def drop_release(self, digest: str) -> None:
        """Forget one stored release: its manifests row, its verification records, and `latest`
        moved to the newest release of its name that remains (or dropped). `first_seen` stays:
        it is the memory that refuses another digest under this name@version later.

        The caller holds the housekeeping lock exclusively and removes the snapshot."""
        with self._tx() as db:
            row = db.execute("SELECT name, version FROM manifests WHERE digest=?", (digest,)).fetchone()
            if row is None:
                raise NotFoundError(f"no manifest with digest {digest} in the vault")
            name, version = row
            snapshot = self.snapshots.joinpath(*name.split("/"), version)
            prefix = f"{snapshot}{os.sep}"
            db.execute("DELETE FROM records WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
            db.execute("DELETE FROM manifests WHERE digest=?", (digest,))
            current = db.execute("SELECT digest FROM latest WHERE name=?", (name,)).fetchone()
            if current is None or current[0] != digest:
                return
            newest: Entry | None = None
            for (other,) in db.execute("SELECT digest FROM manifests WHERE name=?", (name,)).fetchall():
                with contextlib.suppress(Error):  # a release that no longer reads is never `latest`
                    entry = self._entry(other)
                    if newest is None or is_newer(entry.manifest, newest.manifest):
                        newest = entry
            if newest is None:
                db.execute("DELETE FROM latest WHERE name=?", (name,))
            else:
                db.execute("UPDATE latest SET version=?, digest=? WHERE name=?",
                           (newest.manifest.version, newest.digest, name))


REFLINK, HARD_LINK, COPY = "reflink", "hard link", "copy"
_FICLONE = 0x40049409  # Linux ioctl: make DST share SRC's extents, copy-on-write (btrfs, XFS, ...)


StoreMode = Literal["auto", "link", "copy"]


def place_file(src: Path, dst: Path, mode: StoreMode = "auto") -> str | None:
    """Put SRC at DST without copying its bytes where the filesystem allows: a reflink (an
    independent clone), else a hard link after making SRC read-only. Returns how, or None
    when the caller must copy (`mode` "copy", another filesystem, no support, or a hard link
    in "auto" mode for root: a read-only mode does not stop root from writing the file in
    place, which would change the vault's copy with it). SRC must be a regular file, not a
    link (checked on the opened file, and the link's inode checked against it)."""
    if mode == "copy":
        return None
    fd = hashing.open_regular(src, src.name)
    try:
        with contextlib.suppress(OSError):
            out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                fcntl.ioctl(out, _FICLONE, fd)
                return REFLINK
            except OSError:
                os.unlink(dst)
            finally:
                os.close(out)
        if mode == "auto" and os.geteuid() == 0:
            return None
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            return None
        opened, linked = os.fstat(fd), os.lstat(dst)
        if (opened.st_dev, opened.st_ino) != (linked.st_dev, linked.st_ino):  # swapped in between
            os.unlink(dst)
            return None
        os.fchmod(fd, opened.st_mode & 0o7555)  # read-only: it is the vault's copy now
        return HARD_LINK
    finally:
        os.close(fd)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o444)


def _lock_marker(marker: Path, ref: str, attempts: int = 10) -> int:
    """Open MARKER and hold an exclusive lock on it: the file the path names, not one a
    finishing pull unlinked between our open and our lock (checked, and opened again)."""
    for _ in range(attempts):
        fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"another pull of {ref} is running in this vault",
                             hint="wait for it to finish, or stop it first") from None
        try:
            if _same_inode(os.fstat(fd), os.stat(marker)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file no longer at that path: try again
    raise UsageError(f"could not claim the pull of {ref}: its marker kept changing", hint="run the pull again")


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _is_same_file(a: Path, b: Path) -> bool:
    try:
        return _same_inode(os.lstat(a), os.lstat(b))
    except FileNotFoundError:
        return False


def _check_as_hashed(src: Path, then: os.stat_result | None, ref: str, rel: str) -> None:
    """SRC must be the file that was hashed, unchanged since (inode, size, mtime, ctime)."""
    if then is None:
        return
    try:
        now = os.lstat(src)
    except FileNotFoundError:
        now = None
    fields = ("st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
    if now is None or any(getattr(now, k) != getattr(then, k) for k in fields):
        raise IntegrityError(f"{ref}: file {rel!r} changed after it was verified, before it was stored; "
                             "nothing was stored", path=rel, hint="run the command again")


def _fsync_dir(path: Path) -> None:
    for dirpath, _dirs, _files in os.walk(path):
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
