"""SQLite as an `Engine`: snapshots, exact SQL dumps, swap-in restores, JSON and CSV."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.base import (
    MAX_STATEMENT_BYTES,
    ArtifactSource,
    Engine,
    Ready,
    RestoreOutcome,
    RestoreRequest,
    TableMap,
    UploadReport,
    no_wait,
)
from backup_engine.engines.sqlite import csv_export, dump, files, restore, statements
from backup_engine.engines.sqlite import kinds as sqlite_kinds
from backup_engine.formats import json_values
from backup_engine.scratch import private_folder
from backup_engine.targets import Target

if TYPE_CHECKING:
    from backup_engine.formats.json_document import JsonBackupReader
    from backup_engine.formats.model import DatabaseModel
    from backup_engine.formats.sql_script import CopyData, RowData, ScriptWriter

SQLITE_MAGIC = b"SQLite format 3\x00"


class SqliteEngine(Engine):
    name = "sqlite"
    formats = ("sql", "sqlite", "json", "csv")
    restore_formats = ("sql", "sqlite")
    safety_format = "sqlite"
    native_method = dump.SQL_METHOD
    unsupported_restore = errors.UNSUPPORTED_SQLITE_RESTORE
    boolean_literals: ClassVar[tuple[str, str]] = ("1", "0")
    natural_json = True

    @classmethod
    def check_url(cls, target: Target) -> None:
        if not target.url.database:
            raise errors.ConfigError(errors.CONFIG_INVALID, f"target {target.name!r}: SQLite needs a file path")

    @property
    def path(self) -> Path:
        return files.database_path(self.target)

    # --- backups -------------------------------------------------------------------------
    def server_version(self) -> str:
        return sqlite3.sqlite_version

    @classmethod
    def warm_up(cls) -> None:
        from backup_engine.engines.sqlite import json_export, script, writer  # noqa: F401
        from backup_engine.formats import sql_script  # noqa: F401

    def dump_native(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.sqlite import script  # SQLAlchemy's: imported by the paths that use it

        return script.dump_native(self.target, out, include_data, self.scratch_dir, progress)

    def dump_generated(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.sqlite import script

        return script.dump_generated(self.target, out, include_data, progress)

    def export_json(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.sqlite import json_export

        return json_export.export_json(self.target, out, include_data, progress)

    def export_csv(self, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
                   csv_safe: bool = False) -> DumpResult:
        return csv_export.export_csv(self.target, out, include_data, progress, csv_safe=csv_safe)

    def export_other(self, format: str, out: ByteSink, include_data: str,
                     progress: Progress = no_progress) -> DumpResult:
        if format != "sqlite":
            return super().export_other(format, out, include_data, progress)
        if include_data != "full":
            raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, "a binary sqlite snapshot is always full")
        return dump.write_snapshot(self.target, out, self.scratch_dir)

    def script_complete(self, tail: bytes) -> bool:
        lines = tail.rstrip().splitlines()
        return bool(lines) and lines[-1].strip() == statements.END_MARKER.encode()

    # --- restores ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_file()

    def restore(self, source: ArtifactSource, request: RestoreRequest,
                progress: Progress = no_progress, ready: Ready = no_wait) -> RestoreOutcome:
        if request.format == "sqlite":
            restore.restore_snapshot(self.path, source, ready)
        else:
            restore.restore_sql(self.path, source, request.include_data, require_marker=request.trusted, ready=ready)
        return RestoreOutcome()

    def drill(self, source: ArtifactSource, request: RestoreRequest) -> dict[str, int]:
        with private_folder(self.scratch_dir) as folder:
            scratch = folder / "drill.sqlite3"
            if request.format == "sqlite":
                restore.restore_snapshot(scratch, source)
            else:
                restore.restore_sql(scratch, source, request.include_data, require_marker=request.trusted)
            return dump.verified_row_counts(scratch)

    def exclusive(self, namespace: str, wait_s: float) -> AbstractContextManager[None]:
        return files.exclusive(self.path, self.target.name, wait_s)

    # --- uploads -----------------------------------------------------------------------------
    def sniff_upload(self, head: bytes) -> str | None:
        return "sqlite" if head.startswith(SQLITE_MAGIC) else None

    def check_upload(self, stream: BinaryIO, format: str, max_statement_bytes: int = MAX_STATEMENT_BYTES
                     ) -> UploadReport:
        """A SQLite SQL upload (e.g. `sqlite3 .dump`) must be whole statements ending with COMMIT;
        what it may do is the restore's authorizer's to say. A snapshot upload is checked by
        SQLite itself when it is restored."""
        if format != "sql":
            return UploadReport()
        script = statements.ScriptReader(stream, "the upload", max_statement=max_statement_bytes)
        for _ in script:
            pass
        if script.last_line not in (statements.UPLOAD_END, statements.END_MARKER):
            raise errors.InvalidRequest(errors.UNSUPPORTED_SQLITE_RESTORE,
                                        "the SQL upload does not end with COMMIT; (truncated?)")
        return UploadReport()

    # --- JSON conversion -----------------------------------------------------------------------
    @classmethod
    def script_writer(cls, out: ByteSink, model: DatabaseModel, progress: Progress = no_progress) -> ScriptWriter:
        from backup_engine.engines.sqlite.writer import SqliteScriptWriter

        return SqliteScriptWriter(out, progress=progress)

    @classmethod
    def column_type(cls, kind: str, source_type: str, sole_key: bool) -> str:
        if kind == "integer" and sole_key:
            return "INTEGER"  # the rowid alias: new rows keep getting keys
        return sqlite_kinds.column_type(kind, source_type)

    @classmethod
    def sql_dialect(cls) -> Any:
        from backup_engine.engines.sqlite.writer import make_dialect

        return make_dialect()

    @classmethod
    def place_table(cls, schema: str | None, name: str) -> tuple[str | None, str]:
        return None, (name if schema in (None, "public", "main") else f"{schema}.{name}")

    @classmethod
    def json_rows(cls, reader: JsonBackupReader, mapping: TableMap, columns: list[str],
                  natural: bool) -> CopyData | RowData:
        from backup_engine.formats.sql_script import RowData

        def rows() -> Any:
            for key in mapping.sources:
                picks = reader.picks(key, mapping.columns, columns)
                for number, values in reader.rows(key):
                    row = []
                    for position, kind, name in picks:
                        try:
                            row.append(json_values.decode_value(values[position], kind, natural))
                        except (ValueError, ArithmeticError, RecursionError) as exc:
                            raise reader.value_error(key, number, name, exc) from None
                    yield row

        return RowData(columns=columns, rows=rows())
