"""The public contract as plain functions: names in, engine calls, dicts out.

Both the Celery tasks and the CLI's `--local` mode call these, so a task and a local run do
exactly the same work. No Celery and no SQL here: arguments are checked, the named target
is looked up in the settings (a caller never passes a URL), the target's lock is held while
it is read or written, and the engine does the rest.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from backup_engine import errors
from backup_engine.artifacts import BackupStore
from backup_engine.backup import create_backup
from backup_engine.convert import convert_backup, create_json_backup_with_twin
from backup_engine.dumpinfo import Progress, no_progress
from backup_engine.imports import import_upload
from backup_engine.restore import restore_backup
from backup_engine.retention import prune as prune_store
from backup_engine.targets import SUPPORTED_DIALECTS
from backup_engine.verify import verify_backup
from config.settings import Settings
from tasks.locks import target_lock


def store_for(settings: Settings) -> BackupStore:
    return BackupStore(settings.backup_dir)


def create(settings: Settings, *, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto", progress: Progress = no_progress, with_twin: bool = True) -> dict[str, Any]:
    """A backup; a JSON one also gets its `.sql` twin (named under `companions`) unless the
    caller converts separately (the Celery chain does, as a step of its own)."""
    chosen = settings.target(target)
    make = create_json_backup_with_twin if format == "json" and with_twin else partial(create_backup, format=format)
    with target_lock(settings, chosen.name):
        return make(chosen, store_for(settings), include_data=include_data, method=method, tools=settings.tools,
                    prefix=settings.file_prefix, progress=progress)


def convert(settings: Settings, *, backup_filename: str, dialect: str | None = None,
            progress: Progress = no_progress) -> dict[str, Any]:
    """The `.sql` of a JSON backup, published beside it (for its own dialect or another)."""
    if dialect is not None and dialect not in SUPPORTED_DIALECTS:
        choices = ", ".join(SUPPORTED_DIALECTS)
        raise errors.InvalidRequest(errors.UNSUPPORTED_DIALECT, f"{dialect!r} (choose from {choices})")
    return convert_backup(store_for(settings), backup_filename, dialect, progress=progress)


def find_twin(settings: Settings, backup_filename: str, dialect: str) -> str | None:
    """A published `.sql` converted from this JSON backup for `dialect`, if one still verifies."""
    store = store_for(settings)
    for record in store.list():
        if record.get("converted_from") == backup_filename and record.get("dialect") == dialect:
            try:
                store.verified(record["backup_filename"])
            except errors.BackupError:
                continue
            return record["backup_filename"]
    return None


def restore(settings: Settings, *, backup_filename: str, target: str = "default",
            progress: Progress = no_progress) -> dict[str, Any]:
    chosen = settings.target(target)
    with target_lock(settings, chosen.name):
        return restore_backup(chosen, store_for(settings), backup_filename, tools=settings.tools, progress=progress)


def restore_upload(settings: Settings, *, path: str, target: str = "default",
                   progress: Progress = no_progress) -> dict[str, Any]:
    """Import the upload as a backup of its own (kept, with a manifest), then restore that."""
    chosen = settings.target(target)
    progress(phase="import", path=path)
    imported = import_upload(store_for(settings), settings.upload_dir, path, chosen, prefix=settings.file_prefix)
    result = restore(settings, backup_filename=imported["backup_filename"], target=target, progress=progress)
    return {**result, "imported_file": imported["backup_filename"], "uploaded_path": imported["imported_from"]}


def verify(settings: Settings, *, backup_filename: str) -> dict[str, Any]:
    return verify_backup(store_for(settings), backup_filename, settings.targets, tools=settings.tools)


def verify_latest(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    """The restore drill of each target's newest backup (what beat runs)."""
    names = [target] if target is not None else sorted(settings.targets)
    results = []
    for name in names:
        settings.target(name)
        newest = store_for(settings).list(name)
        if newest:
            results.append(verify(settings, backup_filename=newest[0]["backup_filename"]))
    return results


def prune(settings: Settings, *, target: str | None = None) -> dict[str, Any]:
    if target is not None:
        settings.target(target)
    return prune_store(store_for(settings), settings.retention, target)


def list_backups(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    if target is not None:
        settings.target(target)
    return store_for(settings).list(target)

