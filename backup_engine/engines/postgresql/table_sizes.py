# ruff: noqa: S608 - the queries are constants
"""Every user table's size on disk, read in one catalog query (a query per table was a round trip each).

Sizes decide how a table's data is read, never what is read: the JSON export reads small tables
in batches (`batch_copy`) and splits big ones in two streams (`split_copy`); a `pgdump` archive
uses parallel jobs only when big tables hold enough data (`archive.parallel_worth`). They are
the relation files' sizes, not the snapshot's rows: close enough to choose by. A size function
given a relation that does not exist (no TOAST: reltoastrelid 0) returns NULL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup_engine.engines.postgresql.restore import SYSTEM_SCHEMAS

TABLE_SIZES = """
SELECT n.nspname, c.relname, s.heap / pg_catalog.current_setting('block_size')::int, s.heap, s.heap + s.toast
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
     LATERAL (SELECT pg_catalog.pg_relation_size(c.oid) AS heap,
                     COALESCE(pg_catalog.pg_relation_size(c.reltoastrelid), 0) AS toast) s
WHERE c.relkind = 'r' AND n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'"""
LARGE_OBJECT_BYTES = "SELECT pg_catalog.pg_table_size('pg_catalog.pg_largeobject')"


@dataclass(frozen=True)
class TableSize:
    """A table's size on disk."""

    pages: int  # of the heap
    heap: int  # bytes
    total: int  # bytes, heap and TOAST


def table_sizes(raw: Any) -> dict[tuple[str, str], TableSize]:
    """(schema, table) -> its size, for every user table."""
    with raw.cursor() as cur:
        cur.execute(TABLE_SIZES, (SYSTEM_SCHEMAS,))
        return {(schema, name): TableSize(pages, heap, total) for schema, name, pages, heap, total in cur.fetchall()}


def large_object_bytes(raw: Any) -> int:
    """The size of the database's large objects (their catalog, pg_largeobject)."""
    with raw.cursor() as cur:
        cur.execute(LARGE_OBJECT_BYTES)
        return int(cur.fetchone()[0])
