"""The CSV zip of a MySQL or MariaDB target, read in one consistent snapshot.

Values are the server's text (session in UTC): numbers, dates and times as the server prints
them, BIT as its integer, binary columns (BLOB, BINARY, spatial) as `\\x<hex>`; NULL is the one
unquoted empty field (formats/csv_zip).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.mysql import catalog
from backup_engine.engines.mysql.catalog import text
from backup_engine.engines.mysql.connect import begin_snapshot, snapshot_connection
from backup_engine.engines.mysql.rows import stream_rows
from backup_engine.formats import csv_zip
from backup_engine.targets import Target

METHOD = "mysql-csv"
BATCH_PARTS = 5000


def field_writer(data_type: str, csv_safe: bool) -> Callable[[Any], str]:
    bit = data_type.lower() == "bit"

    def field(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bytes | bytearray):
            value = str(int.from_bytes(bytes(value), "big")) if bit else "\\x" + bytes(value).hex()
        return csv_zip.quoted(csv_zip.neutralised(value) if csv_safe else value)

    return field


def export_csv(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
               csv_safe: bool = False) -> DumpResult:
    """Write the CSV zip of `target` into `out` (schema-only: the header rows alone)."""
    database = target.url.database or ""
    entries = []
    with snapshot_connection(target, errors.NATIVE_BACKUP_FAILED, "CSV export: ") as raw:
        begin_snapshot(raw)
        with raw.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = text(cur.fetchone()[0])
            names = catalog.tables(cur, database)
            columns = {name: [(text(row[0]), text(row[1])) for row in catalog.fetch(
                cur, "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                     "TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (database, name))] for name in names}
        with csv_zip.open_zip(out) as archive:
            for index, name in enumerate(names):
                entry = csv_zip.entry_name(index, name)
                column_names = [column for column, _ in columns[name]]
                writers = [field_writer(data_type, csv_safe) for _, data_type in columns[name]]
                rows = 0
                with archive.open(entry, "w", force_zip64=True) as member:
                    member.write(csv_zip.header_line(column_names))
                    if include_data != "schema" and column_names:
                        parts: list[str] = []
                        for values in stream_rows(raw, database, name, column_names):
                            parts.append(",".join(write(value) for write, value in zip(writers, values, strict=True))
                                         + "\n")
                            rows += 1
                            if len(parts) >= BATCH_PARTS:
                                member.write("".join(parts).encode("utf-8"))
                                parts = []
                        member.write("".join(parts).encode("utf-8"))
                entries.append({"table": name, "file": entry, "columns": column_names, "rows": rows})
                progress(phase="dump", tables=index + 1, rows=sum(e["rows"] for e in entries))
            archive.writestr(csv_zip.MANIFEST_NAME,
                             csv_zip.manifest_bytes("mysql", version, include_data, entries, csv_safe))
    return DumpResult(method=METHOD, server_version=version, table_rows={e["table"]: e["rows"] for e in entries})
