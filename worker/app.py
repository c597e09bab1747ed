"""The Celery application, configured from `config` once, at import.

Settings are validated here, so a misconfigured worker stops at start with a message naming
the variable instead of failing its first task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from billiard import process as pool_processes
from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_shutting_down

from backup_engine.engines.collector import collect_deferred, defer_collection
from config.settings import Settings, load_settings
from worker.schedule import beat_schedule

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULT_EXPIRES_S = 90 * 24 * 3600
SHUTDOWN_GRACE_S = 6.0  # a TERM or INT ends the worker within this (plus the moment it takes to notice)


def visibility_timeout(time_limit_s: int) -> int:
    """Redis redelivers a task whose worker died once this passes: above the time limit, so a
    long task still running is never delivered twice."""
    return time_limit_s + max(5, time_limit_s // 10)


def transport_options(broker_url: str, time_limit_s: int) -> dict[str, object]:
    """(The embedded SQLAlchemy transport hands these options to `create_engine`: none there.)"""
    if broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        return {"visibility_timeout": visibility_timeout(time_limit_s)}
    return {}


def site_router(settings: Settings):  # noqa: ANN201 - Celery's router signature
    """Tasks of a target that names a `queue` go to that queue, where a worker next to its database
    (`-Q site-a`) takes them; everything else goes to the default queue."""

    def route(name: str, args: object, kwargs: dict | None, options: dict, task: object = None,
              **_: object) -> dict[str, str] | None:
        target = (kwargs or {}).get("target")
        chosen = settings.targets.get(target) if isinstance(target, str) else None
        return {"queue": chosen.queue} if chosen is not None and chosen.queue else None

    return route


def make_app(settings: Settings) -> Celery:
    app = Celery("backup_worker", broker=settings.broker_url, backend=settings.result_backend,
                 include=["tasks.backups"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=settings.task_time_limit_s - max(1, settings.task_time_limit_s // 20),
        broker_transport_options=transport_options(settings.broker_url, settings.task_time_limit_s),
        result_expires=RESULT_EXPIRES_S,
        result_extended=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        enable_utc=True,
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
        task_routes=(site_router(settings),),
    )
    return app


@worker_init.connect
def sweep_orphaned_temp_files(**_: object) -> None:
    """However the worker is started (`python -m worker run`, plain `celery worker`, compose),
    temp files of writers that died (kill -9, power loss) are removed before work starts."""
    from tasks.operations import sweep_store

    sweep_store(settings)
    # The targets' servers may be slow or down, so their sweep runs beside the start, in a process
    # of its own: a thread here holding connections and locks would be forked into the pool.
    # In the worker's own folder (relative settings such as the default `var/` mean the same there),
    # with the project importable from it.
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    sweeper = subprocess.Popen([sys.executable, "-m", "worker", "sweep", "--targets-only"],  # noqa: S603
                               cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": path},
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    threading.Thread(target=sweeper.wait, name="sweep-targets-reaper", daemon=True).start()


@worker_init.connect
def warm_up_engines(**_: object) -> None:
    """In the parent, before the pool forks: no task imports SQLAlchemy or pglast on its path."""
    from tasks.operations import warm_up

    warm_up(settings)


@task_prerun.connect
def defer_model_collection(**_: object) -> None:
    """The cycles of a big model are collected after the task's result is stored, not on its path."""
    defer_collection()


@task_postrun.connect
def collect_model(**_: object) -> None:
    collect_deferred()


@worker_shutting_down.connect
def bounded_shutdown(**_: object) -> None:
    """Warm shutdown first, but never a hang: a TERM sent to the whole process group kills the pool's
    children too, and one that dies holding the pool's queue lock leaves the parent's finalizer
    waiting for ever. Past the grace period the worker's children are killed and it exits; a task
    that was running is redelivered (acks_late, reject_on_worker_lost), as after any crash."""

    def force() -> None:
        for child in pool_processes.active_children():
            child.kill()
        os._exit(0)

    timer = threading.Timer(SHUTDOWN_GRACE_S, force)
    timer.daemon = True
    timer.start()


settings = load_settings()
app = make_app(settings)
