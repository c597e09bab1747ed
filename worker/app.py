"""The Celery application, configured from `config` once, at import.

Settings are validated here, so a misconfigured worker stops at start with a message naming
the variable instead of failing its first task.
"""

from __future__ import annotations

from celery import Celery

from config.settings import Settings, load_settings
from worker.schedule import beat_schedule

# Longest a single backup or restore may run; the broker's visibility timeout stays above it
# so that a long task is not redelivered while it is still running.
TASK_TIME_LIMIT_S = 6 * 3600
TASK_SOFT_TIME_LIMIT_S = TASK_TIME_LIMIT_S - 300
RESULT_EXPIRES_S = 90 * 24 * 3600


def transport_options(broker_url: str) -> dict[str, object]:
    """Redis redelivers unacked tasks after the visibility timeout: keep it above the time limit.

    (The embedded SQLAlchemy transport hands these options to `create_engine`, so none there.)
    """
    if broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        return {"visibility_timeout": TASK_TIME_LIMIT_S + 3600}
    return {}


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
        task_time_limit=TASK_TIME_LIMIT_S,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT_S,
        broker_transport_options=transport_options(settings.broker_url),
        result_expires=RESULT_EXPIRES_S,
        result_extended=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        enable_utc=True,
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
    )
    return app


settings = load_settings()
app = make_app(settings)
