"""Scratch databases on the target's server (restore drills), and row counts from the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql

from backup_engine import errors
from backup_engine.engines.postgresql.connect import connect, scrub
from backup_engine.engines.postgresql.restore import SYSTEM_SCHEMAS, user_tables
from backup_engine.targets import Target

DRILL_PREFIX = "bw_drill_"


def count_rows(target: Target) -> dict[str, int]:
    """Exact row counts of every user table, by the names table_rows uses (`ONLY`: a partitioned
    parent counts its own rows, as pg_dump's COPY blocks do). Names come from the catalog and are
    quoted by psycopg2: nothing read from a backup reaches this SQL."""
    counts: dict[str, int] = {}
    with connect(target) as conn, conn.cursor() as cur:
        for display, (schema, name) in sorted(user_tables(cur).items()):
            cur.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, name)))
            counts[display] = cur.fetchone()[0]
    return counts


@contextmanager
def scratch_database(target: Target) -> Iterator[Target]:
    """A new empty database on the target's server, dropped afterwards."""
    name = f"{DRILL_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        admin(target, sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    except psycopg2.Error as exc:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"target {target.name!r}: no scratch database for the "
                                  f"drill ({scrub(str(exc), target)}); grant CREATEDB to its role") from exc
    try:
        yield Target(name=f"{target.name}:drill", url=target.url.set(database=name), dialect=target.dialect)
    finally:
        admin(target, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def admin(target: Target, statement: sql.Composable) -> None:
    with connect(target) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)


__all__ = ["SYSTEM_SCHEMAS", "admin", "count_rows", "scratch_database"]
