"""Scratch databases on the target's server (restore drills), and row counts from the catalog."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from psycopg2 import sql

from backup_engine import errors
from backup_engine.engines.postgresql.connect import connect
from backup_engine.engines.postgresql.restore import user_tables
from backup_engine.engines.postgresql.swap import DRILL_PREFIX, beside
from backup_engine.targets import Target

# Tables counted per statement: one round trip each instead of one per table, and a statement's
# locks (its tables and their indexes) stay far inside a default server's lock table.
COUNT_BATCH = 32
COUNT_SESSIONS_FROM = 8  # batches (256 tables) from which a second session counts half: it costs a connection


def count_rows(target: Target) -> dict[str, int]:
    """Exact row counts of every user table, by the names table_rows uses (`ONLY`: a partitioned
    parent counts its own rows, as pg_dump's COPY blocks do). Names come from the catalog and are
    quoted by psycopg2: nothing read from a backup reaches this SQL. Each statement counts
    COUNT_BATCH tables in a transaction of its own (autocommit): one transaction would hold a
    lock per table and index at once, more than a default server's lock table has for 5,000
    tables. Nobody else writes to a database being built or drilled, so the counts still
    describe one state, and two sessions count halves of the batches at once: the server's
    work per table (0.17 ms, 0.9 s at 5,000 tables) runs on two cores while this process waits."""
    with connect(target) as conn:
        conn.autocommit = True
        tables = sorted(user_tables(conn.cursor()).items())
        batches = [tables[first:first + COUNT_BATCH] for first in range(0, len(tables), COUNT_BATCH)]
        if len(batches) < COUNT_SESSIONS_FROM:
            return _count(conn, batches)
        half = len(batches) // 2
        with connect(target) as other, ThreadPoolExecutor(1, thread_name_prefix="count-rows") as pool:
            other.autocommit = True
            second = pool.submit(_count, other, batches[half:])
            return {**_count(conn, batches[:half]), **second.result()}


def _count(conn: Any, batches: list[list[tuple[str, tuple[str, str]]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        for batch in batches:
            cur.execute(sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}::integer, count(*) FROM ONLY {}").format(sql.Literal(index),
                                                                            sql.Identifier(schema, name))
                for index, (_, (schema, name)) in enumerate(batch)))
            for index, count in cur.fetchall():
                counts[batch[index][0]] = count
    return counts


def check_rows(database: Target, expected: Mapping[str, int]) -> None:
    """Every table of the manifest holds its number of rows in the built database."""
    counts = count_rows(database)
    differ = [f"{name}: manifest {count}, restored {counts.get(name)}" for name, count in expected.items()
              if counts.get(name) != count]
    if differ:
        raise errors.RestoreError(errors.ROW_COUNTS_DIFFER, "; ".join(differ[:20]))


@contextmanager
def scratch_database(target: Target) -> Iterator[Target]:
    """A new empty database on the target's server (swept if its maker dies), dropped afterwards."""
    with beside(target, DRILL_PREFIX, shaped=False) as new:
        yield new.database
