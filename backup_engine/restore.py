"""Restoring a backup into a target: check, take a safety backup, then all or nothing.

The backup's checksum is verified against its manifest before anything is touched; a
destructive restore is preceded by a full backup of the target (the `safety_backup`), so even
a correct restore of the wrong file can be undone.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from backup_engine import errors
from backup_engine.artifacts import BackupStore
from backup_engine.backup import create_backup
from backup_engine.dialects import native
from backup_engine.dumpinfo import ClientTools, Progress, no_progress
from backup_engine.targets import Target

UNSUPPORTED_RESTORE = {"postgresql": errors.UNSUPPORTED_PG_RESTORE, "sqlite": errors.UNSUPPORTED_SQLITE_RESTORE}
SAFETY_FORMAT = {"postgresql": "sql", "sqlite": "sqlite"}


def restore_backup(target: Target, store: BackupStore, backup_filename: str, *, tools: ClientTools = ClientTools(),
                   safety_backup: bool = True, progress: Progress = no_progress) -> dict[str, Any]:
    """Make `target` hold exactly what the backup holds; returns what was restored."""
    started = time.monotonic()
    progress(phase="verify", backup_filename=backup_filename)
    path, manifest = store.verified(backup_filename)
    _check_restorable(target, manifest)
    with ExitStack() as cleanup:
        restore_path, restore_manifest = path, manifest
        if manifest.get("format") == "json":
            # Convert first (into a temp file in the backup folder): a bad JSON fails before anything is touched.
            from backup_engine.convert import sql_for_restore

            progress(phase="convert")
            converted = cleanup.enter_context(store.pending("sql"))
            result = sql_for_restore(path, target.dialect, converted)
            restore_path = converted.temp_path
            restore_manifest = {**manifest, "format": "sql", "dialect": target.dialect,
                                "include_data": result["include_data"], "table_rows": result["table_rows"]}
        safety = None
        if safety_backup and _target_exists(target):
            progress(phase="safety_backup")
            safety = create_backup(target, store, format=SAFETY_FORMAT[target.dialect], include_data="full",
                                   method="auto", tools=tools,
                                   extra_manifest={"purpose": f"safety backup before restoring {path.name}"})
        progress(phase="restore")
        _apply(target, restore_path, restore_manifest, tools)
    return {
        "backup_filename": path.name,
        "restored_file": path.name,
        "target": target.name,
        "tables": manifest.get("tables"),
        "rows": manifest.get("rows"),
        "include_data": manifest.get("include_data"),
        "duration_s": round(time.monotonic() - started, 3),
        "safety_backup": safety,
    }


def _check_restorable(target: Target, manifest: dict[str, Any]) -> None:
    backup_format = manifest.get("format")
    unsupported = UNSUPPORTED_RESTORE[target.dialect]
    if backup_format == "csv":
        raise errors.InvalidRequest(unsupported, "CSV backups are export only")
    if backup_format == "json":
        return  # converted for the target's engine first (either source engine)
    if backup_format == "sqlite" and target.dialect != "sqlite":
        raise errors.InvalidRequest(unsupported, "a SQLite snapshot restores only into SQLite")
    if backup_format == "sql" and manifest.get("dialect") != target.dialect:
        raise errors.InvalidRequest(
            unsupported, f"SQL written for {manifest.get('dialect')}; restore its JSON backup across engines")
    if backup_format not in ("sql", "sqlite"):
        raise errors.InvalidRequest(unsupported, f"format {backup_format!r}")


def _target_exists(target: Target) -> bool:
    if target.dialect == "sqlite":
        return Path(target.url.database or "").is_file()
    return True


def _apply(target: Target, path: Path, manifest: dict[str, Any], tools: ClientTools) -> None:
    include_data = manifest.get("include_data", "full")
    if target.dialect == "postgresql":
        native("postgresql").restore_sql(target, path, include_data, list(manifest.get("table_rows", {})), tools,
                                         restricted=manifest.get("origin") == "upload")
    elif manifest["format"] == "sqlite":
        native("sqlite").restore_snapshot(target, path)
    else:
        native("sqlite").restore_sql(target, path, include_data)
