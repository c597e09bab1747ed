"""Thin Celery tasks over `tasks.operations`: retries, progress, stable names.

Transient failures (a server that is down) retry with exponential backoff and jitter;
everything else fails at once, and its message is what the result backend and Flower show.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from backup_engine.errors import TargetUnavailable
from config.settings import Settings, load_settings
from tasks import operations

RETRY_POLICY: dict[str, Any] = {
    "autoretry_for": (TargetUnavailable,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
}

_settings: Settings | None = None


def settings() -> Settings:
    """Settings read once per worker process (validated when the worker starts)."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def reporter(task: Task):
    """A progress sink that shows the running phase and counters in Flower (state PROGRESS)."""

    def report(**meta: Any) -> None:
        if task.request.id and not task.request.is_eager:
            task.update_state(state="PROGRESS", meta=meta)

    return report


@shared_task(name="backups.create", bind=True, **RETRY_POLICY)
def create(self: Task, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto") -> dict[str, Any]:
    return operations.create(settings(), target=target, format=format, include_data=include_data, method=method,
                             progress=reporter(self))


@shared_task(name="backups.restore", bind=True, **RETRY_POLICY)
def restore(self: Task, backup_filename: str, target: str = "default") -> dict[str, Any]:
    return operations.restore(settings(), backup_filename=backup_filename, target=target, progress=reporter(self))


@shared_task(name="backups.list")
def list_backups(target: str | None = None) -> list[dict[str, Any]]:
    return operations.list_backups(settings(), target=target)
