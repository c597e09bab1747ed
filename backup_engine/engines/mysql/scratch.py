"""Databases the engine makes beside a target on its server, and the locks that say they are in use.

A restore works in three databases named after one random id, `bw_restore_<id>` (its journal),
`bw_restore_<id>_new` (the backup, loaded) and `bw_restore_<id>_old` (the target's old tables, once
swapped out); a verify drill in `bw_drill_<id>`. Each is created and used only while a connection
of the worker holds the server lock of the same name (`GET_LOCK`), which the server drops the
moment that connection ends, a kill -9 of the worker included. A sweep takes the lock with no
wait before it touches anything: what it can lock is an orphan, what it cannot is in use.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from backup_engine import errors
from backup_engine.engines.mysql.catalog import quote_name, text
from backup_engine.engines.mysql.connect import classify_exception, connect
from backup_engine.targets import Target

RESTORE_PREFIX = "bw_restore_"
DRILL_PREFIX = "bw_drill_"
LEFTOVER = re.compile(r"^bw_(restore|drill)_([0-9a-f]{12})(_new|_old)?$")
# A control connection lives as long as the restore; an idle one must not be timed out by the server.
CONTROL_SESSION = ("SET SESSION wait_timeout = 31536000", "SET SESSION foreign_key_checks = 0",
                   "SET NAMES utf8mb4", "SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def restore_names(rid: str) -> tuple[str, str, str]:
    """(journal, new, old) database names of restore `rid`."""
    control = f"{RESTORE_PREFIX}{rid}"
    return control, f"{control}_new", f"{control}_old"


@contextmanager
def exclusive(target: Target, namespace: str, wait_s: float) -> Iterator[None]:
    """The target's lock for one operation (`Engine.exclusive`): a server lock (GET_LOCK) held by a
    connection of our own, so it holds across workers on any machine and goes the moment its holder
    dies (the server sees the connection drop), with no expiry to wait out."""
    name = "bw_op_" + hashlib.sha256(f"{namespace}:{target.url.database}".encode()).hexdigest()[:40]
    with control_connection(target) as conn, conn.cursor() as cur:
        if not try_lock(cur, name, max(0.0, wait_s)):
            raise errors.TargetBusy(errors.TARGET_BUSY, f"another backup or restore of {target.name!r} is running "
                                    f"(waited {wait_s:.0f}s)")
        try:
            yield
        finally:
            release_lock(cur, name)


def target_lock(database: str) -> str:
    """The server lock a restore of `database` holds (lock names are at most 64 characters)."""
    return "bw_target_" + hashlib.sha256(database.encode("utf-8")).hexdigest()[:40]


def try_lock(cur: Any, name: str, wait_s: float = 0) -> bool:
    cur.execute("SELECT GET_LOCK(%s, %s)", (name, wait_s))
    return cur.fetchone()[0] == 1


def release_lock(cur: Any, name: str) -> None:
    cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
    cur.fetchall()


@contextmanager
def control_connection(target: Target) -> Iterator[Any]:
    """A connection to the target's server with no current database, for DDL across databases."""
    with connect(target, database="") as conn:
        with conn.cursor() as cur:
            for statement in CONTROL_SESSION:
                cur.execute(statement)
        yield conn


def database_exists(cur: Any, name: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    return cur.fetchone() is not None


def database_options(cur: Any, name: str) -> tuple[str, str]:
    cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME = %s", (name,))
    row = cur.fetchone()
    if row is None:
        raise errors.InvalidRequest(errors.TARGET_MISSING, f"database {name!r}")
    return text(row[0]), text(row[1])


def create_database(cur: Any, name: str, like: str | None = None) -> None:
    """A new database, with the default character set and collation of `like` when given."""
    options = ""
    if like is not None:
        charset, collation = database_options(cur, like)
        options = f" CHARACTER SET {quote_name(charset)} COLLATE {quote_name(collation)}"
    cur.execute(f"CREATE DATABASE {quote_name(name)}{options}")


def drop_database(cur: Any, name: str) -> None:
    cur.execute(f"DROP DATABASE IF EXISTS {quote_name(name)}")


def leftovers(cur: Any) -> dict[tuple[str, str], list[str]]:
    """(kind, id) -> names of the databases restores and drills left on the server."""
    cur.execute("SHOW DATABASES LIKE 'bw\\_%'")
    found: dict[tuple[str, str], list[str]] = {}
    for (name,) in cur.fetchall():
        match = LEFTOVER.match(text(name))
        if match:
            found.setdefault((match.group(1), match.group(2)), []).append(text(name))
    return found


@contextmanager
def drill_database(target: Target) -> Iterator[tuple[Target, Any]]:
    """A new empty database on the target's server, locked while it is used, dropped afterwards;
    yields a target for it and the control connection."""
    rid = new_id()
    name = f"{DRILL_PREFIX}{rid}"
    with control_connection(target) as conn, conn.cursor() as cur:
        if not try_lock(cur, name):
            raise errors.TargetBusy(errors.TARGET_BUSY, f"drill lock {name!r}")
        try:
            create_database(cur, name, like=target.url.database if database_exists(cur, target.url.database or "")
                            else None)
        except pymysql.err.MySQLError as exc:
            raise errors.RestoreError(errors.RESTORE_FAILED, f"target {target.name!r}: no scratch database for the "
                                      f"drill ({exc.args[-1]}); grant its account CREATE and DROP on `bw\\_%`.*"
                                      ) from exc
        try:
            yield Target(name=f"{target.name}:drill", url=target.url.set(database=name), dialect=target.dialect), conn
        finally:
            try:
                drop_database(cur, name)
            finally:
                release_lock(cur, name)


def as_restore_error(exc: BaseException, target: Target, what: str) -> errors.BackupError:
    return classify_exception(exc, default=errors.RestoreError, default_message=errors.RESTORE_FAILED, target=target,
                              what=what)
