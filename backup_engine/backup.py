"""Taking a backup: the engine writes, the catalogue stores, the manifest is published last.

This is the one function the Celery tasks and the CLI's `--local` mode call to create a
backup. It validates its arguments, streams the engine's dump through the stages into a new
artifact, and publishes it with its signed manifest only when the dump is complete. A `sql`
backup with `method=auto` falls back from the native tool to the SQLAlchemy generator when the
tool is missing, fails or writes an incomplete dump (never when the server is down or the
disk is full: the fallback could not do better).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from backup_engine import errors
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, METHODS, DumpResult, Progress, no_progress
from backup_engine.engines.base import Engine
from backup_engine.formats import format_named
from backup_engine.storage.catalogue import Catalogue, Entry, NewArtifact, utc_now

log = logging.getLogger(__name__)

STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
SQLITE_FULL = 13


def check_choice(value: object, choices: tuple[str, ...], message: str, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise errors.InvalidRequest(message, f"{what} {value!r} (choose from {', '.join(choices)})")
    return value


def create_backup(engine: Engine, catalogue: Catalogue, *, format: str = "sql", include_data: str = "full",
                  method: str = "auto", prefix: str | None = None, progress: Progress = no_progress,
                  purpose: str | None = None, csv_safe: bool = False,
                  created_at: datetime | None = None, twin_alongside: bool = True) -> Entry:
    """Back up the engine's target into the catalogue; returns the published backup. A JSON
    backup's `.sql` twin is made alongside it where the engine can (`twin_alongside`), and named
    in the result under `companions`."""
    target = engine.target
    check_choice(format, engine.formats, errors.UNKNOWN_FORMAT, f"format for {engine.name}")
    check_choice(include_data, INCLUDE_DATA_MODES, errors.UNKNOWN_INCLUDE_DATA, "include_data")
    check_choice(method, METHODS, errors.UNKNOWN_METHOD, "method")
    started = time.monotonic()
    created_at = created_at or utc_now()
    progress(phase="start", target=target.name, format=format)
    with storage_failures(catalogue), \
            catalogue.new_artifact(format_named(format), prefix or target.name, created_at) as artifact, \
            _twin_artifact(engine, catalogue, twin_alongside and format == "json", prefix or target.name,
                           created_at) as twin:
        result = _write(engine, artifact, format, include_data, method, csv_safe, progress, twin)
        progress(phase="publish")
        entry = artifact.publish(
            format=format, target=target.name, dialect=engine.name, server_version=result.server_version,
            method=result.method, include_data=include_data, tables=result.tables, rows=result.rows,
            table_rows=result.table_rows, duration_s=round(time.monotonic() - started, 3),
            fallback_reason=result.fallback_reason, purpose=purpose, origin="worker",
            not_carried=tuple(result.not_carried))
        if twin is None:
            return entry
        return _with_twin(entry, twin, result, engine, include_data, started)


@contextmanager
def _twin_artifact(engine: Engine, catalogue: Catalogue, wanted: bool, prefix: str,
                   created_at: datetime) -> Iterator[NewArtifact | None]:
    """The `.sql` twin's artifact, when a JSON backup wants its twin alongside and the engine can."""
    if not wanted or not engine.twin_alongside():
        yield None
        return
    with catalogue.new_artifact(format_named("sql"), prefix, created_at) as twin:
        yield twin


def _with_twin(entry: Entry, twin: NewArtifact, result: DumpResult, engine: Engine, include_data: str,
               started: float) -> Entry:
    """The JSON backup naming its twin, once the twin is published beside it (named `converted_from`
    the JSON, as a converted twin is). A twin that failed is only missing: the JSON's result then
    names none, and the plan converts one afterwards."""
    made, failure = result.twin, result.twin_failure
    if made is not None and (twin.content_bytes == 0 or not engine.script_complete(twin.tail)):
        made, failure = None, errors.INCOMPLETE_DUMP  # the checks a fallback dump passes
    if made is None:
        log.warning("the .sql twin of %s was not made alongside it: %s", entry.name, failure)
        return entry
    try:
        published = twin.publish(
            format="sql", target=entry.manifest.target, dialect=engine.name, server_version=made.server_version,
            method=made.method, include_data=include_data, tables=made.tables, rows=made.rows,
            table_rows=made.table_rows, duration_s=round(time.monotonic() - started, 3), converted_from=entry.name,
            source_dialect=engine.name, origin="worker")
    except (errors.BackupError, OSError) as exc:
        log.warning("the .sql twin of %s could not be published: %s", entry.name, exc)
        return entry
    return replace(entry, companions=(published.name,))


def storage_failure(exc: BaseException | None) -> str | None:
    """Why writing failed when the backup store is full or broken (looking through wrapped
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
def storage_failures(catalogue: Catalogue) -> Iterator[None]:
    try:
        yield
    except errors.WriteFailed:
        raise
    except Exception as exc:
        reason = storage_failure(exc)
        if reason is None:
            raise
        raise errors.WriteFailed(errors.WRITE_FAILED, f"{catalogue.store.url}: {reason}") from exc


def _write(engine: Engine, artifact: NewArtifact, format: str, include_data: str, method: str, csv_safe: bool,
           progress: Progress, twin: NewArtifact | None = None) -> DumpResult:
    if format == "json":
        if twin is not None:
            return engine.export_json_with_twin(artifact, twin, include_data, progress)
        return engine.export_json(artifact, include_data, progress)
    if format == "csv":
        return engine.export_csv(artifact, include_data, progress, csv_safe=csv_safe)
    if format != "sql":
        return engine.export_other(format, artifact, include_data, progress)
    if method == "sqlalchemy":
        return _generated(engine, artifact, include_data, progress)
    try:
        return engine.dump_native(artifact, include_data, progress)
    except (errors.DumpError, OSError) as failure:
        if method == "native" or storage_failure(failure):
            raise  # a full disk is not the tool's fault: the fallback would fill it too
        reason = str(failure)
    # auto: the native tool is missing, failed or wrote an empty or incomplete dump.
    # (An unreachable server or a missing database is not the tool's fault: no fallback.)
    progress(phase="fallback", reason=reason)
    artifact.restart()
    try:
        result = _generated(engine, artifact, include_data, progress)
    except errors.DumpError as exc:
        raise errors.DumpError(exc.message, f"{exc.detail} (after the native dump failed: {reason})") from exc
    result.fallback_reason = reason
    return result


def _generated(engine: Engine, artifact: NewArtifact, include_data: str, progress: Progress) -> DumpResult:
    """The SQLAlchemy fallback; its output must be as complete as a native dump: non-empty, with
    its end marker (the same check a restore makes before it runs the file)."""
    try:
        result = engine.dump_generated(artifact, include_data, progress)
    except errors.DumpError as exc:
        if exc.message == errors.FALLBACK_FAILED:
            raise
        raise errors.DumpError(errors.FALLBACK_FAILED, str(exc)) from exc
    if artifact.content_bytes == 0:
        raise errors.DumpError(errors.FALLBACK_FAILED, errors.EMPTY_DUMP)
    if not engine.script_complete(artifact.tail):
        raise errors.DumpError(errors.FALLBACK_FAILED, errors.INCOMPLETE_DUMP)
    return result


def safety_backup(engine: Engine, catalogue: Catalogue, prefix: str | None, restoring: str) -> dict[str, Any] | None:
    """A full backup of the target before a destructive restore (None when there is nothing yet)."""
    if not engine.exists():
        return None
    entry = create_backup(engine, catalogue, format=engine.safety_format, include_data="full", method="auto",
                          prefix=prefix, purpose=f"safety backup before restoring {restoring}")
    return entry.as_result()
