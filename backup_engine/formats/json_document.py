"""The JSON backup document: its line layout, its writer and its streaming reader.

The document is one JSON object in a fixed line layout (docs/FORMATS.md), one row per line:

    {"format": "backup-worker-json", "version": 1,
    "header": {...},
    "schema": {...},
    "data": [
    {"table": "public.t", "columns": ["id", "name"], "rows": [
    [1, "a"],
    [2, "b"]
    ]},
    {"table": "public.u", "columns": ["id"], "rows": [
    ]}
    ],
    "trailer": {"tables": 2, "rows": 2, "table_rows": {"public.t": 2, "public.u": 0}}}

Any JSON parser reads it whole; the worker reads it line by line instead (`JsonBackupReader`):
the header and schema lines are parsed as JSON values, and the rows of a table are streamed
from their byte range, so memory never grows with the data. A first pass checks the layout and
counts rows against the trailer before anything is converted, so a cut-off or edited file is
refused with the line where it goes wrong. Each engine writes its rows its own way (PostgreSQL
lets the server render them); this module only fixes the layout.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink
from backup_engine.formats import json_values

FORMAT_NAME = "backup-worker-json"
FORMAT_VERSION = 1
BLOCK = 1 << 20
FIRST_LINE = re.compile(rb'^\{"format": ("(?:[^"\\]|\\.)*"), "version": (-?\d+),\n$')
ROWS_SUFFIX = b', "rows": [\n'
# Control bytes other than the newline, all mapped to NUL: one translate and one search find any
# (a regular expression scanning for the class cost an eighth of a conversion).
CONTROL_BYTES_TO_NUL = bytes(0 if byte < 0x20 and byte != 0x0A else byte for byte in range(256))
MAX_LINE_BYTES = 64 * 1024 * 1024


class ItemsOnDemand:
    """A JSON array whose items are made one at a time as it is written: the schema of thousands of
    tables is never held as dicts all at once (they cost a fifth of an export's memory)."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)


# One encoder for every piece (`json.dumps` with options builds a new one per call), and closed
# items encoded RUN at a time: one C call per run instead of one per item, the same bytes.
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
RUN = 256


def _json_pieces(value: Any, spread: int = 64, top: bool = True, in_dict: bool = False, run: int = RUN
                 ) -> Iterator[str]:
    """`json.dumps(value)` in pieces: the value itself, every dict that is a value of an opened dict
    (the schema's sections: `extras`, its `catalog`), and any dict or list of more than `spread`
    items are opened up, the items in between encoded by the C encoder (`JSONEncoder.iterencode`
    would take the pure-Python path: several times slower). A section of a few keys can still hold
    megabytes, which one `json.dumps` would hold several times over."""
    if isinstance(value, dict) and (top or in_dict or len(value) > spread):
        yield "{"
        yield from _opened_items(value.items(), spread, run, in_dict=True)
        yield "}"
    elif isinstance(value, ItemsOnDemand) or (isinstance(value, list) and (top or len(value) > spread)):
        yield "["
        yield from _opened_items(value, spread, run, in_dict=False)
        yield "]"
    else:
        yield _ENCODE(value)


def _opens(value: Any, spread: int, in_dict: bool) -> bool:
    """Whether `_json_pieces` opens `value` up (a dict's value when `in_dict`, else a list's item)."""
    if isinstance(value, dict):
        return in_dict or len(value) > spread
    return isinstance(value, ItemsOnDemand) or (isinstance(value, list) and len(value) > spread)


def _opened_items(items: Iterable[Any], spread: int, most: int, in_dict: bool) -> Iterator[str]:
    """The inside of an opened dict (`items`: its key, value pairs) or list, `, ` between items;
    the items that stay closed are encoded up to `most` at a time."""
    run: list[Any] = []
    first = True
    for item in items:
        inner = item[1] if in_dict else item
        if not _opens(inner, spread, in_dict):
            run.append(item)
            if len(run) == most:
                yield ("" if first else ", ") + _closed(run, in_dict)
                first, run = False, []
            continue
        if run:
            yield ("" if first else ", ") + _closed(run, in_dict)
            first, run = False, []
        yield ("" if first else ", ") + (_ENCODE(item[0]) + ": " if in_dict else "")
        first = False
        yield from _json_pieces(inner, spread, top=False, in_dict=in_dict, run=most)
    if run:
        yield ("" if first else ", ") + _closed(run, in_dict)


def _closed(run: list[Any], in_dict: bool) -> str:
    """Items that stay closed, encoded in one call: a dict's or a list's inside without its brackets."""
    return _ENCODE(dict(run) if in_dict else run)[1:-1]


def conversion_error(detail: str) -> errors.ConversionError:
    return errors.ConversionError(errors.JSON_CONVERSION_FAILED, detail)


class DocumentWriter:
    """Writes the document's lines into a byte sink; rows are appended by the caller."""

    def __init__(self, out: ByteSink) -> None:
        self.out = out
        self.table_rows: dict[str, int] = {}

    def line(self, text: str) -> None:
        self.out.write(text.encode("utf-8") + b"\n")

    def start(self, header: dict[str, Any], schema: dict[str, Any]) -> None:
        self.line(f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION},')
        self.line(f'"header": {json.dumps(header, ensure_ascii=False, sort_keys=True)},')
        self._streamed('"schema": ', schema, ",\n")
        self.line('"data": [')

    def _streamed(self, prefix: str, value: Any, suffix: str) -> None:
        """`prefix`, `value` as JSON, `suffix`, written in blocks as they are encoded: the schema of
        thousands of tables is tens of MB, which one string (and its bytes) would hold twice more."""
        pieces, size = [prefix], len(prefix)
        for piece in _json_pieces(value):
            pieces.append(piece)
            size += len(piece)
            if size >= BLOCK:
                self.out.write("".join(pieces).encode("utf-8"))
                pieces, size = [], 0
        pieces.append(suffix)
        self.out.write("".join(pieces).encode("utf-8"))

    def open_table(self, key: str, columns: list[str]) -> None:
        head = json.dumps({"table": key, "columns": columns}, ensure_ascii=False)
        self.out.write(head[:-1].encode("utf-8") + ROWS_SUFFIX)

    def write_rows(self, lines: Iterable[str]) -> int:
        """A table's row lines (each a JSON array), `,` between them, written in blocks; their count."""
        rows, parts, size = 0, [], 0
        for line in lines:
            parts.append(line)
            size += len(line)
            rows += 1
            if size >= BLOCK:  # hold the last row back: it may be the table's last (no comma)
                self.out.write((",\n".join(parts[:-1]) + ",\n").encode("utf-8"))
                parts, size = parts[-1:], len(parts[-1])
        if parts:
            self.out.write((",\n".join(parts) + "\n").encode("utf-8"))
        return rows

    def close_table(self, key: str, rows: int, last: bool) -> None:
        self.table_rows[key] = rows
        self.line("]}" if last else "]},")

    def finish(self) -> None:
        trailer = {"tables": len(self.table_rows), "rows": sum(self.table_rows.values()),
                   "table_rows": self.table_rows}
        self.line("],")
        self.line(f'"trailer": {json.dumps(trailer, ensure_ascii=False)}}}')


class RowLines(io.RawIOBase):
    """Receives COPY output (one JSON array per line) in large blocks; writes it with `,` between rows."""

    def __init__(self, out: ByteSink) -> None:
        self.out = out
        self.rows = 0
        self._held = b""

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        data = bytes(block)
        if data:
            self.rows += data.count(b"\n")
            data = self._held + data.replace(b"\n", b",\n")
            self.out.write(data[:-2])
            self._held = data[-2:]
        return len(block)

    def close_rows(self) -> None:
        if self._held:
            self.out.write(b"\n")  # the last row: no comma
        self._held = b""


def document_header(dialect: str, server_version: str, include_data: str) -> dict[str, Any]:
    return {"source_dialect": dialect, "server_version": server_version, "include_data": include_data,
            "created_at": datetime.now(UTC).isoformat(), "encoding": "UTF-8"}


@dataclass
class TableData:
    """Where a table's rows are in the file: the byte range of its row lines."""

    key: str
    columns: list[str]
    start: int
    end: int
    rows: int
    first_line: int  # line number of the first row


@dataclass
class JsonBackupReader:
    """Checks a document's layout and row counts (`scan`), then streams a table's rows on request.

    Memory holds the header, the schema and one block of rows at a time.
    """

    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] = field(default_factory=dict)
    trailer: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, TableData] = field(default_factory=dict)
    version: int = 0
    display_name: str | None = None
    max_line_bytes: int = MAX_LINE_BYTES
    _specs: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)  # `table_spec`'s index
    _specs_of: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)  # ... of this list

    def picks(self, key: str, renamed: Mapping[str, str], columns: list[str]) -> list[tuple[int, str, str]]:
        """(position in the table's rows, document kind, column) for each of a converted table's
        `columns`, named in the document as `renamed` says (else by their own name)."""
        positions = {name: i for i, name in enumerate(self.tables[key].columns)}
        kinds = {col["name"]: col["kind"] for col in self.table_spec(key)["columns"]}
        picks = []
        for name in columns:
            doc_name = renamed.get(name, name)
            if doc_name not in positions:
                raise self.fail(None, f"table {key!r}: no values for column {name!r}")
            picks.append((positions[doc_name], kinds.get(doc_name, "any"), name))
        return picks

    def fail(self, line: int | None, what: str) -> errors.ConversionError:
        where = f"{self.name}, line {line}" if line else self.name
        return conversion_error(f"{where}: {what}")

    def value_error(self, key: str, number: int, column: str, exc: Exception) -> errors.ConversionError:
        """A value of row `number` of table `key` that does not fit its column."""
        line = self.tables[key].first_line + number - 1
        return self.fail(line, f"table {key!r}, row {number}, column {column!r}: {exc}")

    def table_spec(self, key: str) -> dict[str, Any]:
        """The schema's entry for table `key`. Indexed once per schema (a search per table was
        quadratic: 0.7 s at 5,000 tables); a vetted schema that replaces it is indexed again."""
        tables = self.schema["tables"]
        if self._specs_of is not tables:
            self._specs, self._specs_of = {spec["key"]: spec for spec in tables}, tables
        return self._specs[key]

    @property
    def name(self) -> str:
        """The name messages give the document (the backup's, not a scratch copy's)."""
        return self.display_name or self.path.name

    def scan(self) -> JsonBackupReader:
        try:
            with self.path.open("rb") as handle:
                self._scan(handle)
        except OSError as exc:
            raise self.fail(None, f"cannot read: {exc}") from exc
        return self

    def _line(self, handle: BinaryIO, number: int) -> bytes:
        """The next line, refused past `max_line_bytes` (a 30 MB line must not cost gigabytes)."""
        line = handle.readline(self.max_line_bytes + 1)
        if len(line) > self.max_line_bytes:
            raise self.fail(number, f"a line longer than {self.max_line_bytes} bytes "
                                    "(BACKUP_UPLOAD_MAX_STATEMENT_BYTES)")
        return line

    def _json_line(self, line: bytes, number: int, prefix: bytes, suffix: bytes, what: str) -> Any:
        if not line.startswith(prefix) or not line.endswith(suffix):
            raise self.fail(number, f"expected the {what} line" + self._ended(line))
        try:
            value = json.loads(line[len(prefix):len(line) - len(suffix)])
        except (ValueError, RecursionError) as exc:
            raise self.fail(number, f"the {what} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise self.fail(number, f"the {what} must be a JSON object")
        return value

    @staticmethod
    def _ended(line: bytes) -> str:
        return " but the file ends there (truncated?)" if not line.endswith(b"\n") else ""

    def _scan(self, handle: BinaryIO) -> None:
        first = self._line(handle, 1)
        match = FIRST_LINE.match(first)
        if not match:
            if not first:
                raise self.fail(1, "the file is empty")
            raise self.fail(1, "not a backup-worker JSON document (expected "
                               f'{{"format": "{FORMAT_NAME}", "version": N, in the canonical line layout)')
        name = json.loads(match.group(1))
        if name != FORMAT_NAME:
            raise self.fail(1, f"unknown document format {name!r} (expected {FORMAT_NAME!r})")
        self.version = int(match.group(2))
        if self.version != FORMAT_VERSION:
            raise self.fail(1, f"unsupported format version {self.version} (this worker reads version "
                               f"{FORMAT_VERSION})")
        self.header = self._json_line(self._line(handle, 2), 2, b'"header": ', b",\n", "header")
        self.schema = self._json_line(self._line(handle, 3), 3, b'"schema": ', b",\n", "schema")
        self._check_schema()
        number = 4
        line = self._line(handle, number)
        if line != b'"data": [\n':
            raise self.fail(number, 'expected "data": [' + self._ended(line))
        offset = handle.tell()
        known = {spec["key"]: spec for spec in self.schema["tables"]}
        closed_last = False
        while True:
            line = self._line(handle, number + 1)
            number += 1
            offset += len(line)
            if line == b"],\n":
                if self.tables and not closed_last:
                    raise self.fail(number, "the last table is followed by a comma")
                break
            if closed_last:
                raise self.fail(number, "expected ], after the last table")
            if not line.startswith(b'{"table": ') or not line.endswith(ROWS_SUFFIX):
                raise self.fail(number, "expected a table's opening line or ], (end of data)" + self._ended(line))
            try:
                opening = json.loads(line[:-len(ROWS_SUFFIX)] + b"}")
            except (ValueError, RecursionError) as exc:
                raise self.fail(number, f"the table's opening line is not valid JSON: {exc}") from None
            key, columns = opening.get("table"), opening.get("columns")
            if not isinstance(key, str) or key not in known:
                raise self.fail(number, f"table {str(key)[:200]!r} is not in the document's schema")
            if key in self.tables:
                raise self.fail(number, f"table {key!r} has its rows twice")
            if columns != known[key].get("row_columns"):
                raise self.fail(number, f"the columns of table {key!r} differ from its schema")
            start, rows, first_line = offset, 0, number + 1
            last_ended = True
            while row := self._line(handle, number + 1):
                number += 1
                if row[:1] != b"[":
                    if row == b"]},\n" or row == b"]}\n":
                        break
                    raise self.fail(number, f"expected a row of table {key!r} or ]}}" + self._ended(row))
                if not last_ended:
                    raise self.fail(number - 1, f"a row of table {key!r} that is not the last ends without a comma")
                rows += 1
                offset += len(row)
                if row[-3:] == b"],\n":
                    continue
                if row[-2:] != b"]\n":
                    raise self.fail(number, f"row {rows} of table {key!r} does not end as a row line"
                                            + self._ended(row))
                last_ended = False
            else:
                raise self.fail(number, f"the file ends inside the rows of table {key!r} (truncated?)")
            if rows and last_ended:
                raise self.fail(number - 1, f"the last row of table {key!r} ends with a comma")
            self.tables[key] = TableData(key=key, columns=columns, start=start, end=offset, rows=rows,
                                         first_line=first_line)
            offset += len(row)
            closed_last = row == b"]}\n"
            handle.seek(offset)
        number += 1
        line = self._line(handle, number)
        self.trailer = self._json_line(line, number, b'"trailer": ', b"}\n", "trailer")
        if handle.read(1):
            raise self.fail(number + 1, "text after the trailer")
        partitioned = (self.schema.get("extras") or {}).get("partition_keys") or {}
        missing = [key for key in known if key not in self.tables and key not in partitioned]
        if self.header.get("include_data") != "schema" and missing:
            raise self.fail(number, f"no rows section for table(s) {', '.join(map(repr, missing[:5]))}")
        counted = {key: table.rows for key, table in self.tables.items()}
        if self.trailer.get("table_rows") != counted:
            raise self.fail(number, "the trailer's row counts differ from the rows in the file")

    def _check_schema(self) -> None:
        schema = self.schema
        if not isinstance(schema.get("dialect"), str):
            raise self.fail(3, f"unknown source dialect {schema.get('dialect')!r}")
        tables = schema.get("tables")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(3, "the schema's tables must be a list of objects")
        for spec in tables:
            if not isinstance(spec.get("key"), str) or not isinstance(spec.get("columns"), list):
                raise self.fail(3, "every table needs a key and columns")
            names = set()
            for col in spec["columns"]:
                if not isinstance(col, dict) or not isinstance(col.get("name"), str):
                    raise self.fail(3, f"table {spec['key']!r}: every column needs a name")
                if col.get("kind") not in json_values.KINDS:
                    raise self.fail(3, f"table {spec['key']!r} column {col['name']!r}: "
                                       f"unknown kind {col.get('kind')!r}")
                names.add(col["name"])
            rowid = spec.get("rowid")
            row_columns = spec.get("row_columns")
            if not isinstance(row_columns, list) or not all(c in names or c == rowid for c in row_columns):
                raise self.fail(3, f"table {spec['key']!r}: row_columns must name its columns")
        if self.header.get("include_data") not in ("full", "schema", "data"):
            raise self.fail(2, f"unknown include_data {self.header.get('include_data')!r}")

    # streaming ----------------------------------------------------------------------------------
    def row_blocks(self, key: str) -> Iterator[bytes]:
        """The table's row lines in large blocks, each line a bare JSON array ending in a newline."""
        table = self.tables[key]
        with self.path.open("rb") as handle:
            handle.seek(table.start)
            remaining = table.end - table.start
            carry = b""
            while remaining > 0:
                chunk = handle.read(min(BLOCK, remaining))
                if not chunk:
                    raise self.fail(None, f"the file changed while reading table {key!r}")
                remaining -= len(chunk)
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                carry, data = data[cut:], data[:cut]
                if b"\x00" in data.translate(CONTROL_BYTES_TO_NUL):
                    raise self.fail(None, f"table {key!r}: a row holds a raw control character (not valid JSON)")
                yield data.replace(b"],\n", b"]\n")
            if carry:
                raise self.fail(None, f"table {key!r}: the last row has no newline")

    def rows(self, key: str) -> Iterator[tuple[int, list[Any]]]:
        """(row number, values) of the table, values decoded by `json_values.loads_row`."""
        number = 0
        for block in self.row_blocks(key):
            for line in block.splitlines():
                number += 1
                yield number, self.row_values(key, number, line, json_values.loads_row)

    def row_values(self, key: str, number: int, line: Any, loads: Callable[[Any], Any]) -> list[Any]:
        """Row `number` of table `key` decoded by `loads`, refused (naming the row and its line)
        unless it is a JSON array as wide as the table."""
        table = self.tables[key]
        try:
            values = loads(line)
        except (ValueError, RecursionError) as exc:
            raise self.fail(table.first_line + number - 1,
                            f"table {key!r}, row {number}: not valid JSON ({exc})") from None
        if type(values) is not list or len(values) != len(table.columns):
            raise self.fail(table.first_line + number - 1,
                            f"table {key!r}, row {number}: expected an array of {len(table.columns)} values")
        return values


def read_document(path: Path, name: str | None = None, max_line_bytes: int = MAX_LINE_BYTES) -> JsonBackupReader:
    """A checked reader of the JSON backup at `path`, called `name` in messages (raises
    ConversionError with what and where)."""
    return JsonBackupReader(Path(path), display_name=name, max_line_bytes=max_line_bytes).scan()
