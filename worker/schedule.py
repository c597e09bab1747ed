"""Celery beat's schedule: the periodic dump of every target in every scheduled format."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from config.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    minute, hour, day_of_month, month_of_year, day_of_week = settings.schedule.split()
    when = crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                   day_of_week=day_of_week)
    return {
        f"backup-{name}-{fmt}": {"task": "backups.create", "schedule": when,
                                 "kwargs": {"target": name, "format": fmt}}
        for name in sorted(settings.targets)
        for fmt in settings.schedule_formats
        if fmt != "sqlite" or settings.targets[name].dialect == "sqlite"
    }
