"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory, listening
on 127.0.0.1 only (its Unix socket in that directory too), stopped in a `finally`.

The server refuses to run as root; sessions run as root, so it runs as the `postgres` user
(runuser), as ../shared/notes/postgres.md says. Where it cannot be started (no initdb, no
postgres user), `start_or_skip` skips the test with the reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from itertools import count
from pathlib import Path

import pytest
from registry_helpers import free_port

START_TIMEOUT = 120  # seconds for initdb and for the server to accept connections
_names = count()


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    def __init__(self, root: Path, initdb: str, pg_ctl: str) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self._pg_ctl = pg_ctl
        self._initdb = initdb
        # As root, run the server as `postgres` (it refuses root); otherwise as ourselves.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @classmethod
    def start_or_skip(cls) -> PostgresServer:
        """A server in a fresh directory of /tmp (pytest's own is private to root, and the
        server's user must reach its data directory)."""
        root = Path(tempfile.mkdtemp(prefix="seedvault-pg-"))
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql); "
                        "scripts/test.sh installs Debian's postgresql where apt-get is available")
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                pytest.skip("PostgreSQL refuses to run as root and this machine has no 'postgres' user to run it as")
            os.chown(root, user.pw_uid, user.pw_gid)
        server = cls(root, initdb, pg_ctl)
        try:
            server._start()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            said = getattr(exc, "stderr", b"") or b""
            log = (root / "log").read_text()[-2000:] if (root / "log").exists() else ""
            server.stop()
            pytest.skip(f"PostgreSQL could not be started here: {exc}\n{said.decode(errors='replace')}{log}")
        return server

    def _start(self) -> None:
        subprocess.run([*self._as, self._initdb, "-D", str(self.data), "-A", "trust", "-U", "seedvault",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=START_TIMEOUT)
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        subprocess.run([*self._as, self._pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                        "-w", "-t", str(START_TIMEOUT), "start"], check=True, capture_output=True,
                       timeout=START_TIMEOUT + 10)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self._as, self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop"],
                           capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://seedvault@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(statement.encode())
            return list(cur.fetchall()) if cur.description else []

    def create_database(self) -> str:
        """A fresh, empty database of its own for one test: its URL."""
        name = f"seedvault_{os.getpid()}_{next(_names)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
