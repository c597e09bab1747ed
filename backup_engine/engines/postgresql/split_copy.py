"""A big table's JSON rows in two COPY streams at once, from one snapshot.

Rendering rows as JSON (`json_build_array`) costs the server about twice what pg_dump's plain
COPY does, all of it on one backend. For a table big enough to matter, its pages are split in
two halves (TID range scans, PostgreSQL 14+), the second half read by a second connection that
imported the export's snapshot (`pg_export_snapshot` / `SET TRANSACTION SNAPSHOT`): both see
exactly the same rows, and together every row once. Each stream's output is cut at line ends
and handed, whole lines at a time and under a lock, to the one `RowLines` of the table, so the
document stays one table section whatever the interleaving (row order within a table carries no
meaning in the document). A table is split when its heap is big (`table_sizes`).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2

from backup_engine import errors
from backup_engine.engines.postgresql.connect import import_snapshot, locks_released, snapshot_connection
from backup_engine.engines.postgresql.table_sizes import TableSize
from backup_engine.formats.json_document import BLOCK, RowLines
from backup_engine.targets import Target

SPLIT_BYTES = 32 << 20  # a table smaller than this is one stream: a second one would cost more than it saves
TID_RANGE_SCANS = 140000  # server_version_num from which `ctid < '(n,0)'` is a range scan, not a filter
class WholeLines(io.RawIOBase):
    """A COPY stream's blocks, handed to `lines` as whole lines only (a row may span two blocks)."""

    def __init__(self) -> None:
        self._partial = b""

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        data = self._partial + bytes(block)
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        if cut:
            self.lines(data[:cut])
        return len(block)

    def lines(self, data: bytes) -> None:
        """One or more whole lines, each ending in a newline."""
        raise NotImplementedError

    def finish(self) -> None:
        if self._partial:
            raise errors.DumpError(errors.JSON_BACKUP_FAILED, "a COPY stream ended inside a row")


class _SharedLines(WholeLines):
    """One COPY stream's whole lines, passed on to the RowLines both streams share, under a lock."""

    def __init__(self, rows: RowLines, lock: threading.Lock) -> None:
        super().__init__()
        self._rows = rows
        self._lock = lock

    def lines(self, data: bytes) -> None:
        with self._lock:
            self._rows.write(data)


class SecondStream:
    """The second connection, opened on first use in the export's snapshot; one per export."""

    def __init__(self, raw: Any, target: Target) -> None:
        self._raw = raw
        self._target = target
        self._snapshot: str | None = None
        self._connection: Any = None
        self._stack = contextlib.ExitStack()
        with raw.cursor() as cur:
            cur.execute("SELECT pg_catalog.current_setting('server_version_num')::int")
            self.available = cur.fetchone()[0] >= TID_RANGE_SCANS

    def pages_to_split(self, size: TableSize | None) -> int | None:
        """Half the table's pages when it is worth two streams, else None."""
        if not self.available or size is None or size.heap < SPLIT_BYTES:
            return None
        return size.pages // 2

    def connection(self) -> Any:
        if self._connection is None:
            with self._raw.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_export_snapshot()")
                self._snapshot = cur.fetchone()[0]
            self._connection = self._stack.enter_context(
                snapshot_connection(self._target, errors.JSON_BACKUP_FAILED, "JSON export (second stream): "))
            import_snapshot(self._connection, self._snapshot)
        return self._connection

    def close(self) -> None:
        self._stack.close()


@contextmanager
def second_stream(raw: Any, target: Target) -> Iterator[SecondStream]:
    stream = SecondStream(raw, target)
    try:
        yield stream
    finally:
        stream.close()


def copy_split(raw: Any, stream: SecondStream, query_for: Callable[[str], str], middle_page: int,
               rows: RowLines) -> None:
    """The COPY `query_for(where)` gives, in two halves at once (`where`: a WHERE clause on ctid).
    Called outside any savepoint: a snapshot is exported only from the transaction itself."""
    lock = threading.Lock()
    halves = [(raw, f" WHERE ctid < '({middle_page},0)'::pg_catalog.tid"),
              (stream.connection(), f" WHERE ctid >= '({middle_page},0)'::pg_catalog.tid")]
    sinks = [_SharedLines(rows, lock) for _ in halves]
    failures: list[BaseException] = []

    def run(index: int) -> None:
        connection, where = halves[index]
        try:
            # psycopg2 hands COPY TO's output over a row at a time: buffered into 1 MiB blocks
            with locks_released(connection), io.BufferedWriter(sinks[index], buffer_size=BLOCK) as buffered, \
                    connection.cursor() as cur:
                cur.copy_expert(query_for(where), buffered, size=BLOCK)
                buffered.flush()
            sinks[index].finish()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failures.append(exc)

    helper = threading.Thread(target=run, args=(1,), name="json-second-stream", daemon=True)
    helper.start()
    run(0)
    if failures:
        with contextlib.suppress(psycopg2.Error):
            halves[1][0].cancel()  # the other half stops at once instead of reading to its end
    helper.join()
    if failures:
        raise failures[0]
