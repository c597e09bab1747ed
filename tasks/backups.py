"""Thin Celery tasks over `tasks.operations`: retries, progress, stable names.

Transient failures (a server or the lock store unreachable) retry through Celery's own
`retry` with exponential backoff and full jitter, as configured; everything else fails at
once, and its message is what the result backend and Flower show.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

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
    return operations.create(settings(), target=target, format=format, include_data=include_data, method=method,
                             progress=reporter(self))


@shared_task(name="backups.restore", bind=True)
@retrying
def restore(self: Task, backup_filename: str, target: str = "default") -> dict[str, Any]:
    return operations.restore(settings(), backup_filename=backup_filename, target=target, progress=reporter(self))


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
