"""Restoring a backup into a target: check, take a safety backup, then all or nothing.

The backup's manifest is read and checked against the schema; the engine streams the content,
and commits only after the content matched the manifest's checksums. A destructive restore is
preceded by a full backup of the target (the `safety_backup`), so even a correct restore of the
wrong file can be undone. The safety backup is taken while the engine builds the restore beside
the target; the engine changes the target only once it is made (`Engine.restore`'s `ready`).
A file whose manifest is not ours (an upload, or a manifest that does not verify) goes through
the engine's upload gate, never straight in.

JSON backups are restored through their `.sql` for the target's engine (`plan.restore_plan`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from backup_engine import errors
from backup_engine.backup import safety_backup
from backup_engine.dumpinfo import Progress, no_progress
from backup_engine.engines.base import MAX_STATEMENT_BYTES, Engine, RestoreRequest, no_wait
from backup_engine.storage.catalogue import Catalogue, Entry, Scope, prefix_of


def check_provenance(entry: Entry, scope: Scope, target: str, source_target: str | None) -> dict[str, str] | None:
    """A backup of another target or deployment restores only when asked for by name
    (`source_target`); returns where it came from then, None for one of the target's own."""
    manifest = entry.manifest
    origin = {"target": manifest.target, "prefix": prefix_of(entry.name) or manifest.prefix}
    if manifest.target == target and scope.owns(entry):
        return None
    if source_target != manifest.target:
        raise errors.InvalidRequest(errors.FOREIGN_BACKUP, f"{entry.name} is a backup of target {manifest.target!r} "
                                    f"(prefix {origin['prefix']!r}); to restore it into {target!r} anyway, "
                                    f"say source_target={manifest.target!r}")
    return origin


def restore_request(entry: Entry, allow_superuser: bool = False,
                    max_statement_bytes: int = MAX_STATEMENT_BYTES) -> RestoreRequest:
    manifest = entry.manifest
    return RestoreRequest(format=manifest.format, include_data=manifest.include_data, table_rows=manifest.table_rows,
                          trusted=entry.trusted, object_counts=manifest.object_counts,
                          allow_superuser=allow_superuser, max_statement_bytes=max_statement_bytes,
                          converted=entry.signed and manifest.converted_from is not None,
                          content_bytes=manifest.content_bytes if manifest.content_bytes is not None
                          else manifest.size_bytes)


def restore_backup(engine: Engine, catalogue: Catalogue, backup_filename: str, *, prefix: str | None = None,
                   take_safety_backup: bool = True, allow_superuser: bool = False,
                   max_statement_bytes: int = MAX_STATEMENT_BYTES, progress: Progress = no_progress) -> dict[str, Any]:
    """Make the engine's target hold exactly what the backup holds; returns what was restored."""
    started = time.monotonic()
    progress(phase="verify", backup_filename=backup_filename)
    entry = catalogue.entry(backup_filename)
    manifest = entry.manifest
    if manifest.format == "json":
        raise errors.InvalidRequest(engine.unsupported_restore, "a JSON backup restores through its .sql "
                                    "(convert it first)")
    engine.check_restorable(manifest.format, manifest.dialect)
    catalogue.readable(entry)
    catalogue.check(entry)  # a stored object that was changed fails here, before anything is touched
    request = restore_request(entry, allow_superuser, max_statement_bytes)
    safety = SafetyBackup(engine, catalogue, prefix, entry.name) if take_safety_backup else None
    if safety is not None:
        progress(phase="safety_backup")
        if not engine.safety_backup_alongside:
            safety.wait()
    progress(phase="restore")
    try:
        outcome = engine.restore(catalogue.source(entry), request, progress, safety.wait if safety else no_wait)
    finally:
        if safety is not None:
            safety.join()  # never left running: the target's lock is let go after this
    return {
        "backup_filename": entry.name,
        "restored_file": entry.name,
        "target": engine.target.name,
        "tables": manifest.tables,
        "rows": manifest.rows,
        "include_data": manifest.include_data,
        "duration_s": round(time.monotonic() - started, 3),
        "safety_backup": safety.wait() if safety else None,
        **outcome.details,
    }


class SafetyBackup:
    """The safety backup, taken on a thread of its own while the engine builds the restore.

    An engine changes its target only after `ready` (the swap of what it built beside, or the
    start of a load into the target itself), so the safety backup reads the target as it was,
    however long the build takes, and the build does not wait for it. `wait` is that `ready`: it
    returns the backup's result once made, and raises its failure, which stops the restore with
    the target untouched. An engine whose backups refuse to run beside a restore of their target
    (`safety_backup_alongside` false: MySQL's) has it waited for before the restore starts."""

    def __init__(self, engine: Engine, catalogue: Catalogue, prefix: str | None, restoring: str) -> None:
        self._result: dict[str, Any] | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._take, args=(engine, catalogue, prefix, restoring),
                                        name="safety-backup", daemon=True)
        self._thread.start()

    def _take(self, engine: Engine, catalogue: Catalogue, prefix: str | None, restoring: str) -> None:
        try:
            self._result = safety_backup(engine, catalogue, prefix, restoring)
        except BaseException as exc:  # noqa: BLE001 - raised in the restoring thread, by `wait`
            self._failure = exc

    def join(self) -> None:
        self._thread.join()

    def wait(self) -> dict[str, Any] | None:
        """The safety backup's result (None when the target held nothing yet); raises its failure."""
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._result
