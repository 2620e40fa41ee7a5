"""A registry node's log, in SQLite: entries, every full subtree's hash, and checkpoints.

One writer sequences: `append` takes SQLite's write lock (BEGIN IMMEDIATE), numbers the
entries, stores them and the hashes of every subtree they complete (the tiles' contents),
then signs the checkpoint over the new root and stores it, all in that one transaction.
So the tiles a checkpoint covers are never behind it, and a crash (kill -9, power loss:
synchronous=FULL) leaves either the log before the append or the log after it, never a
checkpoint over hashes that are not there. Tiles are served from the `nodes` table.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seedvault._sqlite import open_database
from seedvault.errors import NotFoundError
from seedvault.tlog.checkpoint import Checkpoint
from seedvault.tlog.entry import Kind, LogEntry
from seedvault.tlog.merkle import consistency_proof, inclusion_proof, leaf_hash, node_hash, root_hash
from seedvault.tlog.note import Note, NoteSignature, Signer
from seedvault.tlog.proof import TlogProof
from seedvault.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, encode_entries

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, digest TEXT NOT NULL,
                                    envelope TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_digest ON entries (digest, kind);
CREATE INDEX IF NOT EXISTS entries_by_name ON entries (name);
CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
                                  PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
"""


class _Reader:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def node(self, level: int, index: int) -> bytes:
        row = self.db.execute("SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index)).fetchone()
        if row is None:
            raise NotFoundError(f"the log has no hash for level {level}, index {index}")
        return bytes(row[0])


class LogStore:
    def __init__(self, path: Path, signer: Signer) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_database(path, SCHEMA)
        self.db.execute("PRAGMA synchronous=FULL")  # a checkpoint handed out must survive a power loss
        self.signer = signer
        self.origin = signer.name
        self._lock = threading.Lock()  # one connection, used from the node worker and the log routes
        self._reader = _Reader(self.db)
        with self._lock:
            if self.db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0:
                self._sign(0)  # an empty log has a checkpoint too, so clients can start from it

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # ---- writing ------------------------------------------------------------------------
    def append(self, entries: list[LogEntry]) -> int:
        """Log the entries; returns the new tree size. Entries already logged (the same kind,
        digest and envelope) are skipped, so a replay after a crash logs nothing twice."""
        with self._write():
            size = self._size()
            for entry in entries:
                if self._has(entry):
                    continue
                data = entry.to_bytes()
                self.db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                                (size, entry.kind, entry.digest, entry.envelope, entry.name, data))
                self._add_leaf(size, leaf_hash(data))
                size += 1
            if size != self._checkpointed():
                self._sign(size)
            return size

    def _add_leaf(self, index: int, leaf: bytes) -> None:
        self.db.execute("INSERT INTO nodes VALUES (0, ?, ?)", (index, leaf))
        level, current = 0, leaf
        while index & 1:  # this leaf completes the subtree of its left siblings, level by level
            left = self._reader.node(level, index - 1)
            current = node_hash(left, current)
            level, index = level + 1, index >> 1
            self.db.execute("INSERT INTO nodes VALUES (?, ?, ?)", (level, index, current))

    def _sign(self, size: int) -> None:
        root = root_hash(self._reader, size)
        note = Checkpoint(self.origin, size, root).sign(self.signer)
        self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (size, note.to_bytes()))

    def add_cosignatures(self, size: int, sigs: tuple[NoteSignature, ...]) -> None:
        """Witnesses' cosignatures (already verified by the caller) on the checkpoint of `size`."""
        with self._write():
            row = self.db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
            if row is None:
                return
            note = Note.parse(bytes(row[0]), "stored checkpoint").with_signatures(sigs)
            self.db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note.to_bytes(), size))

    # ---- reading ------------------------------------------------------------------------
    def _size(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0])

    def _checkpointed(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(size), -1) FROM checkpoints").fetchone()[0])

    def _has(self, entry: LogEntry) -> bool:
        return self.db.execute("SELECT 1 FROM entries WHERE digest = ? AND kind = ? AND envelope = ?",
                               (entry.digest, entry.kind, entry.envelope)).fetchone() is not None

    @property
    def size(self) -> int:
        with self._lock:
            return self._checkpointed()

    def checkpoint(self) -> bytes:
        with self._lock:
            row = self.db.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return bytes(row[0])

    def tile(self, level: int, index: int, width: int) -> bytes:
        """The hashes of a tile of the latest checkpoint's tree; NotFoundError beyond it."""
        with self._lock:
            size = self._checkpointed()
            first = index * TILE_WIDTH
            if level * TILE_HEIGHT >= 64 or first + width > size >> (level * TILE_HEIGHT):
                raise NotFoundError(f"no tile {level}/{index} of width {width} in a log of {size} entries")
            rows = self.db.execute("SELECT hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                                   (level * TILE_HEIGHT, first, first + width)).fetchall()
        return b"".join(bytes(r[0]) for r in rows)

    def entry_bundle(self, index: int, width: int) -> bytes:
        with self._lock:
            size = self._checkpointed()
            first = index * TILE_WIDTH
            if first + width > size:
                raise NotFoundError(f"no entry bundle {index} of width {width} in a log of {size} entries")
            rows = self.db.execute("SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                                   (first, first + width)).fetchall()
        return encode_entries([bytes(r[0]) for r in rows])

    def entries(self, start: int, stop: int) -> list[bytes]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                                   (start, stop)).fetchall()
        return [bytes(r[0]) for r in rows]

    def has(self, digest: str, kind: Kind = "release") -> bool:
        with self._lock:
            return self.db.execute("SELECT 1 FROM entries WHERE digest = ? AND kind = ?",
                                   (digest, kind)).fetchone() is not None

    def index_of(self, digest: str, kind: Kind = "release") -> int:
        with self._lock:
            row = self.db.execute("SELECT MIN(idx) FROM entries WHERE digest = ? AND kind = ?",
                                  (digest, kind)).fetchone()
        if row is None or row[0] is None:
            raise NotFoundError(f"this registry's log has no {kind} with digest {digest}")
        return int(row[0])

    def proof(self, digest: str, kind: Kind = "release") -> TlogProof:
        """The .tlog-proof of the first entry logged for `digest`, in the latest checkpoint."""
        index = self.index_of(digest, kind)
        with self._lock:
            row = self.db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            size, note = int(row[0]), bytes(row[1])
            path = inclusion_proof(self._reader, index, size)
            data = bytes(self.db.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()[0])
        return TlogProof(index, tuple(path), note, data)

    def consistency(self, old: int, new: int) -> list[bytes]:
        with self._lock:
            return consistency_proof(self._reader, old, new)

    def root(self, size: int) -> bytes:
        with self._lock:
            return root_hash(self._reader, size)


def now() -> int:
    return int(time.time())
