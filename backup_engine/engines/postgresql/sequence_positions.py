# ruff: noqa: S608 - the queries are constants; identifiers are composed with psycopg2.sql
"""Sequence positions, read on a connection of their own while the snapshot reads the catalog.

A sequence's position is not transactional: `SELECT last_value, is_called FROM seq` inside the
snapshot's transaction reads it as it is now, as any other session would (pg_dump reads it the
same way). Read there, positions cost twice at thousands of tables:
- time: one relation opened per sequence, about 0.06 ms each (0.12 s at 2,000 tables), in the
  dump's own path;
- locks: `pg_sequence_last_value`, which reads 2,000 positions in 0.01 s, keeps each sequence's
  lock to the end of the *top* transaction (`lock_and_open_sequence`), which no savepoint lets go.

On an autocommit connection of its own, each statement's locks end with it. So `PositionsAside`
reads, on a thread, once the dump's snapshot is taken, while the snapshot's session reads the
catalog:
- the positions of sequences ever called with `pg_sequence_last_value`, up to BATCH per statement;
- those it gives no value for (never called, or reset with `setval(..., false)`) with
  `SELECT last_value, is_called`, up to BATCH per statement.

It is a shortcut, never a source of truth: any failure (no connection to spare, a sequence
dropped meanwhile) leaves every position to the snapshot's own reading (`catalog.read_sequences`),
and a sequence it did not see is read there too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from backup_engine.engines.postgresql.connect import connect
from backup_engine.targets import Target

log = logging.getLogger(__name__)

BATCH = 500  # sequences per statement: at most this many locks at once, released with the statement
Positions = Mapping[tuple[str, str], tuple[int, bool]]  # (schema, name) -> (last_value, is_called)

# The sequences `catalog.SEQUENCES_SQL` lists: in user schemas, not an extension's.
LIST_SQL = """
SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_sequence s
JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY 1"""
CALLED_SQL = "SELECT o, pg_catalog.pg_sequence_last_value(o) FROM unnest(%s::pg_catalog.oid[]) o"


def batched_positions(cur: Any, names: list[tuple[str, str]]) -> Iterator[tuple[int, int, bool]]:
    """(index into `names`, last_value, is_called), BATCH sequences per `SELECT ... UNION ALL`."""
    from psycopg2 import sql

    for first in range(0, len(names), BATCH):
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}::integer, last_value, is_called FROM {}.{}").format(
                sql.Literal(index), sql.Identifier(schema), sql.Identifier(name))
            for index, (schema, name) in enumerate(names[first:first + BATCH], start=first))
        cur.execute(query)
        yield from cur.fetchall()


def read_positions(cur: Any) -> dict[tuple[str, str], tuple[int, bool]]:
    """Every user sequence's position, read on `cur`, an autocommit session."""
    cur.execute(LIST_SQL)
    listed = cur.fetchall()
    positions: dict[tuple[str, str], tuple[int, bool]] = {}
    uncalled: list[tuple[str, str]] = []
    names = {oid: (schema, name) for oid, schema, name in listed}
    oids = list(names)
    for first in range(0, len(oids), BATCH):
        cur.execute(CALLED_SQL, (oids[first:first + BATCH],))
        for oid, last_value in cur.fetchall():
            if last_value is None:
                uncalled.append(names[oid])
            else:
                positions[names[oid]] = (last_value, True)
    for index, last_value, is_called in batched_positions(cur, uncalled):
        positions[uncalled[index]] = (last_value, is_called)
    return positions


class PositionsAside:
    """The positions of the target's sequences, being read on a thread and a connection of their own."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._positions: Positions = {}
        self._thread = threading.Thread(target=self._read, name="sequence-positions", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with connect(self._target) as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    self._positions = read_positions(cur)
        except Exception as exc:  # noqa: BLE001 - a shortcut only: the snapshot reads them instead
            log.info("sequence positions are read in the snapshot instead: %s", type(exc).__name__)

    def result(self) -> Positions:
        """The positions read (empty when the read failed); waits for the thread."""
        self._thread.join()
        return self._positions


@contextmanager
def positions_aside(target: Target, snapshot_connection: Any) -> Iterator[PositionsAside]:
    """`PositionsAside` for the block, its read over when the block ends well. A block that fails
    (or is stopped by a time limit) does not wait for it: the read ends on its own, and its
    connection with it.

    The dump's snapshot is taken first (a repeatable-read transaction takes it at its first
    query): positions read after it are at least the values of every row it holds, so a restored
    sequence never hands out a key a restored row has. (A snapshot imported with `SET TRANSACTION
    SNAPSHOT` must be imported before.)"""
    with snapshot_connection.cursor() as cur:
        cur.execute("SELECT 1")
    aside = PositionsAside(target)
    yield aside
    aside.result()
