"""Celery beat's schedule: the periodic dump of every target in every scheduled format."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from backup_engine.registry import engine_class
from config.settings import Settings

STALE_CHECK_MINUTE = "17"  # hourly


def as_crontab(expression: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                   day_of_week=day_of_week)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Dumps of every target in every scheduled format, the retention sweep, the verify drill."""
    when = as_crontab(settings.schedule)
    schedule: dict[str, dict[str, Any]] = {
        f"backup-{name}-{fmt}": {"task": "backups.create", "schedule": when,
                                 "kwargs": {"target": name, "format": fmt},
                                 **({"options": {"queue": target.queue}} if target.queue else {})}
        for name, target in sorted(settings.targets.items())
        for fmt in settings.schedule_formats
        if fmt in engine_class(target.dialect).formats
    }
    schedule["prune"] = {"task": "backups.prune", "schedule": as_crontab(settings.prune_schedule)}
    schedule["check-stale"] = {"task": "backups.check_stale", "schedule": crontab(minute=STALE_CHECK_MINUTE)}
    if settings.verify_schedule:  # one drill per target, on its own queue: it restores on that target's server
        for name, target in sorted(settings.targets.items()):
            schedule[f"verify-latest-{name}"] = {
                "task": "backups.verify_latest", "schedule": as_crontab(settings.verify_schedule),
                "kwargs": {"target": name}, **({"options": {"queue": target.queue}} if target.queue else {})}
    return schedule
