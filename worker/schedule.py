"""Celery beat's schedule: the periodic dump of every target in every scheduled format."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from config.settings import Settings


def as_crontab(expression: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                   day_of_week=day_of_week)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Dumps of every target in every scheduled format, the retention sweep, the verify drill."""
    when = as_crontab(settings.schedule)
    schedule: dict[str, dict[str, Any]] = {
        f"backup-{name}-{fmt}": {"task": "backups.create", "schedule": when,
                                 "kwargs": {"target": name, "format": fmt}}
        for name in sorted(settings.targets)
        for fmt in settings.schedule_formats
        if fmt != "sqlite" or settings.targets[name].dialect == "sqlite"
    }
    schedule["prune"] = {"task": "backups.prune", "schedule": as_crontab(settings.prune_schedule)}
    if settings.verify_schedule:
        schedule["verify-latest"] = {"task": "backups.verify_latest", "schedule": as_crontab(settings.verify_schedule)}
    return schedule
