"""kill -9 during appends leaves a log that verifies: every checkpoint covers exactly the
entries and hashes stored, and the log goes on from there."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seedvault.tlog.checkpoint import open_checkpoint
from seedvault.tlog.merkle import MemoryTree
from seedvault.tlog.note import ED25519, load_or_create_signer
from seedvault.tlog.store import LogStore

WRITER = """
import sys
from pathlib import Path
from seedvault.tlog.entry import LogEntry
from seedvault.tlog.note import ED25519, load_or_create_signer
from seedvault.tlog.store import LogStore

db, key, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
store = LogStore(db, load_or_create_signer(key, "crash.test/log", ED25519))
n = store.size
while True:
    entries = [LogEntry("release", "acme/tiny", f"{n + i}.0", f"{n + i:064x}", "0" * 64, (), 1) for i in range(batch)]
    n = store.append(entries)
    print(n, flush=True)
"""


def read_sizes(child: subprocess.Popen[str], at_least: int, timeout: float) -> int:
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    last = 0
    while last < at_least:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the writer did not reach {at_least} entries in {timeout} s")
        ready, _, _ = select.select([child.stdout], [], [], left)
        if ready:
            line = child.stdout.readline()
            if not line:
                raise AssertionError("the writer exited")
            last = int(line)
    return last


def check_log(db: Path, key: Path) -> int:
    """The stored log verifies: its checkpoint is signed, covers exactly the stored entries,
    and its root and every stored hash are what the entries give."""
    signer = load_or_create_signer(key, "crash.test/log", ED25519)
    store = LogStore(db, signer)
    try:
        cp = open_checkpoint(store.checkpoint(), signer.verifier, [], "checkpoint").checkpoint
        raw = sqlite3.connect(db)
        try:
            entries = [bytes(r[0]) for r in raw.execute("SELECT data FROM log_entries ORDER BY idx")]
            nodes = {(lvl, i): bytes(h) for lvl, i, h in raw.execute("SELECT level, idx, hash FROM log_hashes")}
        finally:
            raw.close()
        assert cp.size == len(entries)
        tree = MemoryTree()
        for e in entries:
            tree.append(e)
        assert store.root(cp.size) == cp.root
        expected = {(lvl, i): h for lvl, level in enumerate(tree.levels) for i, h in enumerate(level)}
        assert nodes == expected
        return cp.size
    finally:
        store.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch", [1, 37])
def test_kill_9_during_appends_leaves_a_log_that_verifies(tmp_path: Path, batch: int) -> None:
    db, key = tmp_path / "tlog.db", tmp_path / "log.key"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    size = 0
    for round_ in range(3):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(key), str(batch)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        try:
            reached = read_sizes(child, size + 20 * batch + round_ * 7, 60)
        finally:
            child.send_signal(signal.SIGKILL)  # mid-append, as likely as not
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        verified = check_log(db, key)
        assert verified >= reached  # nothing the writer was told was logged is lost
        assert verified % batch == 0  # a batch is logged whole or not at all
        size = verified
