"""The SQL script of a SQLite database: the native `sql` format (from a private snapshot) and
the SQLAlchemy fallback (from the live file in one read transaction).

The SQL text is written by the one SQLite generator, `dump_file` (not `Connection.iterdump()`,
which renders infinities as the bare word `Inf`, not valid SQL, and REALs through `quote()`,
whose text this SQLite does not always read back to the same double). It reflects the schema
with SQLAlchemy, which the engine imports only for these paths.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Table

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.collector import frozen_gc
from backup_engine.engines.reflection import sqlalchemy_connection
from backup_engine.engines.sqlite import files
from backup_engine.engines.sqlite.dump import GENERATED_METHOD, SQL_METHOD, private_snapshot
from backup_engine.engines.sqlite.reflect import reflect_sqlite
from backup_engine.engines.sqlite.writer import HEADER, NATIVE_HEADER, SqliteScriptWriter
from backup_engine.formats.sql_script import DataSource, RowData
from backup_engine.targets import Target


def _data_source(raw: sqlite3.Connection, writer: SqliteScriptWriter) -> DataSource:
    def source(table: Table, columns: list[str]) -> RowData:
        rowid = table.info.get("rowid")
        order = f" ORDER BY {writer.preparer.quote(rowid)}" if rowid else ""  # the order a restore appends fastest
        query = f"SELECT {writer.column_list(columns)} FROM {writer.table_name(table)}{order}"  # noqa: S608
        return RowData(columns=columns, rows=raw.execute(query))  # the cursor streams the rows

    return source


def dump_file(path: Path, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
              header: str = HEADER, failure: str = errors.FALLBACK_FAILED) -> dict[str, int]:
    """Write the SQL script of the SQLite database file at `path` into `out`; rows per table.

    Schema and rows are read in one read transaction (one consistent state). A locked file is
    TargetUnavailable; any other failure is DumpError(`failure`, reason).
    """
    with files.snapshot_connection(path, failure) as raw, sqlalchemy_connection(raw, "sqlite://") as conn, \
            frozen_gc():  # the model lives through the script
        model = reflect_sqlite(conn, failure=failure)
        writer = SqliteScriptWriter(out, progress=progress, header=header)
        return writer.write_script(model, include_data, _data_source(raw, writer))


def dump_generated(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """The SQLAlchemy fallback: the script, written from the live file in one read transaction."""
    table_rows = dump_file(files.existing_database_path(target), out, include_data, progress)
    return DumpResult(method=GENERATED_METHOD, server_version=sqlite3.sqlite_version, table_rows=table_rows)


def dump_native(target: Target, out: ByteSink, include_data: str, scratch_dir: Path,
                progress: Progress = no_progress) -> DumpResult:
    """The script of a private snapshot: the source's read lock stays short, the dump consistent,
    and its rows are checked against the snapshot's own counts."""
    with private_snapshot(target, scratch_dir) as (snap, checked):
        table_rows = dump_file(snap, out, include_data, progress, header=NATIVE_HEADER,
                               failure=errors.NATIVE_BACKUP_FAILED)
        counts = checked.result()
    expected = {name: (0 if include_data == "schema" else rows) for name, rows in counts.items()}
    if table_rows != expected:
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, "rows written differ from the snapshot's row counts")
    return DumpResult(method=SQL_METHOD, server_version=sqlite3.sqlite_version, table_rows=table_rows)
