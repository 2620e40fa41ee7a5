"""The registry index's database, behind one small interface: SQLite (embedded, the
default) or PostgreSQL (psycopg 3 with a connection pool, when node.toml sets
`database_url = "postgresql://..."`), so that several nodes can share one index.

Queries are written once, with `?` placeholders and SQL both engines accept; `Database`
turns them into the driver's style. Every driver failure leaves here as a seedvault error:
bad input (a NUL byte PostgreSQL refuses) as UsageError, a unique key taken as `Conflict`
(the caller knows what it means), anything else (server down, disk full, a lock never
granted) as DatabaseError. No driver traceback reaches a handler.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from seedvault._sqlite import open_database
from seedvault.errors import DatabaseConflictError, DatabaseError, UsageError

Row = tuple[Any, ...]
POOL_SIZE = 4  # the node worker, the replicator, the pages: each rarely holds a connection long
CONNECT_TIMEOUT = 10.0  # seconds to reach the server, or to get a pooled connection


Conflict = DatabaseConflictError  # a unique key taken: the caller turns it into its own error
class Session(Protocol):
    """What a query runs on: the database itself (one statement, autocommit) or a transaction."""

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...


class Database(Session, Protocol):
    dialect: str  # "sqlite" or "postgresql": the few statements that differ look at it
    where: str  # for messages: a path, or the URL without its password

    @contextmanager
    def transaction(self) -> Iterator[Session]: ...

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """Several reads that see one committed state, and none of a transaction still open
        (on SQLite the connection is shared: another thread's open transaction would show)."""
        ...

    def close(self) -> None: ...


def open_index_database(path: Path, database_url: str | None) -> Database:
    """PostgreSQL at `database_url` when one is given, else the SQLite file at `path`."""
    if database_url:
        return PostgresDatabase(database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteDatabase(path)


def redacted(url: str) -> str:
    """A database URL fit for a message or a log: no password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# ---- SQLite ---------------------------------------------------------------------------------


class _SQLiteSession:
    def __init__(self, db: sqlite3.Connection, where: str) -> None:
        self._db = db
        self._where = where

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with _sqlite_errors(self._where):
            return self._db.execute(sql, tuple(args)).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with _sqlite_errors(self._where):
            return self._db.execute(sql, tuple(args)).rowcount


class SQLiteDatabase(_SQLiteSession):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        with _sqlite_errors(self.where):
            db = open_database(path, "")
        super().__init__(db, self.where)
        self._lock = threading.Lock()  # one connection: writers take turns (readers need not, WAL)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._lock:
            return super().execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock:
            with _sqlite_errors(self.where):
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteSession(self._db, self.where)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            with _sqlite_errors(self.where):
                self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        # The lock keeps out this connection's own writers (their uncommitted rows would be
        # visible here); a deferred BEGIN is one WAL snapshot against other processes'.
        with self._lock:
            with _sqlite_errors(self.where):
                self._db.execute("BEGIN")
            try:
                yield _SQLiteSession(self._db, self.where)
            finally:
                self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


@contextmanager
def _sqlite_errors(where: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"registry index {where}: {exc}") from None
    except sqlite3.Error as exc:
        raise DatabaseError(f"registry index {where}: the database failed ({exc})",
                            hint="check the disk and the file's permissions; the node keeps serving what it "
                                 "can and retries on the next request") from None


# ---- PostgreSQL -----------------------------------------------------------------------------


def _pg_sql(sql: str) -> str:
    """`?` placeholders in psycopg's style (a literal % doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PostgresSession:
    def __init__(self, conn: Any, where: str) -> None:
        self._conn = conn
        self._where = where

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with _pg_errors(self._where):
            return list(self._conn.execute(_pg_sql(sql), tuple(args)).fetchall())

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with _pg_errors(self._where):
            return int(self._conn.execute(_pg_sql(sql), tuple(args)).rowcount)


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg_pool
        except ImportError:  # pragma: no cover - a dependency of seedvault
            raise UsageError("database_url names PostgreSQL, but psycopg is not installed",
                             hint="pip install 'psycopg[binary]' psycopg-pool") from None
        self.where = redacted(url)
        # autocommit: a single statement is its own transaction; `transaction()` opens one
        # explicitly, so a connection never goes back to the pool inside an open transaction.
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=POOL_SIZE, timeout=CONNECT_TIMEOUT, open=False,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT)})
        try:
            with _pg_errors(self.where):
                self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except BaseException:
            self._pool.close()
            raise

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._connection() as conn:
            return _PostgresSession(conn, self.where).query(sql, args)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._connection() as conn:
            return _PostgresSession(conn, self.where).execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._connection() as conn, _pg_errors(self.where), conn.transaction():
            yield _PostgresSession(conn, self.where)

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        # REPEATABLE READ: every statement of it sees the state of its first one.
        with self._connection() as conn, _pg_errors(self.where), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _PostgresSession(conn, self.where)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with _pg_errors(self.where), self._pool.connection() as conn:
            yield conn

    def close(self) -> None:
        self._pool.close()


@contextmanager
def _pg_errors(where: str) -> Iterator[None]:
    import psycopg
    import psycopg_pool

    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"registry index {where}: {_first_line(exc)}") from None
    except psycopg.DataError as exc:  # e.g. a NUL byte in a string: the request's fault
        raise UsageError(f"the registry index refused a value: {_first_line(exc)}",
                         hint="send text without NUL bytes or out-of-range numbers") from None
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        raise DatabaseError(f"registry index {where}: the database is unreachable or failed ({_first_line(exc)})",
                            hint="check that PostgreSQL is running and database_url in node.toml; the other "
                                 "nodes of this registry keep serving") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
