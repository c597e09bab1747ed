"""Verifying a backup: its checksum, then a restore drill into a scratch database.

A backup is only as good as its last restore. The drill restores the file into a database
made for the purpose (PostgreSQL: a new database on the target's server, dropped after;
SQLite: a temp file) and compares every table's row count with the manifest.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg2

from backup_engine import errors
from backup_engine.artifacts import BackupStore
from backup_engine.dialects import native
from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target


def verify_backup(store: BackupStore, backup_filename: str, targets: Mapping[str, Target],
                  tools: ClientTools = ClientTools()) -> dict[str, Any]:
    started = time.monotonic()
    path, manifest = store.verified(backup_filename)
    result: dict[str, Any] = {"backup_filename": path.name, "checksum_ok": True, "format": manifest.get("format"),
                              "target": manifest.get("target")}
    skipped = _drill_skipped(manifest)
    if skipped:
        result.update(drill_ok=None, drill=f"skipped: {skipped}")
    else:
        expected: dict[str, int] = manifest.get("table_rows", {})
        try:
            restored = _drill(path, manifest, _source_target(targets, manifest), tools)
        except errors.RestoreError as exc:
            raise errors.ArtifactError(errors.VERIFY_FAILED, f"{path.name}: the restore drill failed: {exc}") from exc
        mismatches = [f"{name}: manifest {count}, restored {restored.get(name)}"
                      for name, count in expected.items() if restored.get(name) != count]
        if mismatches:
            raise errors.ArtifactError(errors.VERIFY_FAILED, f"{path.name}: " + "; ".join(mismatches[:20]))
        result.update(drill_ok=True, table_rows=restored, rows=sum(restored.values()))
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _drill_skipped(manifest: dict[str, Any]) -> str | None:
    if manifest.get("format") not in ("sql", "sqlite"):
        return f"no restore drill for format {manifest.get('format')!r}"
    if manifest.get("include_data") == "data":
        return "a data-only backup restores only over its schema"
    return None


def _source_target(targets: Mapping[str, Target], manifest: dict[str, Any]) -> Target:
    name = manifest.get("target")
    if name not in targets:
        raise errors.InvalidRequest(errors.UNKNOWN_TARGET, f"{name!r}: the backup's target is no longer configured")
    target = targets[name]
    if target.dialect != manifest.get("dialect"):
        raise errors.InvalidRequest(errors.TARGET_MISMATCH, f"{name!r} is now {target.dialect}")
    return target


def _drill(path: Path, manifest: dict[str, Any], target: Target, tools: ClientTools) -> dict[str, int]:
    include_data = manifest.get("include_data", "full")
    if target.dialect == "postgresql":
        postgresql = native("postgresql")
        try:
            with postgresql.scratch_database(target) as scratch:
                postgresql.restore_sql(scratch, path, include_data, [], tools)
                return postgresql.count_rows(scratch, list(manifest.get("table_rows", {})))
        except psycopg2.Error as exc:
            raise errors.ArtifactError(errors.VERIFY_FAILED, f"scratch database: {exc}".strip()) from exc
    sqlite = native("sqlite")
    with tempfile.TemporaryDirectory(prefix="bw-drill-") as folder:
        scratch_path = Path(folder) / "drill.sqlite3"
        scratch = Target.from_url(f"{target.name}:drill", f"sqlite:///{scratch_path}")
        if manifest["format"] == "sqlite":
            sqlite.restore_snapshot(scratch, path)
        else:
            sqlite.restore_sql(scratch, path, include_data)
        return sqlite.verified_row_counts(scratch_path)
