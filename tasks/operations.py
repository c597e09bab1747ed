"""The public contract as plain functions: names in, engine calls, dicts out.

Both the Celery tasks and the CLI's `--local` mode call these, so a task and a local run do
exactly the same work. No Celery and no SQL here: arguments are checked, the named target
is looked up in the settings (a caller never passes a URL), and the engine does the rest.
"""

from __future__ import annotations

from typing import Any

from backup_engine.artifacts import BackupStore
from backup_engine.backup import create_backup
from backup_engine.dumpinfo import Progress, no_progress
from backup_engine.restore import restore_backup
from config.settings import Settings
from tasks.locks import target_lock


def store_for(settings: Settings) -> BackupStore:
    return BackupStore(settings.backup_dir)


def create(settings: Settings, *, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto", progress: Progress = no_progress) -> dict[str, Any]:
    chosen = settings.target(target)
    with target_lock(settings, chosen.name):
        return create_backup(chosen, store_for(settings), format=format, include_data=include_data, method=method,
                             tools=settings.tools, prefix=settings.file_prefix, progress=progress)


def restore(settings: Settings, *, backup_filename: str, target: str = "default",
            progress: Progress = no_progress) -> dict[str, Any]:
    chosen = settings.target(target)
    with target_lock(settings, chosen.name):
        return restore_backup(chosen, store_for(settings), backup_filename, tools=settings.tools, progress=progress)


def list_backups(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    if target is not None:
        settings.target(target)
    return store_for(settings).list(target)
