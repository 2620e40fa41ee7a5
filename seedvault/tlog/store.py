"""A registry node's log, in the index's database: entries, every full subtree's hash, and
checkpoints (tables log_* of schema version 3, seedvault/registry/schema.py).

Nodes sharing one index (PostgreSQL) share this log: one key, one origin, one sequence.
One writer sequences: `append` runs in one transaction that first takes the log's lock
(on PostgreSQL a transaction-level advisory lock, so a second node's append waits for the
first's commit and then reads the size it left; on SQLite the write lock, BEGIN
IMMEDIATE), reads the size, numbers the entries, stores them and the hashes of every
subtree they complete (the tiles' contents), then signs the checkpoint over the new root
and stores it. So two appends never number one index twice, the tiles a checkpoint
covers are never behind it, and a crash (kill -9, power loss: synchronous=FULL on SQLite)
leaves either the log before the append or the log after it, never a checkpoint over
hashes that are not there.

The verifier key the log was created with is stored beside it: a node whose log key
differs is refused at start (two keys would sign two histories under one origin).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from seedvault.errors import NotFoundError, UsageError
from seedvault.tlog.checkpoint import Checkpoint, open_checkpoint
from seedvault.tlog.entry import Kind, LogEntry
from seedvault.tlog.merkle import consistency_proof, inclusion_proof, leaf_hash, node_hash, root_hash
from seedvault.tlog.note import Note, NoteSignature, Signer
from seedvault.tlog.proof import TlogProof
from seedvault.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, encode_entries

if TYPE_CHECKING:
    from seedvault.registry.database import Database, Session

# pg_advisory_xact_lock key of the log's sequencer (the schema's migration lock is another).
LOG_LOCK = 0x5EED7106


class _Reader:
    """The hashes `merkle` asks for, read in one session (a snapshot or the append's own)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def node(self, level: int, index: int) -> bytes:
        rows = self.session.query("SELECT hash FROM log_hashes WHERE level = ? AND idx = ?", (level, index))
        if not rows:
            raise NotFoundError(f"the log has no hash for level {level}, index {index}")
        return bytes(rows[0][0])


class LogStore:
    """The log in `where`: the index's database, or (standalone: tests, benchmarks) a SQLite
    file of its own at that path. `legacy`: the SQLite file a node kept its log in before
    the log moved into the index's database; imported once, when this log is created."""

    def __init__(self, where: Database | Path, signer: Signer, *, legacy: Path | None = None) -> None:
        # Imported here: seedvault.registry imports the node, which imports this module.
        from seedvault.registry.database import SQLiteDatabase
        from seedvault.registry.schema import migrate

        if isinstance(where, Path):
            where.parent.mkdir(parents=True, exist_ok=True)
            self.db: Database = SQLiteDatabase(where)
            self._owned = True
        else:
            self.db, self._owned = where, False
        try:
            migrate(self.db)  # the log's tables are the schema's (a no-op when the index made them)
        except BaseException:
            self.close()
            raise
        self.signer = signer
        self.origin = signer.name
        self.imported = False  # whether `legacy` was copied in (its file may then be moved away)
        if self.db.dialect == "sqlite":
            self.db.execute("PRAGMA synchronous=FULL")  # a checkpoint handed out must survive a power loss
        self._open(legacy)

    def _open(self, legacy: Path | None) -> None:
        """Create the log (its key row and the checkpoint of size 0), or check this node's key
        is the one it was created with; under the writer's lock, so two nodes starting at
        once against a fresh database create one log."""
        vkey = self.signer.verifier.vkey
        with self._write() as tx:
            rows = tx.query("SELECT vkey FROM log_key")
            if rows:
                if rows[0][0] != vkey:
                    raise UsageError(
                        f"transparency log in {self.db.where}: it was created with the log key {rows[0][0]}, "
                        f"and this node's log key is {vkey}: one log is signed by one key",
                        hint="give every node sharing this database a copy of the first node's log key file "
                             "(log_key in node.toml names it), or point this node at a database of its own")
                return
            if tx.query("SELECT 1 FROM log_checkpoints LIMIT 1"):
                # Made before the key was recorded: impossible with this schema, so refuse to guess.
                raise UsageError(f"transparency log in {self.db.where}: it has checkpoints but no log key")
            tx.execute("INSERT INTO log_key VALUES (?, ?)", (vkey, time.time()))
            if legacy is not None and legacy.exists():
                self._import(tx, legacy)
            else:
                self._sign(tx, 0)  # an empty log has a checkpoint too, so clients can start from it

    def _import(self, tx: Session, legacy: Path) -> None:
        """Copy a log of an earlier seedvault (its own SQLite file) row for row: the same
        entries, hashes and signed checkpoints, so its history goes on rather than a second
        log under the same key starting at 0 (a fork, to every client and witness)."""
        try:
            with closing(sqlite3.connect(legacy)) as old:
                entries = old.execute("SELECT idx, kind, digest, envelope, name, data FROM entries").fetchall()
                hashes = old.execute("SELECT level, idx, hash FROM nodes").fetchall()
                checkpoints = old.execute("SELECT size, note FROM checkpoints").fetchall()
        except sqlite3.Error as exc:
            raise UsageError(f"the log of an earlier seedvault at {legacy} cannot be read ({exc})",
                             hint="restore the file, or move it away to start a new log (with a new key)") from None
        if not checkpoints:
            self._sign(tx, 0)
            return
        last = max(checkpoints)
        # Refused unless signed by this node's key: the key file and the log must belong together.
        open_checkpoint(bytes(last[1]), self.signer.verifier, [], f"the latest checkpoint in {legacy}")
        for row in entries:
            tx.execute("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?, ?)", (*row[:5], bytes(row[5])))
        for level, idx, digest in hashes:
            tx.execute("INSERT INTO log_hashes VALUES (?, ?, ?)", (level, idx, bytes(digest)))
        for size, note in checkpoints:
            tx.execute("INSERT INTO log_checkpoints VALUES (?, ?)", (size, bytes(note)))
        self.imported = True

    def close(self) -> None:
        if self._owned:
            self.db.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One transaction under the log's single writer (see the module's docstring)."""
        with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":
                # Released at commit or rollback: a node killed mid-append holds it no longer.
                tx.query("SELECT pg_advisory_xact_lock(?)", (LOG_LOCK,))
            yield tx

    # ---- writing ------------------------------------------------------------------------
    def append(self, entries: list[LogEntry]) -> int:
        """Log the entries; returns the new tree size. Entries already logged (the same kind,
        digest and envelope) are skipped, so a replay after a crash, or the same statement
        recorded by two nodes, logs nothing twice."""
        with self._write() as tx:
            size = _size(tx)  # after the lock: the size the last writer committed
            for entry in entries:
                if _has(tx, entry):
                    continue
                data = entry.to_bytes()
                tx.execute("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?, ?)",
                           (size, entry.kind, entry.digest, entry.envelope, entry.name, data))
                self._add_leaf(tx, size, leaf_hash(data))
                size += 1
            if size != _checkpointed(tx):
                self._sign(tx, size)
            return size

    def _add_leaf(self, tx: Session, index: int, leaf: bytes) -> None:
        tx.execute("INSERT INTO log_hashes VALUES (0, ?, ?)", (index, leaf))
        level, current, reader = 0, leaf, _Reader(tx)
        while index & 1:  # this leaf completes the subtree of its left siblings, level by level
            left = reader.node(level, index - 1)
            current = node_hash(left, current)
            level, index = level + 1, index >> 1
            tx.execute("INSERT INTO log_hashes VALUES (?, ?, ?)", (level, index, current))

    def _sign(self, tx: Session, size: int) -> None:
        root = root_hash(_Reader(tx), size)
        note = Checkpoint(self.origin, size, root).sign(self.signer)
        tx.execute("INSERT INTO log_checkpoints VALUES (?, ?)", (size, note.to_bytes()))

    def add_cosignatures(self, size: int, sigs: tuple[NoteSignature, ...]) -> None:
        """Witnesses' cosignatures (already verified by the caller) on the checkpoint of `size`.
        Under the writer's lock: two nodes adding to one checkpoint at once both keep theirs."""
        with self._write() as tx:
            rows = tx.query("SELECT note FROM log_checkpoints WHERE size = ?", (size,))
            if not rows:
                return
            note = Note.parse(bytes(rows[0][0]), "stored checkpoint").with_signatures(sigs)
            tx.execute("UPDATE log_checkpoints SET note = ? WHERE size = ?", (note.to_bytes(), size))

    # ---- reading ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        with self.db.snapshot() as s:
            return _checkpointed(s)

    def checkpoint(self) -> bytes:
        with self.db.snapshot() as s:
            return bytes(s.query("SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1")[0][0])

    def tile(self, level: int, index: int, width: int) -> bytes:
        """The hashes of a tile of the latest checkpoint's tree; NotFoundError beyond it."""
        with self.db.snapshot() as s:
            size = _checkpointed(s)
            first = index * TILE_WIDTH
            if level * TILE_HEIGHT >= 64 or first + width > size >> (level * TILE_HEIGHT):
                raise NotFoundError(f"no tile {level}/{index} of width {width} in a log of {size} entries")
            rows = s.query("SELECT hash FROM log_hashes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                           (level * TILE_HEIGHT, first, first + width))
        return b"".join(bytes(r[0]) for r in rows)

    def entry_bundle(self, index: int, width: int) -> bytes:
        with self.db.snapshot() as s:
            size = _checkpointed(s)
            first = index * TILE_WIDTH
            if first + width > size:
                raise NotFoundError(f"no entry bundle {index} of width {width} in a log of {size} entries")
            rows = s.query("SELECT data FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                           (first, first + width))
        return encode_entries([bytes(r[0]) for r in rows])

    def entries(self, start: int, stop: int) -> list[bytes]:
        with self.db.snapshot() as s:
            rows = s.query("SELECT data FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop))
        return [bytes(r[0]) for r in rows]

    def has(self, digest: str, kind: Kind = "release") -> bool:
        with self.db.snapshot() as s:
            return bool(s.query("SELECT 1 FROM log_entries WHERE digest = ? AND kind = ? LIMIT 1", (digest, kind)))

    def index_of(self, digest: str, kind: Kind = "release") -> int:
        with self.db.snapshot() as s:
            return _index_of(s, digest, kind)

    def proof(self, digest: str, kind: Kind = "release") -> TlogProof:
        """The .tlog-proof of the first entry logged for `digest`, in the latest checkpoint:
        read in one snapshot, so the proof and the checkpoint are of one tree."""
        with self.db.snapshot() as s:
            index = _index_of(s, digest, kind)
            row = s.query("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")[0]
            size, note = int(row[0]), bytes(row[1])
            path = inclusion_proof(_Reader(s), index, size)
            data = bytes(s.query("SELECT data FROM log_entries WHERE idx = ?", (index,))[0][0])
        return TlogProof(index, tuple(path), note, data)

    def consistency(self, old: int, new: int) -> list[bytes]:
        with self.db.snapshot() as s:
            return consistency_proof(_Reader(s), old, new)

    def root(self, size: int) -> bytes:
        with self.db.snapshot() as s:
            return root_hash(_Reader(s), size)


def _size(s: Session) -> int:
    return int(s.query("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries")[0][0])


def _checkpointed(s: Session) -> int:
    return int(s.query("SELECT COALESCE(MAX(size), -1) FROM log_checkpoints")[0][0])


def _has(s: Session, entry: LogEntry) -> bool:
    return bool(s.query("SELECT 1 FROM log_entries WHERE digest = ? AND kind = ? AND envelope = ? LIMIT 1",
                        (entry.digest, entry.kind, entry.envelope)))


def _index_of(s: Session, digest: str, kind: Kind) -> int:
    rows = s.query("SELECT MIN(idx) FROM log_entries WHERE digest = ? AND kind = ?", (digest, kind))
    if not rows or rows[0][0] is None:
        raise NotFoundError(f"this registry's log has no {kind} with digest {digest}")
    return int(rows[0][0])


def now() -> int:
    return int(time.time())
