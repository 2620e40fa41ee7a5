"""The node's search index (SQLite, embedded): one row per accepted release.

The vault holds the envelopes and bytes; this index holds what a registry needs to list
and search quickly, and the node's own state: yanked releases, and the digests of removed
ones (tombstones, by digest and by name@version), so that neither a restart (which indexes
the vault), a mirror sync, nor anyone re-pushing the public envelope and bytes brings them
back. Only the node's admin lifts a removal (`lift`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedvault._sqlite import open_database
from seedvault.client import Client
from seedvault.errors import RemovedError
from seedvault.manifest import Manifest, format_time
from seedvault.signing import Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    created TEXT NOT NULL,
    license TEXT NOT NULL,
    publisher TEXT NOT NULL,
    publisher_keys TEXT NOT NULL,
    approver_keys TEXT NOT NULL,
    size INTEGER NOT NULL,
    text TEXT NOT NULL,
    yanked INTEGER NOT NULL DEFAULT 0,
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS releases_name ON releases (name);
CREATE TABLE IF NOT EXISTS removed (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Release:
    digest: str
    name: str
    version: str
    created: str
    license: str
    publisher: str
    publisher_keys: tuple[str, ...]
    approver_keys: tuple[str, ...]
    size: int
    yanked: bool  # by this node's admin
    publisher_yank: str | None = None  # the reason, when the model's signed head yanks it
    head_sequence: int | None = None  # of the model's head accepted here (mirrors fetch newer ones only)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "digest": self.digest, "created": self.created,
            "license": self.license, "publisher": self.publisher, "publisher_keys": list(self.publisher_keys),
            "approver_keys": list(self.approver_keys), "size": self.size,
            "yanked": self.yanked or self.publisher_yank is not None,
            "yanked_by_admin": self.yanked, "yanked_by_publisher": self.publisher_yank,
            "head_sequence": self.head_sequence,
        }  # fmt: skip


class Index:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_database(path, _SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(releases)")}
        if "publisher_yank" not in columns:  # an index made before signed heads
            self._db.execute("ALTER TABLE releases ADD COLUMN publisher_yank TEXT")
            self._db.execute("ALTER TABLE releases ADD COLUMN head_sequence INTEGER")
        if "removed_at" not in {row[1] for row in self._db.execute("PRAGMA table_info(removed)")}:
            # An index made before removal freed the disk: its old removals (NULL) are due at once.
            self._db.execute("ALTER TABLE removed ADD COLUMN removed_at REAL")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def put(self, manifest: Manifest, verdict: Verdict) -> None:
        pubs = " ".join(s.key_id for s in verdict.signers if s.status == "valid" and s.role == "publisher")
        apps = " ".join(s.key_id for s in verdict.signers if s.status == "valid" and s.role == "approver")
        text = " ".join(filter(None, [manifest.name, manifest.origin.publisher, manifest.origin.source_url,
                                      manifest.origin.notes, manifest.license.spdx])).lower()
        with self._lock:
            # One statement: the removal check and the insert are atomic, so a mirror sync
            # that pulled a release while the admin removed it cannot list it again.
            cursor = self._db.execute(
                "INSERT INTO releases (digest, name, version, created, license, publisher, publisher_keys, "
                "approver_keys, size, text) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM removed WHERE digest=? OR (name=? AND version=?)) ON CONFLICT(digest) DO UPDATE "
                "SET approver_keys=excluded.approver_keys, publisher_keys=excluded.publisher_keys",
                (verdict.digest, manifest.name, manifest.version, format_time(manifest.created),
                 manifest.license.spdx, manifest.origin.publisher, pubs, apps, manifest.total_size, text,
                 verdict.digest, manifest.name, manifest.version),
            )
        if cursor.rowcount == 0:
            raise RemovedError(f"{manifest.ref} was removed from this registry by its admin; "
                               "expected a release that was not removed, found a removed one",
                               hint="ask the registry's admin to lift the removal first")

    def search(
        self, text: str | None = None, *, publisher: str | None = None, license: str | None = None,
        name: str | None = None, include_yanked: bool = False, limit: int = 100, offset: int = 0,
    ) -> list[Release]:
        clauses, args = [], []
        if text:
            clauses.append("text LIKE ? ESCAPE '\\'")
            args.append("%" + _escape_like(text.lower()) + "%")
        if publisher:
            clauses.append("(' ' || publisher_keys || ' ') LIKE ? ESCAPE '\\'")
            args.append("% " + _escape_like(publisher) + "%")
        if license:
            clauses.append("license = ?")
            args.append(license)
        if name:
            clauses.append("name = ?")
            args.append(name)
        if not include_yanked:
            clauses.append("yanked = 0")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._db.execute(
            f"SELECT digest, name, version, created, license, publisher, publisher_keys, approver_keys, size, "  # noqa: S608 - clauses are constants
            f"yanked, publisher_yank, head_sequence FROM releases{where} ORDER BY name, created, rowid "
            "LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [_release(r) for r in rows]

    def get(self, name: str, version: str) -> Release | None:
        row = self._db.execute(
            "SELECT digest, name, version, created, license, publisher, publisher_keys, approver_keys, size, yanked, "
            "publisher_yank, head_sequence FROM releases WHERE name=? AND version=?", (name, version),
        ).fetchone()
        return _release(row) if row else None

    def yank(self, name: str, version: str) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE releases SET yanked=1 WHERE name=? AND version=?", (name, version))
        return cur.rowcount > 0

    def set_head(self, name: str, sequence: int | None, reasons: dict[str, str]) -> None:
        """The model's accepted head: its sequence, and what it yanks, as listed (the admin's
        own yanks are kept apart)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE releases SET publisher_yank=NULL, head_sequence=? WHERE name=?",
                                 (sequence, name))
                self._db.executemany("UPDATE releases SET publisher_yank=? WHERE name=? AND version=?",
                                     [(reason, name, version) for version, reason in reasons.items()])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def remove(self, name: str) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO removed (digest, name, version, removed_at) "
                                 "SELECT digest, name, version, ? FROM releases WHERE name=?", (time.time(), name))
                cur = self._db.execute("DELETE FROM releases WHERE name=?", (name,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return cur.rowcount

    def names(self) -> set[str]:
        return {n for (n,) in self._db.execute("SELECT DISTINCT name FROM releases")}

    def has(self, digest: str) -> bool:
        return self._db.execute("SELECT 1 FROM releases WHERE digest=?", (digest,)).fetchone() is not None

    def digests(self) -> set[str]:
        return {d for (d,) in self._db.execute("SELECT digest FROM releases")}

    def removed(self) -> set[str]:
        """Digests an admin removed: not to be indexed again by a restart or a mirror sync."""
        return {d for (d,) in self._db.execute("SELECT digest FROM removed")}

    def removed_refs(self) -> set[tuple[str, str]]:
        """(name, version) pairs an admin removed: no other digest takes their place either."""
        return {(n, v) for (n, v) in self._db.execute("SELECT name, version FROM removed")}

    def is_removed(self, digest: str, name: str, version: str) -> bool:
        row = self._db.execute("SELECT 1 FROM removed WHERE digest=? OR (name=? AND version=?)",
                               (digest, name, version)).fetchone()
        return row is not None

    def removed_since(self, name: str | None = None, *, before: float | None = None) -> set[str]:
        """Digests an admin removed (of NAME; removed before the time BEFORE, or at any time),
        whose bytes the node frees (see Node.free_removed)."""
        sql, args = "SELECT digest FROM removed WHERE 1", list[object]()
        if name is not None:
            sql, args = sql + " AND name=?", [name]
        if before is not None:
            sql, args = sql + " AND (removed_at IS NULL OR removed_at <= ?)", [*args, before]
        return {d for (d,) in self._db.execute(sql, args)}

    def lift(self, name: str) -> int:
        """The admin's undo of `remove`: the model's releases may be published (or mirrored) again."""
        with self._lock:
            cur = self._db.execute("DELETE FROM removed WHERE name=?", (name,))
        return cur.rowcount


def index_yanks(client: Client, index: Index, name: str) -> None:
    """List what the model's head, as this side's policy accepts it, yanks."""
    current = client.current_head(name)
    if current is None:
        index.set_head(name, None, {})
    else:
        index.set_head(name, current.head.sequence, {y.version: y.reason for y in current.head.yanked})


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _release(row: tuple[Any, ...]) -> Release:
    return Release(row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6].split()),
                   tuple(row[7].split()), row[8], bool(row[9]), row[10], row[11])
