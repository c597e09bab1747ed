"""Taking a backup: pick the path for the target's dialect and format, write, publish.

This is the one function the Celery tasks and the CLI's `--local` mode call to create a
backup. It validates its arguments, streams the dump into a pending artifact and publishes
it with its manifest only when the dump is complete.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backup_engine import errors
from backup_engine.artifacts import FORMAT_EXTENSIONS, BackupStore, PendingArtifact, utc_now
from backup_engine.dialects import native
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, METHODS, ClientTools, DumpResult, Progress, no_progress
from backup_engine.targets import Target

FORMATS_BY_DIALECT = {"postgresql": ("sql", "json", "csv"), "sqlite": ("sql", "sqlite", "json", "csv")}


def check_choice(value: object, choices: tuple[str, ...], message: str, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise errors.InvalidRequest(message, f"{what} {value!r} (choose from {', '.join(choices)})")
    return value


def create_backup(target: Target, store: BackupStore, *, format: str = "sql", include_data: str = "full",
                  method: str = "auto", tools: ClientTools = ClientTools(), prefix: str | None = None,
                  progress: Progress = no_progress, extra_manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Back up `target` into `store`; returns the manifest of the published file."""
    check_choice(format, FORMATS_BY_DIALECT[target.dialect], errors.UNKNOWN_FORMAT, f"format for {target.dialect}")
    check_choice(include_data, INCLUDE_DATA_MODES, errors.UNKNOWN_INCLUDE_DATA, "include_data")
    check_choice(method, METHODS, errors.UNKNOWN_METHOD, "method")
    if format == "sqlite" and include_data != "full":
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, "a binary sqlite snapshot is always full")
    started = time.monotonic()
    created_at = utc_now()
    progress(phase="start", target=target.name, format=format)
    with _storage_failures(store), store.pending(FORMAT_EXTENSIONS[format]) as artifact:
        result = _write(target, artifact, format, include_data, method, tools, progress)
        progress(phase="publish")
        manifest = {
            "format": format,
            "target": target.name,
            "dialect": target.dialect,
            "server_version": result.server_version,
            "method": result.method,
            "include_data": include_data,
            "tables": result.tables,
            "rows": result.rows,
            "table_rows": result.table_rows,
            "duration_s": round(time.monotonic() - started, 3),
            **({"fallback_reason": result.fallback_reason} if result.fallback_reason else {}),
            **(extra_manifest or {}),
        }
        return store.publish(artifact, prefix or target.name, manifest, created_at=created_at)


STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
SQLITE_FULL = 13


def storage_failure(exc: BaseException | None) -> str | None:
    """Why writing failed when the backup folder is full or broken (looking through wrapped
    errors: pg_dump's pipe, SQLite's SQLITE_FULL); None for any other failure."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return exc.strerror or str(exc)
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
            return "database or disk is full"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


@contextmanager
def _storage_failures(store: BackupStore) -> Iterator[None]:
    try:
        yield
    except errors.WriteFailed:
        raise
    except Exception as exc:
        reason = storage_failure(exc)
        if reason is None:
            raise
        raise errors.WriteFailed(errors.WRITE_FAILED, f"{store.folder}: {reason}") from exc


def _write(target: Target, artifact: PendingArtifact, format: str, include_data: str, method: str,
           tools: ClientTools, progress: Progress) -> DumpResult:
    if format == "sqlite":
        return native("sqlite").snapshot(target, artifact.temp_path)
    if format == "json":
        from backup_engine import json_format

        export_json = json_format.export_postgresql if target.dialect == "postgresql" else json_format.export_sqlite
        return export_json(target, artifact.stream(), include_data, progress)
    if format == "csv":
        from backup_engine import csv_format

        return csv_format.export(target, artifact.stream(), include_data, progress)
    if method == "sqlalchemy":
        return _fallback(target, artifact, include_data, progress)
    try:
        return _native_sql(target, artifact, include_data, tools, progress)
    except (errors.DumpError, OSError) as failure:
        if method == "native" or storage_failure(failure):
            raise  # a full disk is not the tool's fault: the fallback would fill it too
        reason = str(failure)
    # auto: the native tool is missing, failed or wrote an empty or incomplete dump.
    # (An unreachable server or a missing database is not the tool's fault: no fallback.)
    progress(phase="fallback", reason=reason)
    artifact.restart()
    try:
        result = _fallback(target, artifact, include_data, progress)
    except errors.DumpError as exc:
        raise errors.DumpError(exc.message, f"{exc.detail} (after the native dump failed: {reason})") from exc
    result.fallback_reason = reason
    return result


def _native_sql(target: Target, artifact: PendingArtifact, include_data: str, tools: ClientTools,
                progress: Progress) -> DumpResult:
    if target.dialect == "postgresql":
        return native("postgresql").dump_sql(target, artifact.stream(), include_data, tools, progress)
    return native("sqlite").dump_sql(target, artifact.stream(), include_data, progress)


def _fallback(target: Target, artifact: PendingArtifact, include_data: str, progress: Progress) -> DumpResult:
    from backup_engine import sqlgen

    result = sqlgen.dump_sql(target, artifact.stream(), include_data, progress)
    _check_fallback_output(target, artifact)
    return result


def _check_fallback_output(target: Target, artifact: PendingArtifact) -> None:
    """The fallback's file must be as complete as a native one: non-empty, with its end marker
    (the same check a restore makes before it runs the file)."""
    stream = artifact.stream()
    stream.flush()
    if stream.size == 0:
        raise errors.DumpError(errors.FALLBACK_FAILED, errors.EMPTY_DUMP)
    try:
        native(target.dialect).require_end_marker(artifact.temp_path)
    except errors.RestoreError as exc:
        raise errors.DumpError(errors.FALLBACK_FAILED, errors.INCOMPLETE_DUMP) from exc
