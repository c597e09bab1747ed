"""Thin Celery tasks over `tasks.operations`: retries, progress, stable names.

Transient failures (a server or the lock store unreachable) retry through Celery's own
`retry` with exponential backoff and full jitter, as configured; everything else fails at
once, and its message is what the result backend and Flower show.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import Task, chain, shared_task
from celery.utils.time import get_exponential_backoff_interval

from backup_engine.convert import with_companion
from backup_engine.errors import BackupError
from config.settings import Settings, load_settings
from tasks import operations

_settings: Settings | None = None


def settings() -> Settings:
    """Settings read once per worker process (validated when the worker starts)."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def reporter(task: Task) -> Callable[..., None]:
    """A progress sink that shows the running phase and counters in Flower (state PROGRESS)."""

    def report(**meta: Any) -> None:
        if task.request.id and not task.request.is_eager:
            task.update_state(state="PROGRESS", meta=meta)

    return report


def retrying(body: Callable[..., Any]) -> Callable[..., Any]:
    """Run the task body; on a transient engine error, retry it later with backoff."""

    @wraps(body)
    def run(self: Task, *args: Any, **kwargs: Any) -> Any:
        try:
            return body(self, *args, **kwargs)
        except BackupError as exc:
            if not exc.transient:
                raise
            policy = settings().retry
            countdown = get_exponential_backoff_interval(policy.backoff_s, self.request.retries,
                                                         policy.backoff_max_s, full_jitter=True)
            raise self.retry(exc=exc, countdown=max(countdown, 1), max_retries=policy.max_retries) from exc

    return run


@shared_task(name="backups.create", bind=True)
@retrying
def create(self: Task, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto") -> dict[str, Any]:
    """A backup. A JSON one goes on as a chain of visible, separately retried steps:
    `convert_json_to_sql` makes its `.sql` twin, `attach_companion` names it in the result
    (which the caller of this task id receives: `replace` hands the id down the chain)."""
    manifest = operations.create(settings(), target=target, format=format, include_data=include_data,
                                 method=method, progress=reporter(self), with_twin=False)
    if format != "json":
        return manifest
    raise self.replace(chain(convert_json_to_sql.si(backup_filename=manifest["backup_filename"]),
                             attach_companion.s(manifest)))


@shared_task(name="backups.convert_json_to_sql", bind=True)
@retrying
def convert_json_to_sql(self: Task, backup_filename: str, dialect: str | None = None) -> dict[str, Any]:
    return operations.convert(settings(), backup_filename=backup_filename, dialect=dialect,
                              progress=reporter(self))


@shared_task(name="backups.attach_companion")
def attach_companion(twin: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The last step of a JSON backup's chain: the JSON manifest, naming its `.sql` twin."""
    return with_companion(manifest, twin)


@shared_task(name="backups.restore", bind=True)
@retrying
def restore(self: Task, backup_filename: str, target: str = "default") -> dict[str, Any]:
    """A restore. A JSON backup is restored through its `.sql` for the target's engine: an
    existing twin that verifies, or else a chain `convert_json_to_sql -> restore_converted`."""
    current = settings()
    if not str(backup_filename).endswith(".json"):
        return operations.restore(current, backup_filename=backup_filename, target=target, progress=reporter(self))
    dialect = current.target(target).dialect
    operations.store_for(current).verified(backup_filename)  # a bad name or file fails here, before any step
    twin = operations.find_twin(current, backup_filename, dialect)
    if twin is not None:
        result = operations.restore(current, backup_filename=twin, target=target, progress=reporter(self))
        return restored_from_json(result, backup_filename, twin)
    raise self.replace(chain(convert_json_to_sql.si(backup_filename=backup_filename, dialect=dialect),
                             restore_converted.s(target=target, source=backup_filename)))


@shared_task(name="backups.restore_converted", bind=True)
@retrying
def restore_converted(self: Task, converted: dict[str, Any], target: str, source: str) -> dict[str, Any]:
    """Restore the `.sql` converted from JSON backup `source`; the result names both files."""
    result = operations.restore(settings(), backup_filename=converted["backup_filename"], target=target,
                                progress=reporter(self))
    return restored_from_json(result, source, converted["backup_filename"])


def restored_from_json(result: dict[str, Any], source: str, converted: str) -> dict[str, Any]:
    return {**result, "backup_filename": source, "restored_file": source, "converted_file": converted}


@shared_task(name="backups.restore_upload", bind=True)
@retrying
def restore_upload(self: Task, path: str, target: str = "default") -> dict[str, Any]:
    return operations.restore_upload(settings(), path=path, target=target, progress=reporter(self))


@shared_task(name="backups.verify", bind=True)
@retrying
def verify(self: Task, backup_filename: str) -> dict[str, Any]:
    return operations.verify(settings(), backup_filename=backup_filename)


@shared_task(name="backups.verify_latest", bind=True)
@retrying
def verify_latest(self: Task, target: str | None = None) -> list[dict[str, Any]]:
    return operations.verify_latest(settings(), target=target)


@shared_task(name="backups.prune")
def prune(target: str | None = None) -> dict[str, Any]:
    return operations.prune(settings(), target=target)


@shared_task(name="backups.list")
def list_backups(target: str | None = None) -> list[dict[str, Any]]:
    return operations.list_backups(settings(), target=target)
