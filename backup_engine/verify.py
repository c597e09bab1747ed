"""Verifying a backup: its checksum, then a restore drill into a scratch database.

A backup is only as good as its last restore. The drill restores the file into a database made
for the purpose (the engine's scratch database on the target's server, or a temp file) through
the same path a restore takes (an untrusted file through the upload gate), then compares every
table's row count, read from the scratch database's own catalog, with the manifest's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from backup_engine import errors
from backup_engine.engines.base import MAX_STATEMENT_BYTES, Engine
from backup_engine.restore import restore_request
from backup_engine.storage.catalogue import Catalogue, Entry


def drill_skipped(entry: Entry, engine: Engine) -> str | None:
    manifest = entry.manifest
    if manifest.format not in engine.restore_formats:
        return f"no restore drill for format {manifest.format!r}"
    if manifest.include_data == "data":
        return "a data-only backup restores only over its schema"
    return None


def verify_backup(catalogue: Catalogue, backup_filename: str, engine_for: Callable[[Entry], Engine], *,
                  allow_superuser: bool = False, max_statement_bytes: int = MAX_STATEMENT_BYTES) -> dict[str, Any]:
    """Check the backup against its manifest, then drill it; `engine_for` gives the engine of the
    target the backup came from (its server hosts the scratch database)."""
    started = time.monotonic()
    entry = catalogue.entry(backup_filename)
    catalogue.readable(entry)
    catalogue.check(entry)
    manifest = entry.manifest
    result: dict[str, Any] = {"backup_filename": entry.name, "checksum_ok": True, "format": manifest.format,
                              "target": manifest.target, "trusted": entry.trusted}
    engine = engine_for(entry)
    if engine.name != manifest.dialect and manifest.format in engine.restore_formats:
        raise errors.InvalidRequest(errors.TARGET_MISMATCH, f"{manifest.target!r} is now {engine.name}")
    skipped = drill_skipped(entry, engine)
    if skipped:
        result.update(drill_ok=None, drill=f"skipped: {skipped}")
    else:
        try:
            restored = engine.drill(catalogue.source(entry),
                                    restore_request(entry, allow_superuser, max_statement_bytes))
        except (errors.RestoreError, errors.InvalidRequest) as exc:  # a failed load, or a gate's refusal
            raise errors.ArtifactError(errors.VERIFY_FAILED, f"{entry.name}: the restore drill failed: {exc}") from exc
        mismatches = [f"{name}: manifest {count}, restored {restored.get(name)}"
                      for name, count in manifest.table_rows.items() if restored.get(name) != count]
        if mismatches:
            raise errors.ArtifactError(errors.VERIFY_FAILED, f"{entry.name}: " + "; ".join(mismatches[:20]))
        result.update(drill_ok=True, table_rows=restored, rows=sum(restored.values()))
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result
