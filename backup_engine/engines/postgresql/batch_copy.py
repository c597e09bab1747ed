"""Small tables' JSON rows, many tables to a COPY: one round trip and one planning a batch.

A COPY per table costs a round trip and a planning each, which at thousands of tiny tables is most
of an export. A batch of consecutive small tables is one `COPY (SELECT 0, <row> FROM ONLY t0 UNION
ALL SELECT 1, <row> FROM ONLY t1 ...)`: every line is `<position>\\x02<JSON array>\\n`, the position
being the table's place in the batch. An Append (without parallel workers, which the batch turns
off) runs its branches in order, so the positions never go back; `BatchLines` takes the markers
off and hands each table's lines to its own section of the document as they come, and refuses a
stream whose positions do go back rather than write rows into the wrong table.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from typing import Any, Protocol, TypeVar

from backup_engine import errors
from backup_engine.engines.postgresql.connect import LOCK_WINDOW_TABLES, locks_released
from backup_engine.engines.postgresql.split_copy import WholeLines
from backup_engine.formats.json_document import BLOCK, RowLines

SMALL_TABLE_BYTES = 256 << 10  # heap and TOAST: a table this small is read in a batch with others
SEPARATOR = b"\x02"  # the COPY's delimiter: between a line's position and its row
# A Parallel Append may run its branches in any order; the batch's savepoint scopes the setting.
BATCH_SETTINGS = ("SET LOCAL max_parallel_workers_per_gather = 0",)
T = TypeVar("T")


def copy_rows(select: str) -> str:
    """`select`'s rows as COPY output lines. JSON text never holds a raw control character, so the
    CSV format with \\x01 as its quote and \\x02 as its delimiter leaves every value as it is."""
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


def batches(tables: Sequence[T], small: Callable[[T], bool], most: int = LOCK_WINDOW_TABLES
            ) -> Iterator[tuple[bool, list[T]]]:
    """`tables` in order as runs: (True, up to `most` consecutive small ones) or (False, [a big one])."""
    run: list[T] = []
    for table in tables:
        if not small(table):
            if run:
                yield True, run
                run = []
            yield False, [table]
            continue
        run.append(table)
        if len(run) == most:
            yield True, run
            run = []
    if run:
        yield True, run


class Sections(Protocol):
    """Where a batch's tables go: a section of the document each, opened and closed in order."""

    def open(self, key: str) -> RowLines: ...

    def close(self, key: str, rows: RowLines) -> None: ...


class BatchLines(WholeLines):
    """A batch's COPY output, each table's lines handed without their marker to its own section.

    Every table of the batch gets its section, in order, a table without rows too; rows are passed
    on a block at a time, never held for a whole table."""

    def __init__(self, keys: list[str], sections: Sections) -> None:
        super().__init__()
        self._keys = keys
        self._sections = sections
        self._markers = [b"%d" % position + SEPARATOR for position in range(len(keys))]
        self._position = -1
        self._rows: RowLines | None = None
        self._failure: errors.DumpError | None = None

    def lines(self, data: bytes) -> None:
        if self._failure:  # a buffered writer's close flushes again: nothing more goes through
            raise self._failure
        first = self._position_at(data, 0)
        last = self._position_at(data, data.rfind(b"\n", 0, len(data) - 1) + 1)
        if first < self._position or last < first:
            raise self._went_back(max(self._position, first), min(first, last))
        starts = [(self._start(data, position), position) for position in range(first + 1, last + 1)]
        runs = [(0, first)] + [(at, position) for at, position in starts if at >= 0]
        for (at, position), (next_at, next_position) in pairwise(runs):
            if at > next_at:
                raise self._went_back(next_position, position)
        for (begin, position), end in zip(runs, [at for at, _ in runs[1:]] + [len(data)], strict=True):
            self._table(position).write(self._unmarked(data[begin:end], position))

    def finish(self) -> None:
        """After the COPY: the sections of the tables whose rows did not come (none) are written."""
        super().finish()
        self._close_before(len(self._keys))

    def _position_at(self, data: bytes, start: int) -> int:
        """The position that marks the line starting at `start`."""
        digits, separator, _ = data[start:start + 12].partition(SEPARATOR)
        if not separator or not digits.isdigit() or int(digits) >= len(self._keys):
            raise self._refuse("a line without a position in the batch")
        return int(digits)

    def _start(self, data: bytes, position: int) -> int:
        """Where `position`'s first line is in `data` (whole lines), or -1."""
        marker = self._markers[position]
        if data.startswith(marker):
            return 0
        at = data.find(b"\n" + marker)
        return at + 1 if at >= 0 else -1

    def _unmarked(self, run: bytes, position: int) -> bytes:
        """`run` (lines that should all be `position`'s) without their markers; refused unless every
        line had exactly that marker (JSON never holds the separator)."""
        marker = self._markers[position]
        rows = run[len(marker):].replace(b"\n" + marker, b"\n")
        markers = (len(run) - len(rows)) // len(marker)
        if not run.startswith(marker) or markers != run.count(b"\n") or SEPARATOR in rows:
            raise self._refuse(f"a row of another table among those of {self._keys[position]!r}")
        return rows

    def _table(self, position: int) -> RowLines:
        """The section of table `position`, opened once the sections before it are closed."""
        if position == self._position and self._rows is not None:
            return self._rows
        self._close_before(position)
        rows = self._rows = self._sections.open(self._keys[position])
        self._position = position
        return rows

    def _close_before(self, position: int) -> None:
        """Close the open section, and write those of the tables before `position` without rows."""
        if self._rows is not None:
            self._sections.close(self._keys[self._position], self._rows)
            self._rows = None
        for passed in range(self._position + 1, position):
            self._sections.close(self._keys[passed], self._sections.open(self._keys[passed]))

    def _went_back(self, later: int, earlier: int) -> errors.DumpError:
        return self._refuse(f"rows of table {self._keys[earlier]!r} came after rows of {self._keys[later]!r}")

    def _refuse(self, detail: str) -> errors.DumpError:
        self._failure = errors.DumpError(errors.BATCH_OUT_OF_ORDER, detail)
        return self._failure


def copy_batch(raw: Any, branches: list[str], lines: BatchLines) -> None:
    """One COPY of the UNION ALL of `branches` (each `SELECT <its position>, <row> FROM ONLY ...`),
    its output handed to `lines`; the batch's locks are let go at its end."""
    with locks_released(raw, BATCH_SETTINGS), io.BufferedWriter(lines, buffer_size=BLOCK) as buffered, \
            raw.cursor() as cur:
        cur.copy_expert(copy_rows(" UNION ALL ".join(branches)), buffered, size=BLOCK)
        buffered.flush()
    lines.finish()
