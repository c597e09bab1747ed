"""Connecting to a MySQL or MariaDB target without the password ever reaching argv, env or logs.

PyMySQL gets the password as a keyword argument. The client tools (`mariadb-dump`, `mariadb`)
get an option file that is a 0600 memfd, named first on their command line as
`--defaults-extra-file=/dev/fd/N`, so it never touches a disk; their environment is built from
nothing (no MYSQL_PWD, no MYSQL_HOST, and a HOME without a `.my.cnf`). Messages that leave the
engine keep the server's error, never row data or the password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import pymysql
import pymysql.converters

from backup_engine import errors
from backup_engine.database_url import DatabaseURL
from backup_engine.targets import Target

CONNECT_TIMEOUT_S = 10
DEFAULT_PORT = 3306
# URL query parameters (SQLAlchemy's mysql+pymysql spelling) -> the client tools' option names.
SSL_OPTIONS = {"ssl_ca": "ssl-ca", "ssl_cert": "ssl-cert", "ssl_key": "ssl-key", "ssl_capath": "ssl-capath",
               "ssl_cipher": "ssl-cipher"}
# Server and client errors that mean "try again later" rather than "this will never work".
TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2005, 2006, 2013, 2055, 1927, 4031})
TRANSIENT_MARKERS = ("can't connect", "lost connection", "server has gone away", "too many connections",
                     "lock wait timeout", "deadlock found", "connection refused", "server shutdown",
                     "unknown mysql server host", "connection was killed")
UNKNOWN_DATABASE = 1049
# PyMySQL's encoders only: every value comes back as the server's text (str), or bytes for binary columns.
TEXT_CONVERSIONS = {key: value for key, value in pymysql.converters.conversions.items() if not isinstance(key, int)}
ERROR_LINE = re.compile(r"^(?:ERROR \d+|mariadb-dump: |mysqldump: |mariadb: |mysql: |ERROR at line)")

# The session every reader uses: names always backquoted, full SHOW CREATE output, values in UTC.
READ_SESSION = ("SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'", "SET SESSION sql_mode = ''",
                "SET SESSION sql_quote_show_create = 1", "SET SESSION net_write_timeout = 3600",
                "SET SESSION net_read_timeout = 3600")


def option(url: DatabaseURL, key: str) -> str | None:
    value = url.query.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else value[-1]


def connect_kwargs(url: DatabaseURL, database: str | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"host": url.host or "localhost", "port": url.port or DEFAULT_PORT,
                              "user": url.username or "", "password": url.password or "",
                              "database": database if database is not None else url.database,
                              "charset": "utf8mb4", "connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True}
    socket = option(url, "unix_socket")
    if socket:
        kwargs["unix_socket"] = socket
    ssl = {name.removeprefix("ssl_"): value for name in SSL_OPTIONS if (value := option(url, name))}
    if ssl:
        kwargs["ssl"] = ssl
        if option(url, "ssl_verify_cert") in ("true", "1"):
            kwargs["ssl_verify_cert"] = True
    return kwargs


def error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_transient(message: str, code: int | None = None) -> bool:
    if code in TRANSIENT_CODES:
        return True
    lowered = message.lower()
    return any(marker in lowered for marker in TRANSIENT_MARKERS)


def scrub(message: str, target: Target) -> str:
    """Server or tool output fit to keep in a result backend: the password blanked out should a tool
    ever echo it, tool banners and warnings dropped, at most 4000 characters."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    kept = [line for line in lines if ERROR_LINE.match(line)] or lines
    text = "\n".join(kept)
    password = str(target.url.password or "")
    if password:
        for form in {password, quote(password, safe=""), quote_plus(password), option_escape(password)}:
            text = text.replace(form, "***")
    return text[-4000:]


def classify_failure(message: str, *, default: type[errors.BackupError], default_message: str, target: Target,
                     code: int | None = None) -> errors.BackupError:
    """The error a server or client-tool message stands for, naming the target, never its URL."""
    detail = f"target {target.name!r}: {scrub(message, target)}"
    if code == UNKNOWN_DATABASE or "unknown database" in message.lower():
        return errors.InvalidRequest(errors.TARGET_MISSING, detail)
    if is_transient(message, code):
        return errors.TargetUnavailable(errors.TARGET_UNREACHABLE, detail)
    return default(default_message, detail)


def classify_exception(exc: BaseException, *, default: type[errors.BackupError], default_message: str,
                       target: Target, what: str = "") -> errors.BackupError:
    code = error_code(exc)
    message = exc.args[1] if code is not None and len(exc.args) > 1 else str(exc)
    return classify_failure(f"{what}{message}" + (f" ({code})" if code else ""), default=default,
                            default_message=default_message, target=target, code=code)


@contextmanager
def connect(target: Target, database: str | None = None, **options: Any) -> Iterator[Any]:
    """A PyMySQL connection (autocommit) to the target's server, on `database` (default: the
    target's); connection failures become TargetUnavailable / InvalidRequest(TARGET_MISSING)."""
    kwargs = connect_kwargs(target.url, database)
    kwargs.update(options)
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        raise classify_exception(exc, default=errors.TargetUnavailable, default_message=errors.TARGET_UNREACHABLE,
                                 target=target) from exc
    try:
        yield conn
    finally:
        if conn.open:  # SQLAlchemy over it may have closed it already
            conn.close()


@contextmanager
def snapshot_connection(target: Target, failure_message: str, what: str = "") -> Iterator[Any]:
    """A reading connection with READ_SESSION's settings, values as the server's text; the caller
    starts its snapshot with `begin_snapshot`.

    Any failure inside the block becomes DumpError(failure_message, what + reason), or
    TargetUnavailable when the server went away.
    """
    try:
        with connect(target, conv=TEXT_CONVERSIONS) as conn:
            with conn.cursor() as cur:
                for setting in READ_SESSION:
                    cur.execute(setting)
            yield conn
    except errors.BackupError:
        raise
    except pymysql.err.MySQLError as exc:
        raise classify_exception(exc, default=errors.DumpError, default_message=failure_message, target=target,
                                 what=what) from exc
    except Exception as exc:  # noqa: BLE001 - every failure becomes one dump error, with its reason
        raise errors.DumpError(failure_message, f"{what}{type(exc).__name__}: {exc}") from exc


def begin_snapshot(conn: Any) -> None:
    """One REPEATABLE READ, read-only transaction started WITH CONSISTENT SNAPSHOT: schema and rows
    of every InnoDB table from one moment, and no table locks."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def server_version(target: Target) -> str:
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return str(cur.fetchone()[0])


# --- the client tools ------------------------------------------------------------------------------------
def option_escape(value: str) -> str:
    """A value for a MySQL option file, inside double quotes (the escapes the option-file reader knows)."""
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def option_file(url: DatabaseURL) -> str:
    """The `[client]` group the tools read: every connection setting, the password included."""
    lines = ["[client]", f'user="{option_escape(url.username or "")}"',
             f'password="{option_escape(str(url.password or ""))}"']
    socket = option(url, "unix_socket")
    if socket:
        lines += ["protocol=SOCKET", f'socket="{option_escape(socket)}"']
    else:  # as PyMySQL: TCP even for localhost, so both reach the same server
        lines += ["protocol=TCP", f'host="{option_escape(url.host or "localhost")}"',
                  f"port={int(url.port or DEFAULT_PORT)}"]
    for key, name in SSL_OPTIONS.items():
        value = option(url, key)
        if value:
            lines.append(f'{name}="{option_escape(value)}"')
    if option(url, "ssl_verify_cert") in ("true", "1"):
        lines.append("ssl-verify-server-cert")
    return "\n".join(lines) + "\n"


@dataclass
class ClientRun:
    """What a client tool run gets: its environment, its option file and in-memory files to inherit.

    The option file is a memfd handed down as `/dev/fd/N`: it never touches a disk, so even a
    worker killed with -9 leaves no password behind.
    """

    env: dict[str, str]
    defaults: str = ""
    pass_fds: list[int] = field(default_factory=list)

    def memory_file(self, text: str) -> str:
        """A 0600 in-memory regular file with `text`; returns the path the child opens it by."""
        fd = os.memfd_create("backup-worker", 0)
        self.pass_fds.append(fd)
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        return f"/dev/fd/{fd}"

    def argv(self, tool: str, *arguments: str) -> list[str]:
        """The tool's command line: the option file first (the tools insist), then `arguments`."""
        return [tool, f"--defaults-extra-file={self.defaults}", *arguments]

    def close(self) -> None:
        for fd in self.pass_fds:
            os.close(fd)
        self.pass_fds.clear()


@contextmanager
def client_run(target: Target) -> Iterator[ClientRun]:
    """Environment and option file for mariadb-dump / mariadb: built from nothing but PATH and locale."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": "/nonexistent", "MYSQL_HISTFILE": os.devnull}
    run = ClientRun(env=env)
    try:
        run.defaults = run.memory_file(option_file(target.url))
        yield run
    finally:
        run.close()
