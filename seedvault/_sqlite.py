"""Opening the SQLite databases (vault index, heads, registry index) one way.

Every store uses WAL and waits up to 30 s on a lock. Switching a database to WAL needs a
lock that SQLite does not wait for through the busy timeout, so two processes opening one
fresh database at once can get "database is locked" from the PRAGMA itself: it is retried
here, with the schema, for the same 30 s.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

LOCK_WAIT_S = 30.0


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread."""
    db = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                db.close()
                raise
            time.sleep(0.05)
