"""CSV backups: a `.zip` with one RFC 4180 CSV per table and a `manifest.json` (export only).

Each CSV starts with a header row of column names. Every non-NULL value is quoted (the header
too) and NULL is the one unquoted empty field, so NULL and the empty string differ (`,,` vs
`,"",`). Python's `csv` module reads every value back exactly but, before Python 3.12, cannot
tell NULL from '' (both read as ''); `read_table` here does. Values are the engine's text forms
(PostgreSQL: ISO dates, `\\x<hex>` bytea, `{...}` arrays; SQLite: integers, shortest round-trip
REALs, `Infinity`, blobs as `\\x<hex>`). Lines end with `\\n`; text is UTF-8.

A backup is exact: a cell that starts with `=`, `+`, `-`, `@`, a tab or a CR is written as it is. With
`csv_safe` (for opening in a spreadsheet, where such a cell is a formula) it gets a leading `'`.

The zip is streamed (no seeking, ZIP64 entries) so its size is not limited by memory or 4 GiB.
Each engine writes its rows (`engines/*/csv_export.py`); this module fixes the layout.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine.dumpinfo import ByteSink

FORMAT_NAME = "backup-worker-csv"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
BLOCK = 1 << 20
NULL_RULE = "NULL is an unquoted empty field; every other value is quoted"
SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run (OWASP's list)
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# The same rule for the server (PostgreSQL's regular expressions): a formula-looking cell that is not a number.
FORMULA_PATTERN = "^[=+@\t\r-]"
NUMBER_PATTERN = "^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"


def entry_name(index: int, key: str) -> str:
    return f"tables/{index:04d}_{SAFE_CHARS.sub('_', key)[:100]}.csv"


def open_zip(out: ByteSink) -> zipfile.ZipFile:
    return zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,  # type: ignore[arg-type]
                           allowZip64=True)


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def header_line(columns: Sequence[str]) -> bytes:
    """The header row, quoted like every other field."""
    return (",".join(quoted(c) for c in columns) + "\n").encode("utf-8")


def neutralised(text: str) -> str:
    """A cell a spreadsheet would read as a formula, made plain text (`csv_safe`); numbers stay numbers."""
    if text.startswith(FORMULA_LEADS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def manifest_bytes(dialect: str, version: str, include_data: str, tables: list[dict[str, Any]],
                   csv_safe: bool = False) -> bytes:
    return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "source_dialect": dialect,
                       "server_version": version, "include_data": include_data,
                       "created_at": datetime.now(UTC).isoformat(), "null": NULL_RULE, "csv_safe": csv_safe,
                       "tables": tables, "rows": sum(t["rows"] for t in tables)},
                      ensure_ascii=False, indent=1).encode("utf-8")


class MemberWriter(io.RawIOBase):
    """A zip member as the raw end of a BufferedWriter (COPY writes into it in large blocks)."""

    def __init__(self, member: Any) -> None:
        self.member = member

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        return self.member.write(bytes(block))


# --- reading (for checks, tests and users) --------------------------------------------------------------------
_FIELD = re.compile(r'"((?:[^"]|"")*)"|([^,"\n]*)')


def parse_records(text_lines: Iterator[str]) -> Iterator[list[str | None]]:
    """RFC 4180 records with NULL (an unquoted empty field) as None; quoted fields may hold newlines."""
    pending = ""
    for line in text_lines:
        pending += line
        if pending.count('"') % 2:
            continue  # inside a quoted field: the record goes on
        record = pending.rstrip("\n").rstrip("\r")
        pending = ""
        fields: list[str | None] = []
        pos = 0
        while True:
            match = _FIELD.match(record, pos)
            if match is None:
                raise ValueError(f"malformed CSV record: {record[:80]!r}")
            if match.group(1) is not None:
                fields.append(match.group(1).replace('""', '"'))
            else:
                fields.append(match.group(2) or None)
            pos = match.end()
            if pos >= len(record):
                break
            if record[pos] != ",":
                raise ValueError(f"malformed CSV record: {record[:80]!r}")
            pos += 1
            if pos == len(record):
                fields.append(None)
                break
        yield fields
    if pending:
        raise ValueError("the CSV ends inside a quoted field")


def read_manifest(zip_path: Path | str | BinaryIO) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as archive:
        return json.loads(archive.read(MANIFEST_NAME))


def read_table(zip_path: Path | str, table: str) -> tuple[list[str | None], Iterator[list[str | None]]]:
    """(header, records) of one table's CSV, NULL as None; the zip is read as a stream."""
    manifest = read_manifest(zip_path)
    entry = next(t for t in manifest["tables"] if t["table"] == table)

    def records() -> Iterator[list[str | None]]:
        with zipfile.ZipFile(zip_path) as archive, archive.open(entry["file"]) as member:
            lines = io.TextIOWrapper(member, encoding="utf-8", newline="")
            parsed = parse_records(iter(lines))
            next(parsed)
            yield from parsed

    with zipfile.ZipFile(zip_path) as archive, archive.open(entry["file"]) as member:
        header = next(parse_records(iter(io.TextIOWrapper(member, encoding="utf-8", newline=""))))
    return header, records()
