"""The CSV zip of a SQLite target, read in one read transaction."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.sqlite import files
from backup_engine.formats import csv_zip
from backup_engine.targets import Target

METHOD = "sqlite-csv"


def _field(value: Any, csv_safe: bool = False) -> str:
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
    return csv_zip.quoted(csv_zip.neutralised(text) if csv_safe else text)


def export_csv(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
               csv_safe: bool = False) -> DumpResult:
    """Write the CSV zip of `target` into `out` (schema-only: the header rows alone)."""
    path = files.existing_database_path(target)
    entries = []
    with files.snapshot_connection(path, errors.NATIVE_BACKUP_FAILED, "CSV export: ") as conn, \
            csv_zip.open_zip(out) as archive:
        for index, table_name in enumerate(files.user_table_names(conn)):
            entry = csv_zip.entry_name(index, table_name)
            columns = [name for name, hidden in conn.execute(
                "SELECT name, hidden FROM pragma_table_xinfo(?)", (table_name,)).fetchall() if hidden == 0]
            rows = 0
            with archive.open(entry, "w", force_zip64=True) as member:
                member.write(csv_zip.header_line(columns))
                if include_data != "schema" and columns:
                    names = ", ".join(files.quote_identifier(c) for c in columns)
                    cursor = conn.execute(f"SELECT {names} FROM {files.quote_identifier(table_name)}")  # noqa: S608
                    parts: list[str] = []
                    while batch := cursor.fetchmany(1000):
                        parts.extend(",".join(_field(v, csv_safe) for v in row) + "\n" for row in batch)
                        rows += len(batch)
                        if len(parts) >= 5000:
                            member.write("".join(parts).encode("utf-8"))
                            parts = []
                    member.write("".join(parts).encode("utf-8"))
            entries.append({"table": table_name, "file": entry, "columns": columns, "rows": rows})
            progress(phase="dump", tables=index + 1, rows=sum(e["rows"] for e in entries))
        archive.writestr(csv_zip.MANIFEST_NAME,
                         csv_zip.manifest_bytes("sqlite", sqlite3.sqlite_version, include_data, entries, csv_safe))
    return DumpResult(method=METHOD, server_version=sqlite3.sqlite_version,
                      table_rows={e["table"]: e["rows"] for e in entries})
