"""Connecting to a PostgreSQL target without a password ever reaching argv, env or logs.

psycopg2 gets the password as a keyword argument; the client tools get a 0600 PGPASSFILE
that is a memfd (`/dev/fd/N`), so it never touches a disk. The tools' environment is built
from nothing (never the worker's own PG* variables, never the dump's environment). Messages
that leave the engine keep the error, the table and the constraint, never row data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg2
import psycopg2.extensions

from backup_engine import errors
from backup_engine.database_url import DatabaseURL
from backup_engine.targets import Target

# URL query parameters that libpq understands, mapped to their environment variables.
LIBPQ_QUERY_ENV = {
    "host": "PGHOST", "port": "PGPORT", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS", "application_name": "PGAPPNAME", "target_session_attrs": "PGTARGETSESSIONATTRS",
}
CONNECT_TIMEOUT_S = "10"
APPLICATION_NAME = "backup-worker"
# Messages of libpq that mean "try again later" rather than "this will never work".
TRANSIENT_MARKERS = ("could not connect", "connection refused", "server closed the connection",
                     "the database system is starting up", "the database system is shutting down",
                     "timeout expired", "no route to host", "terminating connection",
                     "could not translate host name", "lock timeout", "connection to server")


def connect_kwargs(url: DatabaseURL) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dbname": url.database or "postgres", "connect_timeout": int(CONNECT_TIMEOUT_S),
                              "application_name": APPLICATION_NAME}
    if url.host:
        kwargs["host"] = url.host
    if url.port:
        kwargs["port"] = url.port
    if url.username:
        kwargs["user"] = url.username
    if url.password:
        kwargs["password"] = url.password
    for key, value in url.query.items():
        if key in LIBPQ_QUERY_ENV:
            kwargs[key] = value if isinstance(value, str) else value[-1]
    return kwargs


def is_transient(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in TRANSIENT_MARKERS)


def classify_failure(message: str, *, default: type[errors.BackupError], default_message: str,
                     target: Target) -> errors.BackupError:
    """The error a libpq or client-tool message stands for, naming the target, never its URL."""
    detail = f"target {target.name!r}: {scrub(message, target)}"
    if "does not exist" in message and "database" in message:
        return errors.InvalidRequest(errors.TARGET_MISSING, detail)
    if is_transient(message):
        return errors.TargetUnavailable(errors.TARGET_UNREACHABLE, detail)
    return default(default_message, detail)


def scrub(message: str, target: Target) -> str:
    """Server or tool output fit to keep in a result backend for months: the password blanked
    out should a tool ever echo it, and no row data (PostgreSQL's DETAIL lines, the statement
    text psql quotes after LINE, the data line a COPY context quotes)."""
    kept = []
    for line in message.strip().splitlines():
        bare = line.split(": ", 1)[-1].lstrip() if line.startswith("psql:") else line.lstrip()
        if bare.startswith(("DETAIL:", "LINE ", "HINT:  Failing row")) or bare.startswith("^"):
            continue
        if bare.startswith("CONTEXT:") and ": \"" in line:
            line = line.split(': "', 1)[0]
        kept.append(line)
    text = "\n".join(kept)
    password = str(target.url.password or "")
    if password:
        for form in {password, _pgpass_escape(password), quote(password, safe=""), quote_plus(password)}:
            text = text.replace(form, "***")
    return text[-4000:]


# The session every exporter reads in: names always schema-qualified, values in fixed formats.
READ_SESSION = ("SET search_path = pg_catalog", "SET client_encoding = 'UTF8'", "SET DateStyle = ISO",
                "SET IntervalStyle = postgres", "SET extra_float_digits = 3", "SET TimeZone = 'UTC'",
                "SET bytea_output = hex", "SET statement_timeout = 0", "SET lock_timeout = 0",
                "SET idle_in_transaction_session_timeout = 0")


@contextmanager
def snapshot_connection(target: Target, failure_message: str, what: str = "") -> Iterator[Any]:
    """A psycopg2 connection in one REPEATABLE READ, read-only transaction (a consistent
    snapshot for schema and rows alike) with READ_SESSION's settings.

    Any failure inside the block becomes DumpError(failure_message, what + reason), or
    TargetUnavailable when the server went away.
    """
    try:
        with connect(target) as raw:
            raw.autocommit = True
            with raw.cursor() as cur:
                for setting in READ_SESSION:
                    cur.execute(setting)
            raw.autocommit = False
            raw.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
            yield raw  # closing the connection ends the read-only transaction
    except errors.BackupError:
        raise
    except psycopg2.OperationalError as exc:
        raise classify_failure(str(exc), default=errors.DumpError, default_message=failure_message,
                               target=target) from exc
    except Exception as exc:  # noqa: BLE001 - every failure becomes one dump error, with its reason
        raise errors.DumpError(failure_message, f"{what}{type(exc).__name__}: {exc}") from exc


def import_snapshot(raw: Any, snapshot: str) -> None:
    """Make the transaction `raw` is about to begin read exactly what the transaction that exported
    `snapshot` (still open) reads. It must be the transaction's first statement (and a SQLAlchemy
    connection set up over `raw` afterwards would end it: its first connect rolls back)."""
    with raw.cursor() as cur:
        cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))


END_SAVEPOINT = "ROLLBACK TO SAVEPOINT bw_table; RELEASE SAVEPOINT bw_table"  # back at the transaction's top


@contextmanager
def locks_released(raw: Any, settings: tuple[str, ...] = ()) -> Iterator[None]:
    """Run the block in a savepoint rolled back afterwards, inside a snapshot's read-only transaction.

    A `COPY (SELECT ...)` plans its query, and the planner locks the table and every index of it
    until the transaction ends: 5,000 tables with two indexes each need more locks than a
    default server's whole lock table. Rolling back to a savepoint releases the locks taken
    since, and loses nothing in a read-only transaction; the snapshot stays the transaction's.
    (pg_dump holds one lock per table, as a plain `COPY table TO STDOUT` does.) `settings`, SET
    LOCAL statements sent with the savepoint (no round trip of their own), end with it."""
    with raw.cursor() as cur:
        cur.execute("; ".join(("SAVEPOINT bw_table", *settings)))
    try:
        yield
    except BaseException:
        with contextlib.suppress(psycopg2.Error), raw.cursor() as cur:
            cur.execute(END_SAVEPOINT)
        raise
    with raw.cursor() as cur:
        cur.execute(END_SAVEPOINT)


# Tables read under one savepoint of a `LockWindow`.
LOCK_WINDOW_TABLES = 32
END_WINDOW = "ROLLBACK TO SAVEPOINT bw_tables; RELEASE SAVEPOINT bw_tables"


class LockWindow:
    """`locks_released` for a run of tables, one savepoint per LOCK_WINDOW_TABLES of them.

    Each rollback to a savepoint is two round trips; one per table was a tenth of a dump of
    thousands of small tables. A window holds the locks of its tables and their indexes (a few
    hundred at most), far inside a default server's lock table, and is closed on leaving."""

    def __init__(self, raw: Any, tables: int = LOCK_WINDOW_TABLES) -> None:
        self._raw, self._tables, self._read, self._open = raw, tables, 0, False

    def __enter__(self) -> LockWindow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(quietly=exc_info[0] is not None)

    @contextmanager
    def table(self) -> Iterator[None]:
        """Read one table inside the window; the window's locks go every LOCK_WINDOW_TABLES tables."""
        if not self._open:
            with self._raw.cursor() as cur:
                cur.execute("SAVEPOINT bw_tables")
            self._open = True
        try:
            yield
        except BaseException:
            self.close(quietly=True)
            raise
        self._read += 1
        if self._read >= self._tables:
            self.close()

    def close(self, *, quietly: bool = False) -> None:
        """Let go of the open window's locks (a snapshot is exported only outside any savepoint)."""
        if not self._open:
            return
        self._open, self._read = False, 0
        with contextlib.suppress(*((psycopg2.Error,) if quietly else ())), self._raw.cursor() as cur:
            cur.execute(END_WINDOW)


@contextmanager
def connect(target: Target) -> Iterator[Any]:
    """A psycopg2 connection; connection failures become TargetUnavailable / InvalidRequest."""
    try:
        conn = psycopg2.connect(**connect_kwargs(target.url))
    except psycopg2.OperationalError as exc:
        raise classify_failure(str(exc), default=errors.TargetUnavailable,
                               default_message=errors.TARGET_UNREACHABLE, target=target) from exc
    try:
        yield conn
    finally:
        conn.close()


@dataclass
class ClientRun:
    """What a pg_dump or psql run gets: its environment, and in-memory files to inherit.

    Files (the password file, small SQL scripts) are memfds handed down as `/dev/fd/N`: they
    never touch a disk, so even a worker killed with -9 leaves no password behind.
    """

    env: dict[str, str]
    pass_fds: list[int] = field(default_factory=list)

    def memory_file(self, text: str) -> str:
        """A 0600 in-memory regular file with `text`; returns the path the child opens it by."""
        fd = os.memfd_create("backup-worker", 0)
        self.pass_fds.append(fd)
        os.fchmod(fd, 0o600)  # libpq ignores a password file that others could read
        os.write(fd, text.encode("utf-8"))
        return f"/dev/fd/{fd}"

    def close(self) -> None:
        for fd in self.pass_fds:
            os.close(fd)
        self.pass_fds.clear()


@contextmanager
def client_run(target: Target) -> Iterator[ClientRun]:
    """Environment for pg_dump / psql: connection in PG* variables, password in a memory file.

    Built from nothing but PATH, locale and HOME (for libpq's SSL certificates): never the
    worker's own PG* variables.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "PGDATABASE": target.url.database or "postgres",
        "PGCONNECT_TIMEOUT": CONNECT_TIMEOUT_S,
        "PGAPPNAME": APPLICATION_NAME,
        "PGOPTIONS": "-c client_min_messages=warning",
        "PSQLRC": os.devnull,
    }
    if target.url.host:
        env["PGHOST"] = target.url.host
    if target.url.port:
        env["PGPORT"] = str(target.url.port)
    if target.url.username:
        env["PGUSER"] = target.url.username
    for key, value in target.url.query.items():
        if key in LIBPQ_QUERY_ENV:
            env[LIBPQ_QUERY_ENV[key]] = value if isinstance(value, str) else value[-1]
    run = ClientRun(env=env)
    try:
        env["PGPASSFILE"] = run.memory_file(f"*:*:*:*:{_pgpass_escape(str(target.url.password or ''))}\n")
        yield run
    finally:
        run.close()


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")
