"""Backups and restores as plans of steps: Celery chains them, `--local` runs them in a loop.

A step names a task of the public contract (`backups.convert_json_to_sql`, ...) and its keyword
arguments; each step after the first also receives the previous step's result as its first
argument, as in a Celery chain. Building the plan here, once, means a chain and a local run do
the same work in the same order and return the same fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backup_engine import errors
from backup_engine.storage.catalogue import Catalogue, Scope

CREATE = "backups.create"
CONVERT = "backups.convert_json_to_sql"
ATTACH_COMPANION = "backups.attach_companion"
RESTORE = "backups.restore"
RESTORE_CONVERTED = "backups.restore_converted"


@dataclass(frozen=True)
class Step:
    task: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """Steps to run after the current one; empty when the current result is the final one."""

    steps: tuple[Step, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.steps)


def after_backup(manifest: Mapping[str, Any]) -> Plan:
    """A JSON backup goes on: its `.sql` twin is made, then named in the JSON's result (unless the
    engine made the twin alongside the JSON, and the result names it already)."""
    if manifest.get("format") != "json" or manifest.get("companions"):
        return Plan()
    return Plan((Step(CONVERT, {"backup_filename": manifest["backup_filename"]}),
                 Step(ATTACH_COMPANION, {"manifest": dict(manifest)})))


def with_companion(twin: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The last step of a JSON backup: its manifest, naming its `.sql` twin under `companions`."""
    return {**manifest, "companions": [*manifest.get("companions", []), twin["backup_filename"]]}


def find_twin(catalogue: Catalogue, backup_filename: str, dialect: str, scope: Scope | None) -> str | None:
    """A published `.sql` converted from this JSON backup for `dialect`, if one still checks out."""
    for entry in catalogue.listing(scope=scope).entries:
        manifest = entry.manifest
        if manifest.converted_from == backup_filename and manifest.dialect == dialect:
            try:
                catalogue.check(entry)
            except errors.BackupError:
                continue
            return entry.name
    return None


def restore_plan(catalogue: Catalogue, backup_filename: str, target: str, dialect: str,
                 scope: Scope | None, *, source_target: str | None = None) -> tuple[Plan, str | None]:
    """How to restore `backup_filename` into a target of engine `dialect`.

    Returns the plan and, for a JSON backup whose twin already exists, the twin to restore in
    its place (a one-step plan). A JSON backup without a twin is converted first, then restored.
    """
    entry = catalogue.entry(backup_filename)
    where = {"target": target, **({"source_target": source_target} if source_target else {})}
    if entry.manifest.format != "json":
        return Plan((Step(RESTORE, {"backup_filename": backup_filename, **where}),)), None
    catalogue.check(entry)  # a bad JSON fails here, before any step
    twin = find_twin(catalogue, backup_filename, dialect, scope)
    if twin is not None:
        return Plan((Step(RESTORE, {"backup_filename": twin, **where}),)), twin
    return Plan((Step(CONVERT, {"backup_filename": backup_filename, "dialect": dialect}),
                 Step(RESTORE_CONVERTED, {"source": backup_filename, **where}))), None


def restored_from_json(result: Mapping[str, Any], source: str, converted: str) -> dict[str, Any]:
    """A restore's result, naming the JSON backup it came from and the `.sql` that was run."""
    return {**result, "backup_filename": source, "restored_file": source, "converted_file": converted}


def run_locally(plan: Plan, operations: Mapping[str, Callable[..., Any]], first: Any = None) -> Any:
    """Run the steps in this process, each on the previous result (what a chain does)."""
    result = first
    for index, step in enumerate(plan.steps):
        operation = operations[step.task]
        result = operation(**step.kwargs) if index == 0 and first is None else operation(result, **step.kwargs)
    return result
