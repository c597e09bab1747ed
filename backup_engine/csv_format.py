"""CSV backups: a `.zip` with one RFC 4180 CSV per table and a `manifest.json` (export only).

Each CSV starts with a header row of column names. Every non-NULL value is quoted and NULL is
the one unquoted empty field, so NULL and the empty string differ (`,,` vs `,"",`). Python's
`csv` module reads every value back exactly but, before Python 3.12, cannot tell NULL from ''
(both read as ''); `read_table` here does. Values are the engine's text forms (PostgreSQL:
ISO dates, `\\x<hex>` bytea, `{...}` arrays; SQLite: integers, shortest round-trip REALs,
`Infinity`, blobs as `\\x<hex>`). Lines end with `\\n`; text is UTF-8.

The zip is streamed (no seeking, ZIP64 entries) so its size is not limited by memory or 4 GiB.
"""

from __future__ import annotations

import io
import json
import math
import re
import sqlite3
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.targets import Target

FORMAT_NAME = "backup-worker-csv"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
BLOCK = 1 << 20
METHOD_PG = "postgresql-csv"
METHOD_SQLITE = "sqlite-csv"
NULL_RULE = "NULL is an unquoted empty field; every other value is quoted"
SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _entry_name(index: int, key: str) -> str:
    return f"tables/{index:04d}_{SAFE_CHARS.sub('_', key)[:100]}.csv"


def _open_zip(out: ByteSink) -> zipfile.ZipFile:
    return zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,  # type: ignore[arg-type]
                           allowZip64=True)


def _manifest(dialect: str, version: str, include_data: str, tables: list[dict[str, Any]]) -> bytes:
    return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "source_dialect": dialect,
                       "server_version": version, "include_data": include_data,
                       "created_at": datetime.now(UTC).isoformat(), "null": NULL_RULE, "tables": tables,
                       "rows": sum(t["rows"] for t in tables)}, ensure_ascii=False, indent=1).encode("utf-8")


def export(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Write the CSV zip of `target` into `out` (schema-only: the header rows alone)."""
    if target.dialect == "postgresql":
        return _export_postgresql(target, out, include_data, progress)
    return _export_sqlite(target, out, include_data, progress)


def _export_postgresql(target: Target, out: ByteSink, include_data: str, progress: Progress) -> DumpResult:
    from psycopg2 import sql

    from backup_engine.pgconnect import snapshot_connection

    listing = """
        SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
               array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                     AND NOT a.attisdropped ORDER BY a.attnum)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                          AND e.deptype = 'e')
        ORDER BY 1, 2"""
    with snapshot_connection(target, errors.NATIVE_BACKUP_FAILED, "CSV export: ") as raw:
        with raw.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute(listing)
            tables = cur.fetchall()
        entries = []
        with _open_zip(out) as archive:
            for index, (schema, name, display, columns) in enumerate(tables):
                entry = _entry_name(index, f"{schema}.{name}")
                select = sql.SQL("SELECT {} FROM ONLY {}").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in columns) if columns else sql.SQL(""),
                    sql.Identifier(schema, name)).as_string(raw)
                if include_data == "schema":
                    select += " LIMIT 0"
                query = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE *)"
                with archive.open(entry, "w", force_zip64=True) as member, \
                        io.BufferedWriter(_Raw(member), buffer_size=BLOCK) as buffered, raw.cursor() as cur:
                    cur.copy_expert(query, buffered, size=BLOCK)
                    buffered.flush()
                    rows = max(cur.rowcount, 0)
                entries.append({"table": display, "file": entry, "columns": list(columns), "rows": rows})
                progress(phase="dump", tables=index + 1, rows=sum(e["rows"] for e in entries))
            archive.writestr(MANIFEST_NAME, _manifest("postgresql", version, include_data, entries))
    return DumpResult(method=METHOD_PG, server_version=version,
                      table_rows={e["table"]: e["rows"] for e in entries})


class _Raw(io.RawIOBase):
    def __init__(self, member: Any) -> None:
        self.member = member

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        return self.member.write(bytes(block))


def _sqlite_field(value: Any) -> str:
    if value is None:
        return ""
    kind = type(value)
    if kind is int:
        text = str(value)
    elif kind is float:
        text = ("Infinity" if value > 0 else "-Infinity") if math.isinf(value) else repr(value)
    elif kind is str:
        text = value
    else:  # a blob, or text that is not UTF-8
        text = "\\x" + bytes(value).hex()
    return '"' + text.replace('"', '""') + '"'


def _export_sqlite(target: Target, out: ByteSink, include_data: str, progress: Progress) -> DumpResult:
    from backup_engine.sqlite import existing_database_path, quote_identifier, snapshot_connection, user_table_names

    path = existing_database_path(target)
    entries = []
    with snapshot_connection(path, errors.NATIVE_BACKUP_FAILED, "CSV export: ") as conn, _open_zip(out) as archive:
        for index, table_name in enumerate(user_table_names(conn)):
            entry = _entry_name(index, table_name)
            columns = [name for name, hidden in conn.execute(
                "SELECT name, hidden FROM pragma_table_xinfo(?)", (table_name,)).fetchall() if hidden == 0]
            rows = 0
            with archive.open(entry, "w", force_zip64=True) as member:
                member.write((",".join(_sqlite_field(c) for c in columns) + "\n").encode("utf-8"))
                if include_data != "schema" and columns:
                    names = ", ".join(quote_identifier(c) for c in columns)
                    cursor = conn.execute(f"SELECT {names} FROM {quote_identifier(table_name)}")  # noqa: S608
                    parts: list[str] = []
                    while batch := cursor.fetchmany(1000):
                        parts.extend(",".join(_sqlite_field(v) for v in row) + "\n" for row in batch)
                        rows += len(batch)
                        if len(parts) >= 5000:
                            member.write("".join(parts).encode("utf-8"))
                            parts = []
                    member.write("".join(parts).encode("utf-8"))
            entries.append({"table": table_name, "file": entry, "columns": columns, "rows": rows})
            progress(phase="dump", tables=index + 1, rows=sum(e["rows"] for e in entries))
        archive.writestr(MANIFEST_NAME, _manifest("sqlite", sqlite3.sqlite_version, include_data, entries))
    return DumpResult(method=METHOD_SQLITE, server_version=sqlite3.sqlite_version,
                      table_rows={e["table"]: e["rows"] for e in entries})


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
