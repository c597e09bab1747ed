"""The engine's API at the size the engine-level tests use it: a catalogue over a local folder,
and backups, restores and conversions of one target, returning the task results' dicts.

Everything goes through the real engine, catalogue and store; this module only spares each test
the wiring (the signing key beside the folder, as the worker's settings keep it).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData

from backup_engine import errors
from backup_engine.backup import create_backup as engine_create_backup
from backup_engine.convert import convert_backup as engine_convert_backup
from backup_engine.convert import write_sql
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ClientTools, DumpResult, Progress, no_progress
from backup_engine.engines.postgresql import native as pg_native
from backup_engine.engines.postgresql import restore as pg_restore
from backup_engine.engines.postgresql import uploads as pg_uploads
from backup_engine.engines.sqlite import dump as sqlite_dump
from backup_engine.engines.sqlite import files as sqlite_files
from backup_engine.engines.sqlite import restore as sqlite_restore
from backup_engine.engines.sqlite import statements as sqlite_statements
from backup_engine.formats import FORMATS, json_document
from backup_engine.formats.json_document import read_document
from backup_engine.formats.model import DatabaseModel
from backup_engine.formats.sql_script import COPY_BLOCK, RowData
from backup_engine.plan import restore_plan, restored_from_json, with_companion
from backup_engine.registry import engine_class, engine_for
from backup_engine.restore import restore_backup as engine_restore_backup
from backup_engine.storage.catalogue import Catalogue
from backup_engine.storage.local import LocalStore
from backup_engine.targets import Target
from backup_engine.trust.manifest import MANIFEST_SUFFIX, Manifest, Signer
from config.settings import SIGNING_KEY_FILE, _read_or_create_key


class BackupStore:
    """A local backup folder and its catalogue, keyed as the worker keys it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.signer = Signer(_read_or_create_key(self.folder.parent / SIGNING_KEY_FILE))
        self.catalogue = Catalogue(LocalStore(self.folder), self.signer)

    def list(self, target: str | None = None) -> list[dict[str, Any]]:
        return [entry.as_result() for entry in self.catalogue.listing(target=target).entries]

    def verified(self, name: str) -> tuple[Path, dict[str, Any]]:
        """The backup's path and manifest dict, after reading it whole against its checksums."""
        entry = self.catalogue.checked(name)
        return Path(entry.path), entry.as_result()

    def manifest_path(self, artifact: Path) -> Path:
        return artifact.with_name(artifact.name + MANIFEST_SUFFIX)

    def read_manifest(self, name: str) -> dict[str, Any]:
        return json.loads((self.folder / (name + MANIFEST_SUFFIX)).read_text(encoding="utf-8"))

    def publish_bytes(self, data: bytes, prefix: str, fields: dict[str, Any],
                      created_at: datetime | None = None) -> dict[str, Any]:
        """Publish `data` as a backup with a signed manifest (a test's crafted file)."""
        fields = {"method": "test", "dialect": "", "include_data": "full", **fields}
        backup_format = FORMATS[fields["format"]]
        with self.catalogue.new_artifact(backup_format, prefix, created_at or datetime.now(UTC)) as artifact:
            artifact.write(data)
            return artifact.publish(**fields).as_result()

    def write_manifest(self, record: dict[str, Any], *, sign: bool = True) -> None:
        """Write a manifest (a test's forgery or repair), signed with the folder's key unless told not to."""
        record = {key: value for key, value in record.items() if key not in ("path", "signature")}
        if sign:
            record = Manifest.from_dict(record).signed(self.signer).stored()
        path = self.folder / (record["backup_filename"] + MANIFEST_SUFFIX)
        path.write_text(json.dumps(record), encoding="utf-8")
        path.chmod(0o600)


def engine(target: Target, store: BackupStore, tools: ClientTools = ClientTools()) -> Any:
    return engine_for(target, tools, store.folder)


def create_backup(target: Target, store: BackupStore, *, tools: ClientTools = ClientTools(), format: str = "sql",
                  include_data: str = "full", method: str = "auto", prefix: str | None = None,
                  progress: Progress = no_progress, **kwargs: Any) -> dict[str, Any]:
    entry = engine_create_backup(engine(target, store, tools), store.catalogue, format=format,
                                 include_data=include_data, method=method, prefix=prefix, progress=progress, **kwargs)
    return entry.as_result()


def convert_backup(store: BackupStore, backup_filename: str, dialect: str | None = None) -> dict[str, Any]:
    return engine_convert_backup(store.catalogue, backup_filename, dialect).as_result()


def restore_backup(target: Target, store: BackupStore, backup_filename: str, *, tools: ClientTools = ClientTools(),
                   safety_backup: bool = True, progress: Progress = no_progress) -> dict[str, Any]:
    """A restore as the worker runs it; a JSON backup through its `.sql` (its twin, or converted)."""
    plan, twin = restore_plan(store.catalogue, backup_filename, target.name, target.dialect, None)
    chosen = engine(target, store, tools)
    if plan.steps[0].kwargs.get("dialect"):  # convert first
        converted = convert_backup(store, backup_filename, target.dialect)
        result = engine_restore_backup(chosen, store.catalogue, converted["backup_filename"],
                                       take_safety_backup=safety_backup, progress=progress)
        return restored_from_json(result, backup_filename, converted["backup_filename"])
    name = twin or backup_filename
    result = engine_restore_backup(chosen, store.catalogue, name, take_safety_backup=safety_backup, progress=progress)
    return restored_from_json(result, backup_filename, name) if twin else result


# --- the engines' parts on plain local files (tests feed them files they made or damaged) ------------
class LocalFile:
    """A plain local file as an `ArtifactSource` (no manifest: nothing to check it against)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name

    def open(self) -> Any:
        return self.path.open("rb")

    def verify(self) -> None:
        """A file a test made has no manifest to match."""

    @contextmanager
    def local_file(self) -> Iterator[Path]:
        yield self.path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class sqlite:  # noqa: N801 - reads like the module it stands for
    """The SQLite engine's parts by their old names."""

    END_MARKER = sqlite_statements.END_MARKER
    SQL_METHOD = sqlite_dump.SQL_METHOD
    SNAPSHOT_METHOD = sqlite_dump.SNAPSHOT_METHOD
    quote_identifier = staticmethod(sqlite_files.quote_identifier)
    count_rows = staticmethod(sqlite_files.count_rows)

    @staticmethod
    def restore_sql(target: Target, sql_path: Path, include_data: str, *, check_foreign_keys: bool = True) -> None:
        sqlite_restore.restore_sql(sqlite_files.database_path(target), LocalFile(sql_path), include_data,
                                   check_foreign_keys=check_foreign_keys)

    @staticmethod
    def restore_snapshot(target: Target, snapshot_path: Path) -> None:
        sqlite_restore.restore_snapshot(sqlite_files.database_path(target), LocalFile(snapshot_path))

    @staticmethod
    def snapshot(target: Target, dest_path: Path) -> DumpResult:
        counts = sqlite_dump.take_snapshot(target, dest_path)
        return DumpResult(method=sqlite_dump.SNAPSHOT_METHOD, server_version=sqlite3.sqlite_version,
                          table_rows=counts)

    @staticmethod
    def dump_sql(target: Target, out: Any, include_data: str) -> DumpResult:
        with tempfile.TemporaryDirectory() as scratch:
            return engine_for(target, ClientTools(), Path(scratch)).dump_native(out, include_data)


class sqlgen:  # noqa: N801
    """The SQLAlchemy fallback's parts by their old names."""

    RowData = RowData
    COPY_BLOCK = COPY_BLOCK

    @staticmethod
    def dump_sql(target: Target, out: Any, include_data: str) -> DumpResult:
        if include_data not in INCLUDE_DATA_MODES:
            raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))
        return engine_for(target).dump_generated(out, include_data)

    @staticmethod
    def SqlScriptWriter(out: Any, dialect: str) -> Any:  # noqa: N802 - the old class name
        return engine_class(dialect).script_writer(out, DatabaseModel(dialect=dialect, metadata=MetaData()))


class postgresql:  # noqa: N801
    END_MARKER = pg_native.END_MARKER
    PlainDumpScanner = pg_native.PlainDumpScanner

    @staticmethod
    def restore_sql(target: Target, sql_path: Path, include_data: str, table_names: list[str],
                    tools: ClientTools, *, restricted: bool = False) -> None:
        """A file run over the target in one transaction (a trusted dump, or an upload's path)."""
        if restricted:
            pg_uploads.restore_untrusted(target, LocalFile(sql_path), include_data, table_names, allow_superuser=True)
        else:
            pg_restore.restore_in_one_transaction(target, LocalFile(sql_path), include_data, table_names,
                                                  tools.get("psql"))


class convert:  # noqa: N801
    write_sql = staticmethod(write_sql)

    @staticmethod
    def convert_json_to_sql(json_path: Path, sql_path: Path, include_data: str | None = None,
                            dialect: str | None = None) -> dict[str, Any]:
        reader = read_document(Path(json_path))
        with open(sql_path, "wb") as handle:
            return write_sql(reader, handle, dialect, include_data)

    @staticmethod
    def convert_backup(store: BackupStore, backup_filename: str, dialect: str | None = None) -> dict[str, Any]:
        return convert_backup(store, backup_filename, dialect)

    @staticmethod
    def create_json_backup_with_twin(target: Target, store: BackupStore, **kwargs: Any) -> dict[str, Any]:
        """A JSON backup naming its `.sql` twin: written alongside it where the engine can, else converted."""
        manifest = create_backup(target, store, format="json", **kwargs)
        if manifest.get("companions"):
            return manifest
        return with_companion(convert_backup(store, manifest["backup_filename"]), manifest)


class json_format:  # noqa: N801
    FORMAT_NAME = json_document.FORMAT_NAME
    FORMAT_VERSION = json_document.FORMAT_VERSION
    read_document = staticmethod(read_document)

    @staticmethod
    def export_postgresql(target: Target, out: Any, include_data: str) -> DumpResult:
        return engine_for(target).export_json(out, include_data)

    @staticmethod
    def export_sqlite(target: Target, out: Any, include_data: str) -> DumpResult:
        return engine_for(target).export_json(out, include_data)
