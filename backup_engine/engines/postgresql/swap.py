"""Restore beside and swap: a new database is built next to the target, checked, then swapped in.

One transaction that creates (or drops) thousands of relations needs more locks than a default
server has, and pg_dump's own large-object section commits mid-script; so the restore is built in
a new database on the same server, in as many transactions as it needs, and the all-or-nothing
moment is one short transaction of two renames:

    BEGIN; ALTER DATABASE target RENAME TO bw_replaced_x; ALTER DATABASE bw_restore_x RENAME TO target; COMMIT;

Other sessions on the target are ended first (and counted); a session that tries to connect
during the swap waits for it and then finds the name moved. The target's owner, encoding and
locale, database-level settings, grants, comment and connection limit are carried over before the
swap, so a failure there also leaves the target as it was.

Every database this module makes carries a recognisable name and is covered by an advisory lock
that its maker's admin session holds: a kill -9 at any moment leaves the target either entirely
the old database or entirely the new one, plus at most a scratch or replaced database whose lock
is free, which `sweep` drops.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql

from backup_engine import errors
from backup_engine.engines.postgresql.connect import classify_failure, connect, connect_kwargs, scrub
from backup_engine.targets import Target

RESTORE_PREFIX = "bw_restore_"
REPLACED_PREFIX = "bw_replaced_"
DRILL_PREFIX = "bw_drill_"
OURS = (RESTORE_PREFIX, REPLACED_PREFIX, DRILL_PREFIX)
MAINTENANCE_DATABASES = ("postgres", "template1")
SWAP_ATTEMPTS = 20
SWAP_PAUSE_S = 0.25
LOCK_POLL_S = 0.2
# Settings whose value is a list of quoted names: each element is its own literal (as pg_dump does).
LIST_SETTINGS = frozenset({"search_path", "temp_tablespaces", "local_preload_libraries",
                           "session_preload_libraries", "shared_preload_libraries", "unix_socket_directories"})

DATABASE_SQL = """
SELECT d.oid, pg_catalog.pg_get_userbyid(d.datdba), d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user),
       pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datlocprovider::text, d.daticulocale,
       t.spcname, d.datconnlimit, pg_catalog.shobj_description(d.oid, 'pg_database'), d.datacl IS NOT NULL
FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s"""
GRANTS_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END, a.privilege_type,
       a.is_grantable
FROM pg_database d, LATERAL pg_catalog.aclexplode(d.datacl) a WHERE d.datname = %s ORDER BY 1, 2"""
SETTINGS_SQL = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole) END, s.setconfig
FROM pg_db_role_setting s WHERE s.setdatabase = %s ORDER BY 1 NULLS FIRST"""
OTHER_SESSIONS_SQL = """
SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"""
CAN_CREATE_SQL = "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
# What aclexplode() reports for a database, as the keyword GRANT takes (any other is a KeyError, not SQL).
DATABASE_PRIVILEGES = {name: sql.SQL(name) for name in ("CREATE", "CONNECT", "TEMPORARY")}


@dataclass
class DatabaseShape:
    """What a database is besides its contents, to be carried over to its replacement."""

    owner: str
    owned_by_us: bool
    encoding: str
    collate: str
    ctype: str
    provider: str
    icu_locale: str | None
    tablespace: str
    connection_limit: int
    comment: str | None
    explicit_acl: bool
    grants: list[tuple[str | None, str, bool]] = field(default_factory=list)
    settings: list[tuple[str | None, list[str]]] = field(default_factory=list)


@contextmanager
def admin_session(target: Target) -> Iterator[Any]:
    """An autocommit session on the server's maintenance database (never the target itself)."""
    conn = None
    last: errors.BackupError | None = None
    for name in (db for db in MAINTENANCE_DATABASES if db != target.url.database):
        try:
            conn = psycopg2.connect(**connect_kwargs(target.url.set(database=name)))
            break
        except psycopg2.OperationalError as exc:  # no such database, or no right to connect to it
            last = classify_failure(str(exc), default=errors.RestoreError, default_message=errors.RESTORE_FAILED,
                                    target=target)
    if conn is None:
        raise last or errors.RestoreError(errors.RESTORE_FAILED, "no maintenance database")
    try:
        conn.autocommit = True
        yield conn
    finally:
        conn.close()


@contextmanager
def exclusive(target: Target, namespace: str, wait_s: float) -> Iterator[None]:
    """The target's lock: a session advisory lock on its server, held by a session of our own, so
    it holds across workers on any machine and goes the moment its holder dies (the server sees
    the connection drop), with no expiry to wait out."""
    key = sql.SQL("pg_catalog.hashtext({})").format(sql.Literal(f"backup-worker:{namespace}:{target.url.database}"))
    with admin_session(target) as admin, admin.cursor() as cur:
        deadline = time.monotonic() + wait_s
        while True:
            cur.execute(sql.SQL("SELECT pg_catalog.pg_try_advisory_lock({})").format(key))
            if cur.fetchone()[0]:
                break
            if time.monotonic() >= deadline:
                raise errors.TargetBusy(errors.TARGET_BUSY, f"another backup or restore of {target.name!r} is "
                                        f"running (waited {wait_s:.0f}s)")
            time.sleep(LOCK_POLL_S)
        yield


def lock_key(name: str) -> sql.Composable:
    return sql.SQL("pg_catalog.hashtext({})").format(sql.Literal(f"backup-worker:{name}"))


def can_create_databases(target: Target) -> bool:
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute(CAN_CREATE_SQL)
        return bool(cur.fetchone()[0])


def read_shape(cur: Any, database: str) -> DatabaseShape:
    cur.execute(DATABASE_SQL, (database,))
    row = cur.fetchone()
    if row is None:
        raise errors.InvalidRequest(errors.TARGET_MISSING, database)
    oid, owner, ours, encoding, collate, ctype, provider, icu, tablespace, limit, comment, explicit = row
    shape = DatabaseShape(owner=owner, owned_by_us=ours, encoding=encoding, collate=collate, ctype=ctype,
                          provider=provider, icu_locale=icu, tablespace=tablespace, connection_limit=limit,
                          comment=comment, explicit_acl=explicit)
    if explicit:
        cur.execute(GRANTS_SQL, (database,))
        shape.grants = [tuple(row) for row in cur.fetchall()]
    cur.execute(SETTINGS_SQL, (oid,))
    shape.settings = [(role, list(config or [])) for role, config in cur.fetchall()]
    return shape


def split_list_setting(value: str) -> list[str]:
    """A list setting's stored text (`"$user", public`) as its elements (PostgreSQL's SplitGUCList)."""
    elements, current, quoted, i = [], [], False, 0
    while i < len(value):
        char = value[i]
        if quoted:
            if char == '"' and value[i + 1:i + 2] == '"':
                current.append('"')
                i += 1
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == ",":
            elements.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    elements.append("".join(current).strip())
    return [element for element in elements if element]


def setting_value(name: str, value: str) -> sql.Composable:
    if name.lower() in LIST_SETTINGS:
        return sql.SQL(", ").join(sql.Literal(element) for element in split_list_setting(value))
    return sql.Literal(value)


def create_statement(name: str, shape: DatabaseShape) -> sql.Composable:
    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(name), sql.Literal(shape.encoding), sql.Literal(shape.collate), sql.Literal(shape.ctype))]
    if shape.provider == "i":
        parts.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(shape.icu_locale or "")))
    if shape.tablespace != "pg_default":
        parts.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(shape.tablespace)))
    return sql.SQL(" ").join(parts)


def shape_statements(name: str, shape: DatabaseShape) -> list[sql.Composable]:
    """What makes the new database look like the target from outside: owner, grants, settings."""
    db = sql.Identifier(name)
    statements: list[sql.Composable] = []
    if not shape.owned_by_us:
        statements.append(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, sql.Identifier(shape.owner)))
    if shape.connection_limit != -1:
        statements.append(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            db, sql.Literal(shape.connection_limit)))
    if shape.comment is not None:
        statements.append(sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(shape.comment)))
    if shape.explicit_acl:
        statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC, {}").format(db, sql.Identifier(shape.owner)))
        for grantee, privilege, grantable in shape.grants:
            statements.append(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                DATABASE_PRIVILEGES[privilege], db, sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")))
    for role, config in shape.settings:
        for item in config:
            setting, _, value = item.partition("=")
            where = sql.SQL("ROLE {} IN DATABASE {}").format(sql.Identifier(role), db) if role else \
                sql.SQL("DATABASE {}").format(db)
            statements.append(sql.SQL("ALTER {} SET {} TO {}").format(where, sql.Identifier(setting),
                                                                     setting_value(setting, value)))
    return statements


class Beside:
    """A new database beside the target, made and held by one admin session until it is swapped in
    or dropped."""

    def __init__(self, target: Target, admin: Any, prefix: str = RESTORE_PREFIX) -> None:
        self.target_name = target.url.database or ""
        self.name = f"{prefix}{uuid.uuid4().hex[:16]}"
        self.admin = admin
        self.database = Target(name=f"{target.name}:new", url=target.url.set(database=self.name),
                               dialect=target.dialect)
        self._target = target
        self.swapped = False

    def run(self, statement: sql.Composable, *args: Any) -> Any:
        with self.admin.cursor() as cur:
            cur.execute(statement, args or None)
            return cur.fetchall() if cur.description else None

    def create(self, shape: DatabaseShape | None = None) -> None:
        """The empty database (shaped like the target when `shape` is given), under our advisory lock."""
        self.run(sql.SQL("SELECT pg_catalog.pg_advisory_lock({})").format(lock_key(self.name)))
        statement = create_statement(self.name, shape) if shape else \
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.name))
        self.admin_statement(statement, "create the new database beside the target")

    def shape_like(self, shape: DatabaseShape) -> None:
        for statement in shape_statements(self.name, shape):
            self.admin_statement(statement, "carry the target's owner, grants and settings over")

    def admin_statement(self, statement: sql.Composable, what: str) -> None:
        try:
            self.run(statement)
        except psycopg2.Error as exc:
            raise errors.RestoreError(errors.RESTORE_FAILED, f"target {self._target.name!r}: could not {what}: "
                                      f"{scrub(str(exc), self._target)}") from exc

    def drop(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            cur.execute(sql.SQL("SELECT pg_catalog.pg_advisory_unlock({})").format(lock_key(self.name)))

    def swap_in(self) -> int:
        """Swap names with the target in one transaction; returns how many of its sessions were ended.
        The replaced database is dropped after the commit (a kill -9 before that leaves it to `sweep`)."""
        replaced = f"{REPLACED_PREFIX}{uuid.uuid4().hex[:16]}"
        self.run(sql.SQL("SELECT pg_catalog.pg_advisory_lock({})").format(lock_key(replaced)))
        ended = 0
        try:
            for attempt in range(SWAP_ATTEMPTS):
                ended += sum(1 for (done,) in self.run(sql.SQL(OTHER_SESSIONS_SQL), self.target_name) if done)
                try:
                    self._renames(replaced)
                    break
                except psycopg2.errors.ObjectInUse:
                    if attempt == SWAP_ATTEMPTS - 1:
                        raise errors.RestoreError(errors.RESTORE_FAILED, f"target {self._target.name!r}: its "
                                                  "sessions kept coming back; not swapped") from None
                    time.sleep(SWAP_PAUSE_S)
            self.swapped = True
            self.run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(replaced)))
        except psycopg2.Error as exc:
            raise classify_failure(str(exc), default=errors.RestoreError, default_message=errors.RESTORE_FAILED,
                                   target=self._target) from exc
        finally:
            self.run(sql.SQL("SELECT pg_catalog.pg_advisory_unlock({})").format(lock_key(replaced)))
        return ended

    def _renames(self, replaced: str) -> None:
        self.admin.autocommit = False
        try:
            with self.admin.cursor() as cur:
                cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(self.target_name),
                                                                            sql.Identifier(replaced)))
                cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(self.name),
                                                                            sql.Identifier(self.target_name)))
            self.admin.commit()
        except BaseException:
            self.admin.rollback()
            raise
        finally:
            self.admin.autocommit = True


@contextmanager
def beside(target: Target, prefix: str = RESTORE_PREFIX, *, shaped: bool = True) -> Iterator[Beside]:
    """A new database beside the target, shaped like it; dropped unless it was swapped in."""
    with admin_session(target) as admin:
        new = Beside(target, admin, prefix)
        shape = None
        if shaped:
            with admin.cursor() as cur:
                shape = read_shape(cur, new.target_name)
        new.create(shape)
        try:
            if shape is not None:
                new.shape_like(shape)
            yield new
        finally:
            if not new.swapped:
                new.drop()


def sweep(target: Target) -> list[str]:
    """Drop the databases restores and drills left on the target's server when they died (their
    advisory lock is free); a database some live restore holds is left alone."""
    dropped: list[str] = []
    try:
        with admin_session(target) as admin, admin.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bw\\_restore\\_%' "
                        "OR datname LIKE 'bw\\_replaced\\_%' OR datname LIKE 'bw\\_drill\\_%'")
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("SELECT pg_catalog.pg_try_advisory_lock({})").format(lock_key(name)))
                if not cur.fetchone()[0]:
                    continue
                try:
                    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                    dropped.append(name)
                except psycopg2.Error:
                    pass  # not ours to drop (another owner): left for its owner's sweep
                finally:
                    cur.execute(sql.SQL("SELECT pg_catalog.pg_advisory_unlock({})").format(lock_key(name)))
    except errors.BackupError:
        return dropped
    return dropped
