"""Restoring a trusted dump over a PostgreSQL target in one transaction: all or nothing.

A script run before the dump, in the same transaction, resets the target: a schema-bearing
restore replaces every user schema; a data-only restore empties the tables it fills, with the
user triggers off while it loads (they fired when the rows were first written) and on again
after. Every name in these scripts comes from the catalog and is quoted by psycopg2; nothing
read from the backup's text reaches them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from backup_engine import errors
from backup_engine.engines.base import ArtifactSource
from backup_engine.engines.postgresql.connect import client_run, connect
from backup_engine.engines.postgresql.native import script_complete
from backup_engine.engines.postgresql.psql import psql_argv, require_tool, stream_into_psql
from backup_engine.targets import Target

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# pg_trigger.tgenabled -> the ALTER TABLE clause that puts a trigger back in that state.
TRIGGER_STATES = {"O": "ENABLE TRIGGER", "D": "DISABLE TRIGGER", "R": "ENABLE REPLICA TRIGGER",
                  "A": "ENABLE ALWAYS TRIGGER"}
ENABLED_USER_TRIGGERS = """
    SELECT n.nspname, c.relname, t.tgname, t.tgenabled
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'D'
       AND n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'
     ORDER BY 1, 2, 3"""
RELATIONS_SQL = """
    SELECT count(*) + 2 * count(*) FILTER (WHERE c.reltoastrelid <> 0)  -- a toast table and its index each
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'"""
LOCK_TABLE_SQL = """
    SELECT current_setting('max_locks_per_transaction')::int,
           current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int,
           current_user"""
LOCK_HEADROOM = 0.8  # of the shared lock table: other sessions hold locks too
USER_SCHEMAS = "SELECT nspname FROM pg_namespace WHERE nspname NOT IN %s AND nspname NOT LIKE 'pg\\_%%' ORDER BY 1"
# The user tables, by the name table_rows gives them (pg_dump's quote_ident form).
USER_TABLES = """
    SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname, c.relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'"""


@dataclass
class ResetScripts:
    """SQL run in the restore's own transaction around the dump."""

    before: str
    after: str = ""


def user_tables(cur: object) -> dict[str, tuple[str, str]]:
    """The target's user tables: display name -> (schema, name), as the catalog has them."""
    cur.execute(USER_TABLES, (SYSTEM_SCHEMAS,))  # type: ignore[attr-defined]
    return {display: (schema, name) for display, schema, name in cur.fetchall()}  # type: ignore[attr-defined]


def reset_scripts(target: Target, include_data: str, tables: Iterable[str]) -> ResetScripts:
    """So that the target ends up holding exactly the backup (see the module doc).

    `tables` are the display names of the tables a data-only backup fills: they only select
    tables of the catalog, whose own names are what the script gets, quoted.
    """
    with connect(target) as conn, conn.cursor() as cur:
        if include_data == "data":
            cur.execute(ENABLED_USER_TRIGGERS, (SYSTEM_SCHEMAS,))
            triggers = cur.fetchall()
            before = [sql.SQL("ALTER TABLE {} DISABLE TRIGGER {};").format(sql.Identifier(schema, table),
                                                                          sql.Identifier(trigger)).as_string(conn)
                      for schema, table, trigger, _ in triggers]
            # Deferred checks of the load must run before ALTER TABLE ("pending trigger events").
            after = ["SET CONSTRAINTS ALL IMMEDIATE;"] + [
                sql.SQL("ALTER TABLE {} {} {};").format(sql.Identifier(schema, table), sql.SQL(TRIGGER_STATES[state]),
                                                       sql.Identifier(trigger)).as_string(conn)
                for schema, table, trigger, state in triggers]
            known = user_tables(cur)
            filled = [known[name] for name in tables if name in known]
            if filled:
                before.append(sql.SQL("TRUNCATE TABLE {};").format(
                    sql.SQL(", ").join(sql.Identifier(*name) for name in filled)).as_string(conn))
            return ResetScripts(before="\n".join(before) + "\n", after="\n".join(after) + "\n")
        cur.execute(USER_SCHEMAS, (SYSTEM_SCHEMAS,))
        statements = [sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE;").format(sql.Identifier(name)).as_string(conn)
                      for (name,) in cur.fetchall()]
    statements.append("CREATE SCHEMA IF NOT EXISTS public;")
    return ResetScripts(before="\n".join(statements) + "\n")


def checked_to_the_end(source: ArtifactSource) -> Callable[[bytes], None]:
    """What must hold before psql may see the end of its input: the whole content matched the
    manifest's checksums, and it ends as a complete dump."""

    def before_end(tail: bytes) -> None:
        source.verify()
        if not script_complete(tail):
            raise errors.RestoreError(errors.RESTORE_FAILED, f"{source.name}: {errors.INCOMPLETE_DUMP}")

    return before_end


def restore_in_one_transaction(target: Target, source: ArtifactSource, include_data: str,
                               tables: Iterable[str], psql_path: str | None) -> None:
    """Reset scripts, the dump and the after script in one psql transaction; committed only
    once the dump was read whole, matched its checksum and ended as a complete dump."""
    psql = require_tool(psql_path, "psql", errors.RestoreError)
    around = reset_scripts(target, include_data, tables)
    with client_run(target) as run, source.open() as content:
        scripts = [run.memory_file(around.before), "-"]
        if around.after:
            scripts.append(run.memory_file(around.after))
        stream_into_psql(target, run, psql_argv(psql, scripts, single_transaction=True), content,
                         checked_to_the_end(source))


# A database being built beside its target is seen by nobody until the swap, and the swap's own
# (synchronous) commit flushes the WAL up to it, so the load's thousands of commits need not each
# wait for a flush: with many small tables that wait was most of the restore.
UNSYNCED_LOAD = "SET synchronous_commit TO off;\n"


def load_into_new_database(new: Target, source: ArtifactSource, psql_path: str | None) -> None:
    """A trusted dump into a new, empty database, statement by statement (as many transactions as
    it takes: thousands of relations fit no single one); checked to the end before psql finishes."""
    psql = require_tool(psql_path, "psql", errors.RestoreError)
    with client_run(new) as run, source.open() as content:
        scripts = [run.memory_file(UNSYNCED_LOAD), "-"]
        stream_into_psql(new, run, psql_argv(psql, scripts, single_transaction=False), content,
                         checked_to_the_end(source))


def relation_count(cur: Any) -> int:
    """User relations (tables, indexes, sequences, views, toast tables): what a restore locks."""
    cur.execute(RELATIONS_SQL, (SYSTEM_SCHEMAS,))
    return int(cur.fetchone()[0])


def check_lock_capacity(target: Target, backup_relations: int) -> None:
    """Before a restore in one transaction over the target: refuse up front when dropping the
    target's relations and creating the backup's needs more locks than the server's lock table
    holds (with headroom for other sessions), saying what to change."""
    with connect(target) as conn, conn.cursor() as cur:
        existing = relation_count(cur)
        cur.execute(LOCK_TABLE_SQL)
        per_transaction, slots, current_user = cur.fetchone()
    needed = existing + backup_relations
    capacity = per_transaction * slots
    if needed > LOCK_HEADROOM * capacity:
        wanted = math.ceil(needed / LOCK_HEADROOM / slots)
        raise errors.RestoreError(errors.LOCKS_WONT_FIT, f"target {target.name!r}: about {needed} relations to drop "
                                  f"and create, the server's lock table holds {capacity}; grant CREATEDB to role "
                                  f"{current_user!r} (the restore is then built beside the target and swapped "
                                  f"in), or raise max_locks_per_transaction to at least {wanted}. Nothing was "
                                  "touched")
