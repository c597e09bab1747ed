"""PostgreSQL as an `Engine`: pg_dump and psql, the SQLAlchemy fallback, JSON and CSV.

The modules of the SQLAlchemy fallback, the JSON export and the conversions are imported by the
methods that use them: a pg_dump backup or a restore of one does not load SQLAlchemy's PostgreSQL
dialect or the catalog reader (0.05 s of every worker process's start, on the bench's machine).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
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
from backup_engine.engines.postgresql import archive, csv_export, native, swap
from backup_engine.engines.postgresql import kinds as pg_kinds
from backup_engine.engines.postgresql.restore import (
    check_lock_capacity,
    load_into_new_database,
    restore_in_one_transaction,
)
from backup_engine.engines.postgresql.scratch import check_rows, count_rows, scratch_database
from backup_engine.targets import Target

if TYPE_CHECKING:
    from backup_engine.formats.json_document import JsonBackupReader
    from backup_engine.formats.model import DatabaseModel
    from backup_engine.formats.sql_script import CopyData, RowData, ScriptWriter

ESTIMATED_RELATIONS_PER_TABLE = 4  # a table, its key's index, a sequence, a toast table: when the manifest says none


class PostgresEngine(Engine):
    name = "postgresql"
    formats = ("sql", "json", "csv", "pgdump")
    restore_formats = ("sql", "pgdump")
    safety_format = "sql"
    native_method = "pg_dump"
    unsupported_restore = errors.UNSUPPORTED_PG_RESTORE
    string_default: ClassVar[re.Pattern[str]] = re.compile(r"^'((?:[^']|'')*)'(?:::[\w .\"]+)?$")
    carries_comments = True
    skips_empty_tables = True
    identity_for_rowid_alias = True

    @classmethod
    def warm_up(cls) -> None:
        from backup_engine.engines.postgresql import (  # noqa: F401
            generated,
            json_export,
            json_import,
            json_vetting,
            twin,
            writer,
        )

        _upload_gate()

    # --- backups -------------------------------------------------------------------------
    def server_version(self) -> str:
        return native.server_version(self.target)

    def dump_native(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        return native.dump_sql(self.target, out, include_data, self.tools, progress)

    def dump_generated(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.postgresql import generated

        return generated.dump_generated(self.target, out, include_data, progress)

    def export_json(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.postgresql import json_export

        return json_export.export_json(self.target, out, include_data, progress)

    def twin_alongside(self) -> bool:
        return True

    def export_json_with_twin(self, out: ByteSink, twin: ByteSink, include_data: str,
                              progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.postgresql import json_export
        from backup_engine.engines.postgresql.twin import TwinDump

        dump = TwinDump(self.target, twin, include_data)
        result = json_export.export_json(self.target, out, include_data, progress, alongside=dump.running)
        result.twin, result.twin_failure = dump.result, dump.failure
        return result

    def export_csv(self, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
                   csv_safe: bool = False) -> DumpResult:
        return csv_export.export_csv(self.target, out, include_data, progress, csv_safe=csv_safe)

    def export_other(self, format: str, out: ByteSink, include_data: str,
                     progress: Progress = no_progress) -> DumpResult:
        if format != "pgdump":
            return super().export_other(format, out, include_data, progress)
        return archive.dump_archive(self.target, out, include_data, self.tools, self._jobs, self.scratch_dir,
                                    progress)

    @property
    def _jobs(self) -> int:
        return self.jobs or archive.default_jobs()

    def script_complete(self, tail: bytes) -> bool:
        return native.script_complete(tail)

    # --- restores ------------------------------------------------------------------------
    def exists(self) -> bool:
        return True  # a database that does not exist fails the safety backup with TARGET_MISSING

    def restore(self, source: ArtifactSource, request: RestoreRequest,
                progress: Progress = no_progress, ready: Ready = no_wait) -> RestoreOutcome:
        """Built beside the target and swapped in when the role may create databases (any number
        of relations, on a server's default settings); else one transaction over the target, after
        checking up front that it fits the server's lock table. A data-only backup fills the
        target's own tables, in one transaction."""
        swap.sweep(self.target)
        if request.format == "pgdump" and not swap.can_create_databases(self.target):
            raise errors.RestoreError(errors.PGDUMP_NEEDS_CREATEDB)
        if request.include_data != "data" and swap.can_create_databases(self.target):
            with swap.beside(self.target) as new:
                progress(phase="restore", building=new.name)
                self._load(new.database, source, request, fresh=True, progress=progress)
                check_rows(new.database, request.table_rows)
                ready()
                progress(phase="swap")
                ended = new.swap_in()
            return RestoreOutcome({"built_beside": True, "sessions_ended": ended})
        check_lock_capacity(self.target, request.object_counts.get("relations", ESTIMATED_RELATIONS_PER_TABLE
                                                                   * len(request.table_rows)))
        ready()
        self._load(self.target, source, request, fresh=False)
        return RestoreOutcome({"built_beside": False})

    def _load(self, database: Target, source: ArtifactSource, request: RestoreRequest, *, fresh: bool,
              progress: Progress = no_progress) -> None:
        psql = self.tools.get("psql")
        if request.format == "pgdump":  # only ever our own (uploads of it are refused): into a new database
            archive.restore_archive(database, source, self.tools, self._jobs, self.scratch_dir, request.content_bytes,
                                    progress)
        elif not request.trusted:
            uploads = _upload_gate()
            limits = uploads.GateLimits(max_statement_bytes=request.max_statement_bytes)
            uploads.restore_untrusted(database, source, request.include_data, request.table_rows,
                                      request.allow_superuser, limits, fresh=fresh)
        elif fresh:
            load_into_new_database(database, source, psql)
        else:
            restore_in_one_transaction(database, source, request.include_data, request.table_rows, psql)

    def drill(self, source: ArtifactSource, request: RestoreRequest) -> dict[str, int]:
        swap.sweep(self.target)
        with scratch_database(self.target) as scratch:
            self._load(scratch, source, request, fresh=True)
            return count_rows(scratch)

    def sweep(self) -> list[str]:
        return swap.sweep(self.target)

    def exclusive(self, namespace: str, wait_s: float) -> AbstractContextManager[None]:
        return swap.exclusive(self.target, namespace, wait_s)

    # --- uploads -----------------------------------------------------------------------------
    def check_upload(self, stream: BinaryIO, format: str, max_statement_bytes: int = MAX_STATEMENT_BYTES
                     ) -> UploadReport:
        uploads = _upload_gate()
        return uploads.gate_report(stream, uploads.GateLimits(max_statement_bytes=max_statement_bytes))

    # --- JSON conversion -----------------------------------------------------------------------
    @classmethod
    def script_writer(cls, out: ByteSink, model: DatabaseModel, progress: Progress = no_progress) -> ScriptWriter:
        from backup_engine.engines.postgresql.writer import PostgresScriptWriter

        return PostgresScriptWriter(out, reserved_words=model.extras.reserved_words, progress=progress)

    @classmethod
    def column_type(cls, kind: str, source_type: str, sole_key: bool) -> str:
        return pg_kinds.column_type(kind, source_type)

    @classmethod
    def sql_dialect(cls) -> Any:
        from backup_engine.engines.postgresql.writer import make_dialect

        return make_dialect()

    @classmethod
    def place_table(cls, schema: str | None, name: str) -> tuple[str | None, str]:
        return "public", name

    @classmethod
    def json_rows(cls, reader: JsonBackupReader, mapping: TableMap, columns: list[str],
                  natural: bool) -> CopyData | RowData:
        from backup_engine.engines.postgresql import json_import

        if reader.schema.get("dialect") == cls.name:  # our own document: the server's text forms, as they are
            return json_import.document_rows(reader, mapping, columns)
        return json_import.decoded_rows(reader, mapping, columns, natural)

    @classmethod
    def vet_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        from backup_engine.engines.postgresql import json_vetting  # pglast: only for documents not ours

        return json_vetting.vet_schema(schema)


def _upload_gate() -> Any:
    """The upload gate's module, imported when an untrusted script comes: it loads pglast
    (PostgreSQL's parser, 0.04 s), which no backup and no restore of our own needs."""
    from backup_engine.engines.postgresql import uploads

    return uploads
