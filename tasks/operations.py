"""The public contract as plain functions: names in, engine calls, dicts out.

Both the Celery tasks and the CLI's `--local` mode call these, so a task and a local run do
exactly the same work. No Celery and no SQL here: arguments are checked, the named target is
looked up in the settings (a caller never passes a URL), the target's lock is held while it is
read or written, and the engine and the catalogue do the rest. Plans of several steps
(`backup_engine.plan`) run here step by step for `--local`; the tasks chain the same steps.
"""

from __future__ import annotations

from typing import Any

from backup_engine import errors
from backup_engine.backup import create_backup
from backup_engine.convert import convert_backup
from backup_engine.dumpinfo import Progress, no_progress
from backup_engine.engines.base import Engine
from backup_engine.plan import (
    ATTACH_COMPANION,
    CONVERT,
    CREATE,
    RESTORE,
    RESTORE_CONVERTED,
    Plan,
    after_backup,
    restore_plan,
    restored_from_json,
    run_locally,
    with_companion,
)
from backup_engine.registry import engine_for
from backup_engine.restore import restore_backup
from backup_engine.retention import prune as prune_catalogue
from backup_engine.storage import open_store
from backup_engine.storage.catalogue import Catalogue, Entry
from backup_engine.targets import Target
from backup_engine.trust.manifest import Signer
from backup_engine.trust.uploads import import_upload
from backup_engine.verify import verify_backup
from config.settings import Settings
from tasks.locks import target_lock

_catalogues: dict[int, tuple[Settings, Catalogue]] = {}


def catalogue_for(settings: Settings) -> Catalogue:
    """The catalogue of the configured store (one per settings object, reused)."""
    known = _catalogues.get(id(settings))
    if known is None or known[0] is not settings:
        store = open_store(settings.storage_url, scratch_dir=settings.backup_dir)
        known = _catalogues[id(settings)] = (settings, Catalogue(store, Signer(settings.signing_key)))
    return known[1]


def engine_of(settings: Settings, target: Target) -> Engine:
    return engine_for(target, settings.tools, catalogue_for(settings).store.scratch_dir)


def prefix_for(settings: Settings, target: Target) -> str:
    return settings.file_prefix or target.name


# --- backups ------------------------------------------------------------------------------------
def create(settings: Settings, *, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto", progress: Progress = no_progress, with_twin: bool = True) -> dict[str, Any]:
    """A backup; a JSON one also gets its `.sql` twin (named under `companions`) unless the
    caller runs the rest of the plan itself (the Celery chain does, as steps of their own)."""
    chosen = settings.target(target)
    with target_lock(settings, chosen.name):
        entry = create_backup(engine_of(settings, chosen), catalogue_for(settings), format=format,
                              include_data=include_data, method=method, prefix=prefix_for(settings, chosen),
                              progress=progress)
    manifest = entry.as_result()
    rest = after_backup(manifest)
    if not with_twin or not rest:
        return manifest
    return run_locally(rest, local_steps(settings, progress))


def convert(settings: Settings, *, backup_filename: str, dialect: str | None = None,
            progress: Progress = no_progress) -> dict[str, Any]:
    """The `.sql` of a JSON backup, published beside it (for its own engine or another)."""
    return convert_backup(catalogue_for(settings), backup_filename, dialect, progress=progress).as_result()


def attach_companion(twin: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    return with_companion(twin, manifest)


# --- restores -----------------------------------------------------------------------------------
def restore_file(settings: Settings, *, backup_filename: str, target: str = "default",
                 progress: Progress = no_progress) -> dict[str, Any]:
    """Restore one file that restores as it is (not a JSON backup)."""
    chosen = settings.target(target)
    with target_lock(settings, chosen.name):
        return restore_backup(engine_of(settings, chosen), catalogue_for(settings), backup_filename,
                              prefix=prefix_for(settings, chosen), progress=progress)


def restore_converted(settings: Settings, converted: dict[str, Any], *, target: str, source: str,
                      progress: Progress = no_progress) -> dict[str, Any]:
    """Restore the `.sql` converted from JSON backup `source`; the result names both files."""
    result = restore_file(settings, backup_filename=converted["backup_filename"], target=target, progress=progress)
    return restored_from_json(result, source, converted["backup_filename"])


def plan_restore(settings: Settings, *, backup_filename: str, target: str = "default") -> Plan:
    """How a restore of `backup_filename` goes (a bad name or file fails here, before any step)."""
    chosen = settings.target(target)
    plan, _ = restore_plan(catalogue_for(settings), backup_filename, chosen.name, chosen.dialect, None)
    return plan


def restore(settings: Settings, *, backup_filename: str, target: str = "default",
            progress: Progress = no_progress) -> dict[str, Any]:
    """A restore; a JSON backup through its `.sql` for the target's engine (its twin if one
    still checks out, else converted first)."""
    chosen = settings.target(target)
    plan, twin = restore_plan(catalogue_for(settings), backup_filename, chosen.name, chosen.dialect, None)
    result = run_locally(plan, local_steps(settings, progress))
    if twin is not None:
        return restored_from_json(result, backup_filename, twin)
    return result


def restore_upload(settings: Settings, *, path: str, target: str = "default",
                   progress: Progress = no_progress) -> dict[str, Any]:
    """Import the upload as a backup of its own (kept, with a manifest), then restore that."""
    chosen = settings.target(target)
    progress(phase="import", path=path)
    imported = import_upload(catalogue_for(settings), engine_of(settings, chosen), settings.upload_dir, path,
                             prefix=prefix_for(settings, chosen))
    result = restore(settings, backup_filename=imported.name, target=target, progress=progress)
    return {**result, "imported_file": imported.name, "uploaded_path": imported.manifest.imported_from}


def local_steps(settings: Settings, progress: Progress = no_progress) -> dict[str, Any]:
    """The operation behind each task a plan names, for running plans in this process."""
    return {
        CREATE: lambda **kw: create(settings, progress=progress, with_twin=False, **kw),
        CONVERT: lambda *prev, **kw: convert(settings, progress=progress, **kw),
        ATTACH_COMPANION: attach_companion,
        RESTORE: lambda *prev, **kw: restore_file(settings, progress=progress, **kw),
        RESTORE_CONVERTED: lambda converted, **kw: restore_converted(settings, converted, progress=progress, **kw),
    }


# --- checks and housekeeping ----------------------------------------------------------------------
def _source_engine(settings: Settings, entry: Entry) -> Engine:
    name = entry.manifest.target
    if name not in settings.targets:
        raise errors.InvalidRequest(errors.UNKNOWN_TARGET, f"{name!r}: the backup's target is no longer configured")
    return engine_of(settings, settings.targets[name])


def verify(settings: Settings, *, backup_filename: str) -> dict[str, Any]:
    return verify_backup(catalogue_for(settings), backup_filename, lambda entry: _source_engine(settings, entry))


def verify_latest(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    """The restore drill of each target's newest backup (what beat runs)."""
    names = [target] if target is not None else sorted(settings.targets)
    results = []
    for name in names:
        chosen = settings.target(name)
        newest = catalogue_for(settings).listing(target=chosen.name).entries
        if newest:
            results.append(verify(settings, backup_filename=newest[0].name))
    return results


def prune(settings: Settings, *, target: str | None = None) -> dict[str, Any]:
    if target is not None:
        settings.target(target)
    return prune_catalogue(catalogue_for(settings), settings.retention, target=target)


def list_backups(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    if target is not None:
        settings.target(target)
    return [entry.as_result() for entry in catalogue_for(settings).listing(target=target).entries]
