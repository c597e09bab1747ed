"""Restores into a MySQL or MariaDB target: build the new database beside it, check it, swap it in.

The dump is loaded by the client into `bw_restore_<id>_new`, on the target's server, while the
worker holds the restore's server lock (and the target's, so two restores of one target never
overlap). Its rows are counted against the manifest, its events are paused, and only then does
`swap.py` move it into the target under its journal. A data-only backup is loaded into copies of
the target's own tables (the tables it does not fill keep their rows), and the target's views,
triggers, routines and events are created again on the new tables.

`sweep` settles what killed restores and drills left behind, for any target on the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import pymysql

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools, Progress, no_progress
from backup_engine.engines.base import ArtifactSource, Ready, no_wait
from backup_engine.engines.mysql import catalog, swap
from backup_engine.engines.mysql.catalog import DbObject, quote_name, text
from backup_engine.engines.mysql.client import is_mariadb_client, load_argv, require_tool, stream_into_client
from backup_engine.engines.mysql.connect import client_run
from backup_engine.engines.mysql.native import script_complete
from backup_engine.engines.mysql.scratch import (
    as_restore_error,
    control_connection,
    create_database,
    database_exists,
    leftovers,
    new_id,
    release_lock,
    restore_names,
    target_lock,
    try_lock,
)
from backup_engine.targets import Target

TARGET_LOCK_WAIT_S = 5


def load(target: Target, database: str, source: ArtifactSource, tools: ClientTools,
         progress: Progress = no_progress) -> None:
    """Stream the backup into `database` with the client; complete and matching its manifest, or an error."""
    client = require_tool(tools.get("mysql"), "mysql")

    def before_end(tail: bytes) -> None:
        source.verify()
        if not script_complete(tail):
            raise errors.RestoreError(errors.RESTORE_FAILED, f"{source.name}: {errors.INCOMPLETE_DUMP}")

    with client_run(target) as run, source.open() as content:
        stream_into_client(target, run, load_argv(run, client, database), content, before_end,
                           mariadb_client=is_mariadb_client(client),
                           progress=lambda size: progress(phase="restore", step="load", bytes=size))


def pause_events(cur: Any, database: str) -> list[DbObject]:
    """The loaded database's events as they were written (read first), then disabled, so that none
    runs in a scratch database."""
    found = catalog.events(cur, database)
    for item in found:
        if item.status == "ENABLED":
            cur.execute(f"ALTER EVENT {quote_name(database)}.{quote_name(item.name)} DISABLE")
    return found


def check_rows(cur: Any, database: str, expected: Mapping[str, int], include_data: str) -> None:
    """The built database holds exactly the tables and rows of the manifest."""
    names = catalog.tables(cur, database)
    counted = catalog.count_rows(cur, database, names if include_data != "data" else
                                 [name for name in names if name in expected])
    problems = [f"{name}: manifest {rows}, loaded {counted.get(name)}" for name, rows in sorted(expected.items())
                if counted.get(name) != rows]
    if include_data != "data":
        problems += [f"{name}: not in the manifest" for name in sorted(set(counted) - set(expected))]
    if problems:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{errors.ROW_COUNT_MISMATCH}: " + "; ".join(problems[:20]))


def copy_schema(cur: Any, source: str, dest: str) -> None:
    """The tables and sequences of `source` created again in `dest` as SHOW CREATE TABLE has them,
    the tables empty and the sequences where they stand."""
    for name, kind in sorted(catalog.relations(cur, source).items()):
        if kind == "VIEW":
            continue
        cur.execute(f"SHOW CREATE TABLE {quote_name(source)}.{quote_name(name)}")
        ddl = text(cur.fetchone()[1])
        catalog.use(cur, dest)
        cur.execute(ddl)
        if kind == "SEQUENCE":
            cur.execute(f"SELECT next_not_cached_value FROM {quote_name(source)}.{quote_name(name)}")  # noqa: S608
            position = int(cur.fetchone()[0])
            cur.execute(f"SELECT SETVAL({quote_name(name)}, {position}, 0)")
            cur.fetchall()


def copy_rows(cur: Any, source: str, dest: str, names: Iterable[str]) -> None:
    """Rows of tables a data-only backup does not fill, copied so that they keep them."""
    for name in names:
        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION", (source, name))
        columns = ", ".join(quote_name(text(row[0])) for row in cur.fetchall())
        cur.execute(f"INSERT INTO {quote_name(dest)}.{quote_name(name)} ({columns}) "  # noqa: S608 - quoted names
                    f"SELECT {columns} FROM {quote_name(source)}.{quote_name(name)}")


def plan_swap(cur: Any, rid: str, target_db: str, new: str, include_data: str) -> swap.SwapPlan:
    """What the swap moves and creates: read from the target and from the loaded database."""
    relations = catalog.relations(cur, target_db)
    old_objects = catalog.routines(cur, target_db) + catalog.events(cur, target_db) + catalog.triggers(cur, target_db)
    if include_data == "data":  # the target keeps its own objects, created again on the new tables
        new_objects = catalog.routines(cur, target_db) + catalog.events(cur, target_db) + \
            catalog.views(cur, target_db) + catalog.triggers(cur, target_db)
    else:
        new_objects = catalog.routines(cur, new) + catalog.views(cur, new) + catalog.triggers(cur, new)
    views = sorted(name for name, kind in relations.items() if kind == "VIEW")
    plan = swap.SwapPlan(
        rid=rid, target=target_db,
        old_tables=sorted(name for name, kind in relations.items() if kind != "VIEW"),
        new_tables=sorted(name for name, kind in catalog.relations(cur, new).items() if kind != "VIEW"),
        views_aside=[[view, f"bw_restore_{rid}_v{index}"] for index, view in enumerate(views)],
        old_objects=old_objects, new_objects=new_objects)
    return plan


def restore_beside(target: Target, source: ArtifactSource, include_data: str, table_rows: Mapping[str, int],
                   tools: ClientTools, progress: Progress = no_progress, ready: Ready = no_wait) -> dict[str, Any]:
    """Make the target hold exactly what the backup holds, all or nothing (module doc)."""
    target_db = target.url.database or ""
    sweep(target)  # a restore killed earlier is settled before anything else happens
    with control_connection(target) as conn, conn.cursor() as cur:
        if not try_lock(cur, target_lock(target_db), TARGET_LOCK_WAIT_S):
            raise errors.TargetBusy(errors.TARGET_BUSY, f"target {target.name!r}: another restore is running")
        rid = new_id()
        control, new, _old = restore_names(rid)
        if not try_lock(cur, control):
            raise errors.TargetBusy(errors.TARGET_BUSY, f"restore lock {control!r}")
        plan: swap.SwapPlan | None = None
        try:
            if not database_exists(cur, target_db):
                raise errors.InvalidRequest(errors.TARGET_MISSING, f"target {target.name!r}: create database "
                                            f"{target_db!r} first")
            create_database(cur, control)
            create_database(cur, new, like=target_db)
            if include_data == "data":
                copy_schema(cur, target_db, new)
            progress(phase="restore", step="load")
            load(target, new, source, tools, progress)
            progress(phase="restore", step="loaded")
            new_events = pause_events(cur, new)
            if include_data == "data":
                copy_rows(cur, target_db, new, [name for name in catalog.tables(cur, target_db)
                                                if name not in table_rows])
            check_rows(cur, new, table_rows, include_data)
            progress(phase="restore", step="checked")
            plan = plan_swap(cur, rid, target_db, new, include_data)
            if include_data != "data":
                plan.new_objects = [*new_events, *plan.new_objects]
                plan.new_objects.sort(key=lambda item: catalog.KIND_ORDER.index(item.kind))
            for item in plan.new_objects:
                if item.kind == "TRIGGER" and include_data != "data":
                    cur.execute(f"DROP TRIGGER {quote_name(new)}.{quote_name(item.name)}")
            ready()
            swap.write_journal(cur, plan)
            progress(phase="restore", step="prepared")
            swap.swap_in(cur, plan, lambda **info: progress(phase="restore", **info))
        except BaseException as exc:
            failure = exc
            try:
                if plan is not None:
                    swap.rollback(cur, plan)
                else:
                    swap.recover(cur, rid)
            except pymysql.err.MySQLError as undo:
                raise errors.RestoreError(errors.RESTORE_FAILED, f"{failure}; rolling back failed too ({undo}): "
                                          "the next sweep of the target retries it") from undo
            if isinstance(failure, pymysql.err.MySQLError):
                raise as_restore_error(failure, target, "") from failure
            if isinstance(failure, catalog.Unreadable):
                raise errors.RestoreError(errors.RESTORE_FAILED, str(failure)) from failure
            raise
        with contextlib.suppress(pymysql.err.MySQLError):  # committed: what is left is scratch, swept later
            swap.finish(cur, plan)
        progress(phase="restore", step="cleaned")
        release_lock(cur, control)
        release_lock(cur, target_lock(target_db))
    return {"tables": len(plan.new_tables)}


def drill(target: Target, source: ArtifactSource, tools: ClientTools, conn: Any, database: str) -> dict[str, int]:
    """Load the backup into the drill's database and count its rows."""
    load(target, database, source, tools)
    with conn.cursor() as cur:
        pause_events(cur, database)
        return catalog.count_rows(cur, database)


def sweep(target: Target, cur: Any = None) -> list[str]:
    """Settle every restore and drill on the target's server that no live worker holds: roll back an
    interrupted restore (or finish one that had committed), drop the scratch databases. Returns the
    databases it removed. `cur`: a cursor of a control connection to use (else one is opened)."""
    if cur is None:
        with control_connection(target) as conn, conn.cursor() as own:
            return sweep(target, own)
    removed: list[str] = []
    own = target.url.database or ""
    for (kind, rid), names in sorted(leftovers(cur).items()):
        lock = f"bw_{kind}_{rid}"
        if not try_lock(cur, lock):
            continue  # in use by a live restore or drill
        try:
            if kind == "restore":
                settle_restore(cur, rid, own)
            else:
                for name in names:
                    cur.execute(f"DROP DATABASE IF EXISTS {quote_name(name)}")
            removed += sorted(names)
        except pymysql.err.MySQLError:
            continue  # another target's, that this account may not touch: its own worker settles it
        finally:
            release_lock(cur, lock)
    return removed


def settle_restore(cur: Any, rid: str, own: str) -> None:
    """Recover restore `rid`; a failure to recover one of the target's own restores is an error of its own."""
    control = restore_names(rid)[0]
    try:
        plan = swap.read_journal(cur, control) if catalog.relations(cur, control) else None
    except pymysql.err.MySQLError:
        plan = None
    try:
        swap.recover(cur, rid)
    except pymysql.err.MySQLError as exc:
        if plan is not None and plan.target == own:
            raise errors.RestoreError(errors.SWAP_PENDING, f"restore {rid} of {own!r}: {exc.args[-1]}") from exc
        raise
