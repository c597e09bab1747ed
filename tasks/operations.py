"""The public contract as plain functions: names in, engine calls, dicts out.

Both the Celery tasks and the CLI's `--local` mode call these, so a task and a local run do
exactly the same work. No Celery and no SQL here: arguments are checked, the named target is
looked up in the settings (a caller never passes a URL), the target's lock is held while it is
read or written, and the engine and the catalogue do the rest. Plans of several steps
(`backup_engine.plan`) run here step by step for `--local`; the tasks chain the same steps.
"""

from __future__ import annotations

import logging
from typing import Any

from backup_engine import errors
from backup_engine.backup import create_backup
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
from backup_engine.registry import engine_class, engine_for
from backup_engine.restore import check_provenance, restore_backup
from backup_engine.retention import CLOCK_SKEW, is_side, newest
from backup_engine.retention import prune as prune_catalogue
from backup_engine.storage import open_store
from backup_engine.storage.catalogue import Catalogue, Encryption, Entry, Scope, utc_now
from backup_engine.storage.encryption import load_identities
from backup_engine.storage.records import OPERATIONS, read_record, write_record
from backup_engine.targets import Target
from backup_engine.trust.manifest import Signer
from backup_engine.trust.uploads import import_upload
from backup_engine.verify import verify_backup
from config.settings import Settings
from tasks.locks import target_lock
from tasks.notify import notify

logger = logging.getLogger(__name__)

_catalogues: dict[int, tuple[Settings, Catalogue]] = {}


def catalogue_for(settings: Settings) -> Catalogue:
    """The catalogue of the configured store (one per settings object, reused)."""
    known = _catalogues.get(id(settings))
    if known is None or known[0] is not settings:
        store = open_store(settings.storage_url, scratch_dir=settings.backup_dir)
        identity_file = settings.identity_file
        encryption = Encryption(recipients=settings.recipients,
                                identities=(lambda: load_identities(identity_file)) if identity_file else None)
        catalogue = Catalogue(store, Signer(settings.signing_key), compression=settings.compression,
                              encryption=encryption)
        known = _catalogues[id(settings)] = (settings, catalogue)
    return known[1]


def engine_of(settings: Settings, target: Target) -> Engine:
    return engine_for(target, settings.tools, catalogue_for(settings).store.scratch_dir, settings.jobs)


def scope_for(settings: Settings) -> Scope:
    """This deployment's view of the store: its targets, named with its prefix."""
    return Scope(targets=frozenset(settings.targets), prefix=settings.file_prefix)


def prefix_for(settings: Settings, target: Target) -> str:
    return scope_for(settings).prefix_for(target.name)


# --- backups ------------------------------------------------------------------------------------
def warm_up(settings: Settings) -> None:
    """What the targets' engines and conversions import on first use, imported now (a worker's start)."""
    from backup_engine import convert  # noqa: F401

    for dialect in sorted({target.dialect for target in settings.targets.values()}):
        engine_class(dialect).warm_up()


def create(settings: Settings, *, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto", csv_safe: bool = False, progress: Progress = no_progress, with_twin: bool = True,
           lock_wait: float | None = None, twin_alongside: bool = True) -> dict[str, Any]:
    """A backup; a JSON one also gets its `.sql` twin (named under `companions`): made alongside
    it where the engine can, else converted afterwards unless the caller runs the rest of the plan
    itself (the Celery chain does, as steps of their own). `twin_alongside=False` (benches, tests)
    makes the JSON alone first."""
    chosen = settings.target(target)
    if not isinstance(csv_safe, bool):
        raise errors.InvalidRequest(errors.BAD_ARGUMENT, "csv_safe must be true or false")
    engine = engine_of(settings, chosen)
    with target_lock(settings, engine, lock_wait):
        entry = create_backup(engine, catalogue_for(settings), format=format,
                              include_data=include_data, method=method, prefix=prefix_for(settings, chosen),
                              csv_safe=csv_safe, progress=progress, twin_alongside=twin_alongside)
    manifest = entry.as_result()
    rest = after_backup(manifest)
    if not with_twin or not rest:
        return manifest
    return run_locally(rest, local_steps(settings, progress))


def convert(settings: Settings, *, backup_filename: str, dialect: str | None = None,
            progress: Progress = no_progress) -> dict[str, Any]:
    """The `.sql` of a JSON backup, published beside it (for its own engine or another)."""
    from backup_engine.convert import convert_backup  # SQLAlchemy's: imported by the paths that use it

    return convert_backup(catalogue_for(settings), backup_filename, dialect, progress=progress).as_result()


def attach_companion(twin: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    return with_companion(twin, manifest)


# --- restores -----------------------------------------------------------------------------------
def restore_file(settings: Settings, *, backup_filename: str, target: str = "default",
                 source_target: str | None = None, progress: Progress = no_progress,
                 lock_wait: float | None = None) -> dict[str, Any]:
    """Restore one file that restores as it is (not a JSON backup)."""
    chosen = settings.target(target)
    catalogue = catalogue_for(settings)
    elsewhere = check_provenance(catalogue.entry(backup_filename), scope_for(settings), chosen.name, source_target)
    engine = engine_of(settings, chosen)
    with target_lock(settings, engine, lock_wait):
        result = restore_backup(engine, catalogue, backup_filename,
                                prefix=prefix_for(settings, chosen), allow_superuser=settings.upload_allow_superuser,
                                max_statement_bytes=settings.upload_max_statement_bytes, progress=progress)
    return {**result, **({"restored_from": elsewhere} if elsewhere else {})}


def restore_converted(settings: Settings, converted: dict[str, Any], *, target: str, source: str,
                      source_target: str | None = None, progress: Progress = no_progress,
                      lock_wait: float | None = None) -> dict[str, Any]:
    """Restore the `.sql` converted from JSON backup `source`; the result names both files."""
    result = restore_file(settings, backup_filename=converted["backup_filename"], target=target,
                          source_target=source_target, progress=progress, lock_wait=lock_wait)
    return restored_from_json(result, source, converted["backup_filename"])


def plan_restore(settings: Settings, *, backup_filename: str, target: str = "default",
                 source_target: str | None = None) -> tuple[Plan, str | None]:
    """How a restore of `backup_filename` goes, and the twin it uses if any (a bad name, a bad file
    or a backup of somewhere else asked for without saying so fails here, before any step)."""
    chosen = settings.target(target)
    catalogue = catalogue_for(settings)
    check_provenance(catalogue.entry(backup_filename), scope_for(settings), chosen.name, source_target)
    return restore_plan(catalogue, backup_filename, chosen.name, chosen.dialect, scope_for(settings),
                        source_target=source_target)


def restore(settings: Settings, *, backup_filename: str, target: str = "default", source_target: str | None = None,
            progress: Progress = no_progress) -> dict[str, Any]:
    """A restore; a JSON backup through its `.sql` for the target's engine (its twin if one
    still checks out, else converted first)."""
    plan, twin = plan_restore(settings, backup_filename=backup_filename, target=target, source_target=source_target)
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
                             prefix=prefix_for(settings, chosen),
                             max_statement_bytes=settings.upload_max_statement_bytes)
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


# --- outcomes: recorded in the store, and told -----------------------------------------------------
def report(settings: Settings, operation: str, target: object, outcome: str, reason: str | None = None,
           file: str | None = None) -> None:
    """A final outcome (a failure after the last retry, a verify that passed): recorded in the store
    for `status` and `metrics` on every worker, and notified. Neither may fail the caller."""
    if not isinstance(target, str) or target not in settings.targets:
        return  # an unknown target: the caller's own error says so; nothing to record it under
    if outcome == "failure" or operation == "verify":
        try:
            write_record(catalogue_for(settings), prefix_for(settings, settings.targets[target]), target, operation,
                         outcome, reason, file)
        except Exception as exc:  # noqa: BLE001 - the store may be what failed
            logger.warning("outcome not recorded (%s: %s)", type(exc).__name__, exc)
    notify(settings, operation, target, outcome, reason, file)


def check_stale(settings: Settings) -> list[str]:
    """Targets without a backup newer than BACKUP_STALE_AFTER_H; each is notified (beat, hourly)."""
    stale = [name for name, state in target_states(settings).items() if state["stale"]]
    for name in stale:
        notify(settings, "backup", name, "stale", f"no backup newer than {settings.stale_after_h:g} h")
    return stale


def target_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """What `status` and `metrics` show per target, read from the store (manifests and records)."""
    catalogue = catalogue_for(settings)
    listing = catalogue.listing(scope=scope_for(settings))
    now = utc_now()
    states: dict[str, dict[str, Any]] = {}
    for name, chosen in sorted(settings.targets.items()):
        entries = [entry for entry in listing.entries if entry.manifest.target == name]
        primary = [entry for entry in entries if not is_side(entry) and not entry.manifest.converted_from]
        latest = newest(primary, now)
        by_format: dict[str, Any] = {}
        for entry in primary:
            if entry.manifest.format not in by_format and entry.manifest.created <= now + CLOCK_SKEW:
                by_format[entry.manifest.format] = entry.manifest
        prefix = prefix_for(settings, chosen)
        failures = {operation: read_record(catalogue, prefix, name, operation, "failure") for operation in OPERATIONS}
        verified = read_record(catalogue, prefix, name, "verify", "success")
        age_h = (now - latest.manifest.created).total_seconds() / 3600 if latest else None
        states[name] = {"latest": latest.manifest if latest else None, "age_h": age_h, "by_format": by_format,
                        "kept": len(primary), "failures": failures, "verified": verified,
                        "stale": age_h is None or age_h > settings.stale_after_h}
    return states


def backup_target(settings: Settings, backup_filename: str) -> str | None:
    """The target a backup was taken of (its drill runs on that target's server), or None."""
    try:
        return catalogue_for(settings).entry(backup_filename).manifest.target
    except errors.BackupError:
        return None  # the task itself reports what is wrong with the name


def verify(settings: Settings, *, backup_filename: str) -> dict[str, Any]:
    result = verify_backup(catalogue_for(settings), backup_filename, lambda entry: _source_engine(settings, entry),
                           allow_superuser=settings.upload_allow_superuser,
                           max_statement_bytes=settings.upload_max_statement_bytes)
    if result.get("drill_ok"):
        report(settings, "verify", result.get("target"), "success", file=result["backup_filename"])
    return result


def verify_latest(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    """The restore drill of each target's newest primary backup by our clock (what beat runs)."""
    names = [target] if target is not None else sorted(settings.targets)
    results = []
    for name in names:
        chosen = settings.target(name)
        entries = catalogue_for(settings).listing(scope=scope_for(settings), target=chosen.name).entries
        found = newest([entry for entry in entries if not is_side(entry) and not entry.manifest.converted_from])
        if found is not None:
            results.append(verify(settings, backup_filename=found.name))
    return results


def prune(settings: Settings, *, target: str | None = None) -> dict[str, Any]:
    """Retention, and the deployment's artifacts a dead writer left without a manifest (`orphans`)."""
    if target is not None:
        settings.target(target)
    catalogue = catalogue_for(settings)
    result = prune_catalogue(catalogue, settings.retention, scope=scope_for(settings), target=target)
    return {**result, "orphans": catalogue.sweep_orphans(scope_for(settings))}


def sweep_store(settings: Settings) -> list[str]:
    """What dead writers left in the store and scratch space (run as a worker starts)."""
    return catalogue_for(settings).sweep(scope=scope_for(settings))


def sweep_targets(settings: Settings) -> dict[str, list[str]]:
    """What restores killed mid-way left on each target's server (scratch databases, a half-done
    swap), each engine touching only what no live worker holds. A target that cannot be reached
    now is left for the sweep its next backup or restore starts with."""
    swept: dict[str, list[str]] = {}
    for name, target in settings.targets.items():
        try:
            swept[name] = engine_of(settings, target).sweep()
        except errors.BackupError as exc:
            logger.warning("sweep of target %s skipped: %s", name, exc)
    return swept


def list_backups(settings: Settings, *, target: str | None = None) -> list[dict[str, Any]]:
    if target is not None:
        settings.target(target)
    listing = catalogue_for(settings).listing(scope=scope_for(settings), target=target)
    return [entry.as_result() for entry in listing.entries]
