"""MySQL and MariaDB as an `Engine`: mariadb-dump / mysqldump and the client, the SQLAlchemy
fallback, JSON and CSV, restores built beside the target and swapped in under a journal."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import pymysql

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.base import (
    MAX_STATEMENT_BYTES,
    NUMBER_DEFAULT,
    ArtifactSource,
    Engine,
    Ready,
    RestoreOutcome,
    RestoreRequest,
    TableMap,
    UploadReport,
    no_wait,
)
from backup_engine.engines.mysql import csv_export, native, restore
from backup_engine.engines.mysql import kinds as mysql_kinds
from backup_engine.engines.mysql.catalog import text
from backup_engine.engines.mysql.connect import classify_exception, connect, server_version
from backup_engine.engines.mysql.literals import mysql_string
from backup_engine.engines.mysql.scratch import (
    control_connection,
    database_exists,
    drill_database,
    exclusive,
    target_lock,
)
from backup_engine.formats.values import PortableDefault
from backup_engine.targets import Target

if TYPE_CHECKING:
    from backup_engine.formats.json_document import JsonBackupReader
    from backup_engine.formats.model import DatabaseModel
    from backup_engine.formats.sql_script import CopyData, RowData, ScriptWriter

MYSQL_STRING = re.compile(r"^'((?:[^'\\]|\\.|'')*)'$", re.S)
MYSQL_UNESCAPES = {"0": "\x00", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "b": "\b"}
NOW = re.compile(r"^(?:current_timestamp|now|localtimestamp|localtime)(?:\(\d?\))?$", re.I)
GLOBAL_GRANT = re.compile(r"^GRANT (.+?) ON \*\.\* TO ", re.I)


def mysql_unescape(body: str) -> str:
    """The value of a MySQL string literal's body (backslash escapes, doubled quotes)."""
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            out.append(MYSQL_UNESCAPES.get(following, following))
            index += 2
        elif char == "'" and body.startswith("''", index):
            out.append("'")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class MysqlEngine(Engine):
    name = "mysql"
    formats = ("sql", "json", "csv")
    restore_formats = ("sql",)
    safety_format = "sql"
    safety_backup_alongside = False  # a backup waits out a restore of its target (`settle`), its own restore too
    native_method = "mysqldump"
    unsupported_restore = errors.UNSUPPORTED_MYSQL_RESTORE
    boolean_literals: ClassVar[tuple[str, str]] = ("1", "0")
    carries_comments = True
    skips_empty_tables = True  # a MySQL table has at least one column
    identity_for_rowid_alias = True  # becomes AUTO_INCREMENT

    @classmethod
    def check_url(cls, target: Target) -> None:
        if not target.url.database:
            raise errors.ConfigError(errors.CONFIG_INVALID, f"target {target.name!r}: a MySQL URL names its "
                                     "database (mysql://user:password@host:3306/database)")

    @property
    def database(self) -> str:
        return self.target.url.database or ""

    def settle(self) -> None:
        """Before reading the target: an interrupted restore of it is rolled back first (a backup of
        it half-swapped would be neither the old database nor the new), and a live one waited out."""
        try:
            with control_connection(self.target) as conn, conn.cursor() as cur:
                restore.sweep(self.target, cur)
                cur.execute("SELECT IS_USED_LOCK(%s)", (target_lock(self.database),))
                busy = cur.fetchone()[0] is not None
        except errors.RestoreError as exc:
            raise errors.DumpError(exc.message, exc.detail) from exc
        except pymysql.err.MySQLError as exc:
            raise classify_exception(exc, default=errors.DumpError, default_message=errors.SWAP_PENDING,
                                     target=self.target) from exc
        if busy:
            raise errors.TargetBusy(errors.TARGET_BUSY, f"target {self.target.name!r}: a restore of it is running")

    @classmethod
    def warm_up(cls) -> None:
        from backup_engine.engines.mysql import generated, json_export, json_import, vetting, writer  # noqa: F401

    # --- backups -------------------------------------------------------------------------
    def server_version(self) -> str:
        return server_version(self.target)

    def dump_native(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        self.settle()
        return native.dump_sql(self.target, out, include_data, self.tools, progress)

    def dump_generated(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.mysql import generated  # SQLAlchemy's: imported by the paths that use it

        self.settle()
        return generated.dump_generated(self.target, out, include_data, progress)

    def export_json(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        from backup_engine.engines.mysql import json_export

        self.settle()
        return json_export.export_json(self.target, out, include_data, progress)

    def export_csv(self, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
                   csv_safe: bool = False) -> DumpResult:
        self.settle()
        return csv_export.export_csv(self.target, out, include_data, progress, csv_safe=csv_safe)

    def script_complete(self, tail: bytes) -> bool:
        return native.script_complete(tail)

    # --- restores ------------------------------------------------------------------------
    def exists(self) -> bool:
        with connect(self.target, database="") as conn, conn.cursor() as cur:
            return database_exists(cur, self.database)

    def check_request(self, request: RestoreRequest) -> None:
        """Untrusted SQL runs only when this worker wrote it (a converted JSON document), and then
        only with an account that holds no privilege on every database, unless allowed."""
        if request.trusted:
            return
        if not request.converted:
            raise errors.InvalidRequest(self.unsupported_restore, errors.UNTRUSTED_MYSQL_SQL)
        if request.allow_superuser:
            return
        with connect(self.target, database="") as conn, conn.cursor() as cur:
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = [GLOBAL_GRANT.match(text(row[0])) for row in cur.fetchall()]
        powers = [match.group(1) for match in grants if match and match.group(1).strip().upper() != "USAGE"]
        if powers:
            raise errors.InvalidRequest(errors.UPLOAD_ROLE_REFUSED, f"target {self.target.name!r} connects with "
                                        f"privileges on every database ({'; '.join(powers)[:200]}). Restore uploads "
                                        "with an account that has them on its database and on `bw\\_%`.* only, or "
                                        "set BACKUP_UPLOAD_ALLOW_SUPERUSER=true to accept the risk")

    def restore(self, source: ArtifactSource, request: RestoreRequest,
                progress: Progress = no_progress, ready: Ready = no_wait) -> RestoreOutcome:
        self.check_request(request)
        details = restore.restore_beside(self.target, source, request.include_data, request.table_rows, self.tools,
                                         progress, ready)
        return RestoreOutcome(details={"swapped_tables": details["tables"]})

    def drill(self, source: ArtifactSource, request: RestoreRequest) -> dict[str, int]:
        self.check_request(request)
        with drill_database(self.target) as (scratch, conn):
            return restore.drill(self.target, source, self.tools, conn, scratch.url.database or "")

    def sweep(self) -> list[str]:
        return restore.sweep(self.target)

    def exclusive(self, namespace: str, wait_s: float) -> AbstractContextManager[None]:
        return exclusive(self.target, namespace, wait_s)

    # --- uploads -----------------------------------------------------------------------------
    def check_upload(self, stream: BinaryIO, format: str, max_statement_bytes: int = MAX_STATEMENT_BYTES
                     ) -> UploadReport:
        if format == "sql":
            raise errors.InvalidRequest(self.unsupported_restore, errors.UNTRUSTED_MYSQL_SQL)
        return UploadReport()

    # --- JSON conversion -----------------------------------------------------------------------
    @classmethod
    def script_writer(cls, out: ByteSink, model: DatabaseModel, progress: Progress = no_progress) -> ScriptWriter:
        from backup_engine.engines.mysql.writer import MysqlScriptWriter

        return MysqlScriptWriter(out, progress=progress)

    @classmethod
    def column_type(cls, kind: str, source_type: str, sole_key: bool) -> str:
        return mysql_kinds.column_type(kind, source_type)

    @classmethod
    def sql_dialect(cls) -> Any:
        from backup_engine.engines.mysql.writer import make_dialect

        return make_dialect()

    @classmethod
    def place_table(cls, schema: str | None, name: str) -> tuple[str | None, str]:
        return None, (name if schema in (None, "public", "main") else f"{schema}.{name}")

    @classmethod
    def json_rows(cls, reader: JsonBackupReader, mapping: TableMap, columns: list[str],
                  natural: bool) -> CopyData | RowData:
        from backup_engine.engines.mysql import json_import

        return json_import.document_rows(reader, mapping, columns, natural)

    @classmethod
    def vet_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        from backup_engine.engines.mysql import vetting

        return vetting.vet_schema(schema)

    @classmethod
    def portable_default(cls, text: str | None) -> PortableDefault | None:
        """A default as information_schema prints it (MariaDB: an SQL literal or expression)."""
        if text is None:
            return None
        value = text.strip()
        if value.upper() == "NULL":
            return None
        if NOW.match(value):
            return PortableDefault("now")
        string = MYSQL_STRING.match(value)
        if string:
            return PortableDefault("string", mysql_unescape(string.group(1)).replace("'", "''"))
        number = NUMBER_DEFAULT.match(value)
        if number:
            return PortableDefault("number", number.group(1))
        return None

    @classmethod
    def render_default(cls, default: PortableDefault | None, kind: str) -> str | None:
        if default is None:
            return None
        if default.kind == "now":
            return "CURRENT_TIMESTAMP(6)" if kind in ("timestamp", "timestamptz") else None
        if default.kind == "string":
            if kind in ("integer", "float", "numeric", "boolean", "bytes"):
                return None
            return mysql_string(default.text.replace("''", "'"))
        return super().render_default(default, kind)
