"""The SQLAlchemy fallback for MySQL and MariaDB: a restorable script without mariadb-dump.

Schema from reflection plus information_schema (`reflect.py`), every row read through a
server-side cursor as the server's own text and written back as exact literals
(`literals.server_literal`), all in one consistent snapshot. The script restores like a dump
of the tool: by the client, into a database built beside the target.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.mysql.connect import begin_snapshot, snapshot_connection
from backup_engine.engines.mysql.literals import storage_of
from backup_engine.engines.mysql.reflect import Reflected, reflect_mysql
from backup_engine.engines.mysql.rows import stream_rows
from backup_engine.engines.mysql.writer import MysqlScriptWriter
from backup_engine.formats.sql_script import DataSource, RowData
from backup_engine.targets import Target

METHOD = "sqlalchemy"


def row_source(raw: Any, reflected: Reflected, database: str) -> DataSource:
    """Each table's rows as the server's text, with how each column's values are written."""

    def source(table: Table, columns: list[str]) -> RowData:
        info = reflected.columns.get(table.name, {})
        kinds = [f"raw:{storage_of(info[name].data_type)}" for name in columns]
        return RowData(columns=columns, rows=stream_rows(raw, database, table.name, columns), kinds=kinds)

    return source


def dump_generated(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Write a restorable SQL script of `target` into `out` without any client tool.

    Raises DumpError(FALLBACK_FAILED, reason), or TargetUnavailable when the server is down.
    """
    progress(phase="dump", method=METHOD)
    database = target.url.database or ""
    with snapshot_connection(target, errors.FALLBACK_FAILED) as raw:
        begin_snapshot(raw)
        reflected = reflect_mysql(raw, database)
        writer = MysqlScriptWriter(out, progress=progress)
        table_rows = writer.write_script(reflected.model, include_data, row_source(raw, reflected, database))
    return DumpResult(method=METHOD, server_version=reflected.model.server_version, table_rows=table_rows)
