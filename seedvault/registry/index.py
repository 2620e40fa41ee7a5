"""The node's search index: one row per accepted release, in SQLite (embedded, the default)
or in PostgreSQL shared by several nodes (see database.py, schema.py).

The vault holds the envelopes and bytes; this index holds what a registry needs to list
and search quickly, and the node's own state: yanked releases, and the digests of removed
ones (tombstones, by digest and by name@version), so that neither a restart (which indexes
the vault), a mirror sync, nor anyone re-pushing the public envelope and bytes brings them
back. Only the node's admin lifts a removal (`lift`).

For nodes sharing one index it also holds what one node accepted and the others must
serve: each release's current envelope (with the approvals merged so far), each model's
accepted head, the nodes of the registry and which releases' bytes each holds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedvault.client import Client
from seedvault.errors import RemovedError, RollbackError
from seedvault.manifest import Manifest, format_time
from seedvault.registry.database import Conflict, Database, Row, open_index_database
from seedvault.registry.schema import migrate
from seedvault.signing import Envelope, Verdict

_COLUMNS = ("digest, name, version, created, license, publisher, publisher_keys, approver_keys, size, yanked, "
            "publisher_yank, head_sequence")
# The next admission number: PostgreSQL's sequence; SQLite's writers are serialized, so one more than the last.
_NEXT_SEQ = {"postgresql": "nextval(pg_get_serial_sequence('releases', 'seq'))",
             "sqlite": "(SELECT COALESCE(MAX(seq), 0) + 1 FROM releases)"}


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


@dataclass(frozen=True)
class Peer:
    """Another node of this registry, as it last announced itself."""

    url: str
    swarm: str | None  # host:port of its BitTorrent seed, None when it does not seed
    seen: float


class Index:
    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self._db: Database = open_index_database(path, database_url)
        try:
            migrate(self._db)
        except BaseException:
            self._db.close()
            raise
        self.shared = self._db.dialect == "postgresql"  # other nodes may write to it at any time

    @property
    def database(self) -> Database:
        """The index's database: the transparency log keeps its tables there too (one log
        for the nodes that share an index)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def put(self, manifest: Manifest, verdict: Verdict, envelope: Envelope | None = None) -> None:
        """List a release (or, for one listed, its signers and current envelope now).

        Raises RemovedError for a removed release, RollbackError when the index lists
        another digest under its name@version (another node of the registry took it first)."""
        pubs = " ".join(s.key_id for s in verdict.signers if s.status == "valid" and s.role == "publisher")
        apps = " ".join(s.key_id for s in verdict.signers if s.status == "valid" and s.role == "approver")
        text = " ".join(filter(None, [manifest.name, manifest.origin.publisher, manifest.origin.source_url,
                                      manifest.origin.notes, manifest.license.spdx])).lower()
        stored = envelope.to_json().decode() if envelope is not None else None
        try:
            # One statement: the removal check and the insert are atomic, so a mirror sync
            # that pulled a release while the admin removed it cannot list it again.
            # The one interpolation is a constant per dialect.
            count = self._db.execute(
                "INSERT INTO releases (digest, name, version, created, license, publisher, publisher_keys, "  # noqa: S608
                f"approver_keys, size, text, envelope, seq) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                f"{_NEXT_SEQ[self._db.dialect]} WHERE NOT EXISTS "
                "(SELECT 1 FROM removed WHERE digest=? OR (name=? AND version=?)) ON CONFLICT(digest) DO UPDATE "
                "SET approver_keys=excluded.approver_keys, publisher_keys=excluded.publisher_keys, "
                "envelope=COALESCE(excluded.envelope, releases.envelope)",
                (verdict.digest, manifest.name, manifest.version, format_time(manifest.created),
                 manifest.license.spdx, manifest.origin.publisher, pubs, apps, manifest.total_size, text, stored,
                 verdict.digest, manifest.name, manifest.version),
            )
        except Conflict:
            held = self.get(manifest.name, manifest.version)
            raise RollbackError(
                f"{manifest.ref}: this registry lists digest {held.digest if held else '(another)'} under that "
                f"name and version; found digest {verdict.digest}",
                hint="a release never changes: publish a new version instead") from None
        if count == 0:
            raise RemovedError(f"{manifest.ref} was removed from this registry by its admin; "
                               "expected a release that was not removed, found a removed one",
                               hint="ask the registry's admin to lift the removal first")

    def search(
        self, text: str | None = None, *, publisher: str | None = None, license: str | None = None,
        name: str | None = None, include_yanked: bool = False, limit: int = 100, offset: int = 0,
    ) -> list[Release]:
        clauses, args = [], list[object]()
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
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM releases{where} ORDER BY name, created, seq LIMIT ? OFFSET ?",  # noqa: S608 - clauses are constants
            (*args, limit, offset),
        )
        return [_release(r) for r in rows]

    def get(self, name: str, version: str) -> Release | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM releases WHERE name=? AND version=?",  # noqa: S608 - constant
                              (name, version))
        return _release(rows[0]) if rows else None

    def envelope(self, digest: str) -> bytes | None:
        """The release's current envelope as the registry accepted it (None: only the vault
        of the node that admitted it, before schema 2, has it)."""
        rows = self._db.query("SELECT envelope FROM releases WHERE digest=?", (digest,))
        return rows[0][0].encode() if rows and rows[0][0] is not None else None

    def replace_envelope(self, verdict: Verdict, envelope: Envelope, expected: bytes | None) -> bool:
        """Store the release's envelope (more signatures) and its signers, only if the stored
        one is still `expected`: False when another node changed it meanwhile (merge again)."""
        pubs = " ".join(s.key_id for s in verdict.signers if s.status == "valid" and s.role == "publisher")
        apps = " ".join(s.key_id for s in verdict.signers if s.status == "valid" and s.role == "approver")
        same = "envelope IS NULL" if expected is None else "envelope = ?"
        return self._db.execute(
            f"UPDATE releases SET envelope=?, publisher_keys=?, approver_keys=? WHERE digest=? AND {same}",  # noqa: S608 - constant
            (envelope.to_json().decode(), pubs, apps, verdict.digest,
             *(() if expected is None else (expected.decode(),)))) > 0

    def yank(self, name: str, version: str) -> bool:
        return self._db.execute("UPDATE releases SET yanked=1 WHERE name=? AND version=?", (name, version)) > 0

    def set_head(self, name: str, sequence: int | None, reasons: dict[str, str]) -> None:
        """The model's accepted head: its sequence, and what it yanks, as listed (the admin's
        own yanks are kept apart)."""
        with self._db.transaction() as tx:
            tx.execute("UPDATE releases SET publisher_yank=NULL, head_sequence=? WHERE name=?", (sequence, name))
            for version, reason in reasons.items():
                tx.execute("UPDATE releases SET publisher_yank=? WHERE name=? AND version=?", (reason, name, version))

    def remove(self, name: str) -> int:
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO removed (digest, name, version, removed_at) SELECT digest, name, version, ? "
                       "FROM releases WHERE name=? ON CONFLICT DO NOTHING", (time.time(), name))
            return tx.execute("DELETE FROM releases WHERE name=?", (name,))

    def names(self) -> set[str]:
        return {n for (n,) in self._db.query("SELECT DISTINCT name FROM releases")}

    def has(self, digest: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM releases WHERE digest=?", (digest,)))

    def digests(self) -> set[str]:
        return {d for (d,) in self._db.query("SELECT digest FROM releases")}

    def removed(self) -> set[str]:
        """Digests an admin removed: not to be indexed again by a restart or a mirror sync."""
        return {d for (d,) in self._db.query("SELECT digest FROM removed")}

    def removed_refs(self) -> set[tuple[str, str]]:
        """(name, version) pairs an admin removed: no other digest takes their place either."""
        return {(n, v) for (n, v) in self._db.query("SELECT name, version FROM removed")}

    def is_removed(self, digest: str, name: str, version: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM removed WHERE digest=? OR (name=? AND version=?)",
                                   (digest, name, version)))

    def removed_since(self, name: str | None = None, *, before: float | None = None) -> set[str]:
        """Digests an admin removed (of NAME; removed before the time BEFORE, or at any time),
        whose bytes the node frees (see Node.free_removed)."""
        sql, args = "SELECT digest FROM removed WHERE 1=1", list[object]()
        if name is not None:
            sql, args = sql + " AND name=?", [name]
        if before is not None:
            sql, args = sql + " AND (removed_at IS NULL OR removed_at <= ?)", [*args, before]
        return {d for (d,) in self._db.query(sql, args)}

    def lift(self, name: str) -> int:
        """The admin's undo of `remove`: the model's releases may be published (or mirrored) again."""
        return self._db.execute("DELETE FROM removed WHERE name=?", (name,))

    # ---- what nodes sharing the index tell each other -----------------------------------
    def put_heads(self, name: str, sequence: int, envelopes: list[Envelope]) -> None:
        """The model's head as a node accepted it; never replaced by a lower sequence."""
        text = json.dumps([e.to_dict() for e in envelopes])
        self._db.execute("INSERT INTO heads (name, sequence, envelopes) VALUES (?, ?, ?) ON CONFLICT(name) DO "
                         "UPDATE SET sequence=excluded.sequence, envelopes=excluded.envelopes "
                         "WHERE excluded.sequence > heads.sequence", (name, sequence, text))

    def heads(self, name: str) -> tuple[int, list[dict[str, Any]]] | None:
        """The highest head a node of this registry accepted for `name` (to be judged again)."""
        rows = self._db.query("SELECT sequence, envelopes FROM heads WHERE name=?", (name,))
        if not rows:
            return None
        listed = json.loads(rows[0][1])
        return int(rows[0][0]), [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []

    def announce(self, url: str, swarm: str | None) -> None:
        """This node is up (called on every housekeeping pass: `seen` is its heartbeat)."""
        self._db.execute("INSERT INTO nodes (url, swarm, seen) VALUES (?, ?, ?) ON CONFLICT(url) DO UPDATE "
                         "SET swarm=excluded.swarm, seen=excluded.seen", (url, swarm, time.time()))

    def hold(self, digest: str, url: str) -> None:
        """The node at `url` holds the release's verified bytes and serves them."""
        self._db.execute("INSERT INTO holdings (digest, url) VALUES (?, ?) ON CONFLICT DO NOTHING", (digest, url))

    def holders(self, digest: str, *, within: float, exclude: str | None = None) -> list[Peer]:
        """The nodes holding the release that announced themselves in the last `within` seconds,
        most recently heard first."""
        rows = self._db.query("SELECT n.url, n.swarm, n.seen FROM holdings h JOIN nodes n ON n.url = h.url "
                              "WHERE h.digest=? AND n.seen >= ? ORDER BY n.seen DESC", (digest, time.time() - within))
        return [Peer(str(u), s, float(t)) for (u, s, t) in rows if u != exclude]


def index_yanks(client: Client, index: Index, name: str) -> None:
    """List what the model's head, as this side's policy accepts it, yanks."""
    current = client.current_head(name)
    if current is None:
        index.set_head(name, None, {})
    else:
        index.set_head(name, current.head.sequence, {y.version: y.reason for y in current.head.yanked})


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _release(row: Row) -> Release:
    return Release(row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6].split()),
                   tuple(row[7].split()), row[8], bool(row[9]), row[10], row[11])
