"""Thin Celery tasks over `tasks.operations`: retries, progress, stable names, chains.

Transient failures (a server or the lock store unreachable) retry through Celery's own
`retry` with exponential backoff and full jitter, as configured; everything else fails at
once, and its message is what the result backend and Flower show. Work of several steps runs
as the plan `backup_engine.plan` makes, chained: each step a visible, separately retried task,
and the caller of the first task's id receives the last step's result (`replace`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import Task, chain, shared_task
from celery.canvas import Signature
from celery.utils.time import get_exponential_backoff_interval

from backup_engine.errors import BackupError, TargetBusy
from backup_engine.plan import Plan, after_backup, restored_from_json
from config.settings import Settings, load_settings
from tasks import operations

PROGRESS_EVERY_S = 0.5
BUSY_RETRY_S = 5  # how often a task whose target is busy asks again
TASK_LOCK_WAIT_S = 2.0  # how long a task waits for a busy target before it gives its slot back
logger = logging.getLogger(__name__)
_settings: Settings | None = None


def settings() -> Settings:
    """Settings read once per worker process (validated when the worker starts)."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def reporter(task: Task) -> Callable[..., None]:
    """A progress sink that shows the running phase and counters in Flower (state PROGRESS).

    At most a few updates a second, and a result backend that is briefly away (a Redis restart)
    never fails the work: progress is a courtesy, the result is what counts.
    """
    last = {"phase": None, "at": 0.0}

    def report(**meta: Any) -> None:
        if not task.request.id or task.request.is_eager:
            return
        now = time.monotonic()
        if meta.get("phase") == last["phase"] and now - last["at"] < PROGRESS_EVERY_S:
            return
        last.update(phase=meta.get("phase"), at=now)
        try:
            task.update_state(state="PROGRESS", meta=meta)
        except Exception as exc:  # noqa: BLE001 - any backend failure: the work goes on
            logger.warning("progress not recorded (%s): %s", type(exc).__name__, exc)

    return report


def retrying(body: Callable[..., Any]) -> Callable[..., Any]:
    """Run the task body; on a transient engine error, retry it later with backoff. A target that
    is busy is asked again every BUSY_RETRY_S until `BACKUP_LOCK_WAIT_S` has passed: the task gives
    its worker slot back meanwhile instead of holding it while it waits."""

    @wraps(body)
    def run(self: Task, *args: Any, **kwargs: Any) -> Any:
        try:
            return body(self, *args, **kwargs)
        except TargetBusy as exc:
            # each ask costs its wait and its countdown: so many asks fill BACKUP_LOCK_WAIT_S, then "Target busy"
            asks = math.ceil(settings().lock_wait_s / (TASK_LOCK_WAIT_S + BUSY_RETRY_S))
            raise self.retry(exc=exc, countdown=BUSY_RETRY_S, max_retries=asks) from exc
        except BackupError as exc:
            if not exc.transient:
                raise
            policy = settings().retry
            countdown = get_exponential_backoff_interval(policy.backoff_s, self.request.retries,
                                                         policy.backoff_max_s, full_jitter=True)
            raise self.retry(exc=exc, countdown=max(countdown, 1), max_retries=policy.max_retries) from exc

    return run


# The operation each task reports its final failure as (metrics, status, notifications).
OPERATION_OF = {"backups.create": "backup", "backups.restore": "restore", "backups.restore_converted": "restore",
                "backups.restore_upload": "restore", "backups.verify": "verify", "backups.verify_latest": "verify",
                "backups.convert_json_to_sql": "backup"}


class Reported(Task):
    """A task whose final failure (after its last retry; never a retry itself) is recorded in the
    store and notified."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        operation = OPERATION_OF.get(self.name)
        if operation is None:
            return
        target = kwargs.get("target")
        file = kwargs.get("backup_filename") or kwargs.get("path")
        if target is None and file:
            target = operations.backup_target(settings(), file)
        try:
            operations.report(settings(), operation, target, "failure", str(exc), file)
        except Exception as failure:  # noqa: BLE001 - reporting never changes the task's own outcome
            logger.warning("failure not reported (%s)", type(failure).__name__)


def on_site(task: Task, target: object, kwargs: dict[str, Any]) -> None:
    """A task for a target that names a queue runs on a worker of that queue (next to its database):
    one sent elsewhere (by an application that knows only the task's name) is forwarded there, and
    its caller still gets the result under the same task id (`replace`)."""
    chosen = settings().targets.get(target) if isinstance(target, str) else None
    if chosen is None or not chosen.queue:
        return
    if (task.request.delivery_info or {}).get("routing_key") == chosen.queue:
        return
    raise task.replace(task.signature(kwargs=kwargs, queue=chosen.queue))


def chained(plan: Plan, first_takes_previous: bool = False) -> Signature:
    """The plan's steps as a chain of signatures of the tasks they name."""
    from celery import current_app

    signatures = []
    for index, step in enumerate(plan.steps):
        task = current_app.tasks[step.task]
        signatures.append(task.si(**step.kwargs) if index == 0 and not first_takes_previous else task.s(**step.kwargs))
    return chain(*signatures)


@shared_task(name="backups.create", bind=True, base=Reported)
@retrying
def create(self: Task, target: str = "default", format: str = "sql", include_data: str = "full",
           method: str = "auto", csv_safe: bool = False) -> dict[str, Any]:
    """A backup. A JSON one goes on as a chain of visible, separately retried steps:
    `convert_json_to_sql` makes its `.sql` twin, `attach_companion` names it in the result."""
    on_site(self, target, {"target": target, "format": format, "include_data": include_data, "method": method,
                           "csv_safe": csv_safe})
    manifest = operations.create(settings(), target=target, format=format, include_data=include_data,
                                 method=method, csv_safe=csv_safe, progress=reporter(self), with_twin=False,
                                 lock_wait=TASK_LOCK_WAIT_S)
    rest = after_backup(manifest)
    if not rest:
        return manifest
    raise self.replace(chained(rest))


@shared_task(name="backups.convert_json_to_sql", bind=True, base=Reported)
@retrying
def convert_json_to_sql(self: Task, backup_filename: str, dialect: str | None = None) -> dict[str, Any]:
    return operations.convert(settings(), backup_filename=backup_filename, dialect=dialect,
                              progress=reporter(self))


@shared_task(name="backups.attach_companion")
def attach_companion(twin: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The last step of a JSON backup's chain: the JSON manifest, naming its `.sql` twin."""
    return operations.attach_companion(twin, manifest)


@shared_task(name="backups.restore", bind=True, base=Reported)
@retrying
def restore(self: Task, backup_filename: str, target: str = "default",
            source_target: str | None = None) -> dict[str, Any]:
    """A restore. A JSON backup is restored through its `.sql` for the target's engine: an
    existing twin that checks out, or else a chain `convert_json_to_sql -> restore_converted`.
    A backup of another target or deployment restores only with `source_target` naming it."""
    on_site(self, target, {"backup_filename": backup_filename, "target": target, "source_target": source_target})
    current = settings()
    plan, twin = operations.plan_restore(current, backup_filename=backup_filename, target=target,
                                         source_target=source_target)
    if len(plan.steps) > 1:
        raise self.replace(chained(plan))
    result = operations.restore_file(current, progress=reporter(self), lock_wait=TASK_LOCK_WAIT_S,
                                     **plan.steps[0].kwargs)
    return restored_from_json(result, backup_filename, twin) if twin else result


@shared_task(name="backups.restore_converted", bind=True, base=Reported)
@retrying
def restore_converted(self: Task, converted: dict[str, Any], target: str, source: str,
                      source_target: str | None = None) -> dict[str, Any]:
    """Restore the `.sql` converted from JSON backup `source`; the result names both files."""
    on_site(self, target, {"target": target, "source": source, "source_target": source_target})
    return operations.restore_converted(settings(), converted, target=target, source=source,
                                        source_target=source_target, progress=reporter(self),
                                        lock_wait=TASK_LOCK_WAIT_S)


@shared_task(name="backups.restore_upload", bind=True, base=Reported)
@retrying
def restore_upload(self: Task, path: str, target: str = "default") -> dict[str, Any]:
    on_site(self, target, {"path": path, "target": target})
    return operations.restore_upload(settings(), path=path, target=target, progress=reporter(self))


@shared_task(name="backups.verify", bind=True, base=Reported)
@retrying
def verify(self: Task, backup_filename: str) -> dict[str, Any]:
    on_site(self, operations.backup_target(settings(), backup_filename), {"backup_filename": backup_filename})
    return operations.verify(settings(), backup_filename=backup_filename)


@shared_task(name="backups.verify_latest", bind=True, base=Reported)
@retrying
def verify_latest(self: Task, target: str | None = None) -> list[dict[str, Any]]:
    return operations.verify_latest(settings(), target=target)


@shared_task(name="backups.prune")
def prune(target: str | None = None) -> dict[str, Any]:
    return operations.prune(settings(), target=target)


@shared_task(name="backups.list")
def list_backups(target: str | None = None) -> list[dict[str, Any]]:
    return operations.list_backups(settings(), target=target)


@shared_task(name="backups.check_stale")
def check_stale() -> list[str]:
    """Targets with no backup newer than BACKUP_STALE_AFTER_H, each notified (beat runs it hourly)."""
    return operations.check_stale(settings())
