"""The SQLAlchemy fallback for PostgreSQL: a restorable script without pg_dump.

Schema from the catalog (its tables only named, as `TableShape`s), data through `COPY ... TO STDOUT` straight into the
script's `COPY ... FROM stdin` blocks in 1 MiB writes (no per-row Python: the server renders,
which is what gets near pg_dump's speed), all in one REPEATABLE READ read-only snapshot.
"""

from __future__ import annotations

from typing import Any

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.collector import frozen_gc
from backup_engine.engines.postgresql.catalog_misc import large_object_chunks
from backup_engine.engines.postgresql.connect import LockWindow, import_snapshot, locks_released, snapshot_connection
from backup_engine.engines.postgresql.reflect import reflect_postgresql
from backup_engine.engines.postgresql.sequence_positions import positions_aside
from backup_engine.engines.postgresql.session_aside import session_aside
from backup_engine.engines.postgresql.writer import PostgresScriptWriter
from backup_engine.formats.sql_script import COPY_BLOCK, CopyData, DataSource, ScriptTable
from backup_engine.targets import Target

METHOD = "sqlalchemy"


def copy_source(raw: Any, writer: PostgresScriptWriter, window: LockWindow) -> DataSource:
    """Each table's rows as the server's own COPY text, its lock let go within `window`."""

    def source(table: ScriptTable, columns: list[str]) -> CopyData:
        query = f"COPY {writer.table_name(table)} ({writer.column_list(columns)}) TO STDOUT"

        def copy_to(file: Any) -> None:
            with window.table(), raw.cursor() as cur:
                cur.copy_expert(query, file, size=COPY_BLOCK)

        return CopyData(columns=columns, copy_to=copy_to)

    return source


def dump_generated(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress,
                   snapshot: str | None = None) -> DumpResult:
    """Write a restorable SQL script of `target` into `out` without any client tool.

    Raises DumpError(FALLBACK_FAILED, reason), or TargetUnavailable when the server is down;
    DumpError(FALLBACK_FAILED, "cannot carry ...") before anything is written when the database
    holds objects the script cannot carry. Database-level objects a dump of one database leaves
    out are named in the result's `not_carried`. With `snapshot`, the script is of that exported
    snapshot (a JSON backup's twin).
    """
    progress(phase="dump", method=METHOD)
    with snapshot_connection(target, errors.FALLBACK_FAILED) as raw, frozen_gc():  # the model lives through the script
        if snapshot is not None:
            import_snapshot(raw, snapshot)
        with positions_aside(target, raw) as positions, session_aside(target, raw) as aside, locks_released(raw):
            model = reflect_postgresql(raw, tables="shapes", positions=positions, aside=aside)
        writer = PostgresScriptWriter(out, reserved_words=model.extras.reserved_words, progress=progress)

        def large_object_source(oid: int) -> Any:
            with raw.cursor() as cur:
                yield from large_object_chunks(cur, oid)

        writer.large_object_source = large_object_source
        with LockWindow(raw) as window:
            table_rows = writer.write_script(model, include_data, copy_source(raw, writer, window))
    not_carried = model.extras.catalog.not_carried if model.extras.catalog else []
    return DumpResult(method=METHOD, server_version=model.server_version, table_rows=table_rows,
                      not_carried=list(not_carried))
