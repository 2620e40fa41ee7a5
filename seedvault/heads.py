"""The heads a vault holds: per model, the highest head accepted, and the last one its
publishers signed (what a timestamp key may re-sign, and what a new client needs to check
a refresh). SQLite beside the vault's own database; each change in one transaction.

Only `Client.admit_heads` writes here, after the trust core accepted the head; the sequence
is checked again inside the transaction, so two admissions racing cannot move a head back.
"""

from __future__ import annotations

import threading
from pathlib import Path

from seedvault._sqlite import open_database
from seedvault.errors import RollbackError
from seedvault.head import Head
from seedvault.signing.dsse import Envelope
from seedvault.signing.trusted import AcceptedHead, HeldHead

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    name TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    publisher_envelope BLOB
);
"""


class HeadStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_database(path, _SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _row(self, name: str) -> tuple[int, bytes, bytes | None] | None:
        row = self._db.execute("SELECT sequence, envelope, publisher_envelope FROM heads WHERE name=?",
                               (name,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), None if row[2] is None else bytes(row[2]))

    def held(self, name: str) -> HeldHead | None:
        row = self._row(name)
        if row is None:
            return None
        envelope = Envelope.from_json(row[1], f"stored head of {name}")
        base = row[2]
        publisher_content = Head.from_payload(Envelope.from_json(base, f"stored head of {name}").payload).content() \
            if base is not None else None
        return HeldHead(Head.from_payload(envelope.payload), envelope.digest, publisher_content)

    def envelopes(self, name: str) -> list[Envelope]:
        """The held head, and the last publisher-signed one when that is another: what a
        node serves and a bundle carries, so a verifier new to the model can check a refresh."""
        row = self._row(name)
        if row is None:
            return []
        out = [Envelope.from_json(row[1], f"stored head of {name}")]
        if row[2] is not None and row[2] != row[1]:
            out.append(Envelope.from_json(row[2], f"stored head of {name}"))
        return out

    def names(self) -> list[str]:
        return [n for (n,) in self._db.execute("SELECT name FROM heads ORDER BY name")]

    def put(self, accepted: AcceptedHead, envelope: Envelope) -> None:
        raw = envelope.to_json()
        head = accepted.head
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._row(head.name)
                if row is not None and row[0] >= head.sequence:
                    raise RollbackError(f"{head.ref}: a head with sequence {row[0]} was stored meanwhile; "
                                        "refusing to move the head back")
                base = raw if accepted.by_publishers else (row[2] if row is not None else None)
                self._db.execute(
                    "INSERT INTO heads (name, sequence, envelope, publisher_envelope) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET sequence=excluded.sequence, envelope=excluded.envelope, "
                    "publisher_envelope=excluded.publisher_envelope",
                    (head.name, head.sequence, raw, base))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
