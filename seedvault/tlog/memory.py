"""What a client remembers of logs: the largest checkpoint seen per log, and the proofs of
the releases it holds (`<digest>.tlog-proof`, as a push, a registry or a bundle gave them).

Proofs are stored unjudged: `signing.trusted.check_logged` judges one each time it is used.
A checkpoint is remembered only once judged, and only when it is consistent with the one
held (shown by a consistency proof, or an equal size and root): a log showing this client
a history that forks from what it saw before is refused (`SplitViewError`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from seedvault._sqlite import open_database
from seedvault.tlog.proof import MAX_PROOF_BYTES, SUFFIX

SCHEMA = """CREATE TABLE IF NOT EXISTS checkpoints (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
                                                      root BLOB NOT NULL, note BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS monitored (origin TEXT NOT NULL, key TEXT NOT NULL, next INTEGER NOT NULL,
                                      PRIMARY KEY (origin, key));"""
_DIGEST = re.compile(r"[0-9a-f]{64}")


class LogMemory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proofs = root / "proofs"
        self.proofs.mkdir(parents=True, exist_ok=True)
        self.db = open_database(root / "checkpoints.db", SCHEMA)

    def close(self) -> None:
        self.db.close()

    def held(self, origin: str) -> tuple[int, bytes] | None:
        row = self.db.execute("SELECT size, root FROM checkpoints WHERE origin = ?", (origin,)).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def held_note(self, origin: str) -> bytes | None:
        row = self.db.execute("SELECT note FROM checkpoints WHERE origin = ?", (origin,)).fetchone()
        return bytes(row[0]) if row else None

    def remember(self, origin: str, size: int, root: bytes, note: bytes) -> None:
        """Keep a judged checkpoint if it is larger than the one held (the caller checked that
        it is consistent with it)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT size FROM checkpoints WHERE origin = ?", (origin,)).fetchone()
            if row is None or int(row[0]) < size:
                self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)", (origin, size, root, note))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def origins(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("SELECT origin FROM checkpoints ORDER BY origin")]

    def monitored(self, origin: str, key: str) -> int:
        """The first entry of `origin` a monitor of `key` has not read yet."""
        row = self.db.execute("SELECT next FROM monitored WHERE origin = ? AND key = ?", (origin, key)).fetchone()
        return int(row[0]) if row else 0

    def set_monitored(self, origin: str, key: str, next_index: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO monitored VALUES (?, ?, ?)", (origin, key, next_index))

    def save_proof(self, digest: str, raw: bytes) -> Path:
        if not _DIGEST.fullmatch(digest) or len(raw) > MAX_PROOF_BYTES:
            raise ValueError("a proof is kept under a manifest digest, and bounded")
        path = self.proofs / f"{digest}{SUFFIX}"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
        return path

    def proof(self, digest: str) -> bytes | None:
        if not _DIGEST.fullmatch(digest):
            return None
        try:
            with open(self.proofs / f"{digest}{SUFFIX}", "rb") as f:
                return f.read(MAX_PROOF_BYTES + 1)
        except FileNotFoundError:
            return None
