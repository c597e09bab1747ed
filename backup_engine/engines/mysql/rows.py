"""Reading a table's rows as the server's text, streamed (a server-side cursor), for every exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql.cursors

from backup_engine.engines.mysql.catalog import quote_name

FETCH_ROWS = 2000


def select_sql(database: str, table: str, columns: list[str]) -> str:
    names = ", ".join(quote_name(name) for name in columns) or "1"
    return f"SELECT {names} FROM {quote_name(database)}.{quote_name(table)}"  # noqa: S608 - quoted names


def stream_rows(raw: Any, database: str, table: str, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of `table` (values as the server's text, bytes for binary columns), through an
    unbuffered cursor: memory holds one batch, however large the table."""
    cur = raw.cursor(pymysql.cursors.SSCursor)
    try:
        cur.execute(select_sql(database, table, columns))
        while batch := cur.fetchmany(FETCH_ROWS):
            if columns:
                yield from batch
            else:
                yield from (() for _ in batch)
    finally:
        cur.close()
