"""Configuration is validated at start and names the variable that is wrong."""

from __future__ import annotations

import json

import pytest

from backup_engine import errors
from config.settings import DEFAULT_SCHEDULES, load_settings


def env(tmp_path, **extra):
    base = {"BACKUP_DIR": str(tmp_path / "b"), "BACKUP_UPLOAD_DIR": str(tmp_path / "u")}
    base.update(extra)
    return base


def test_defaults_give_a_demo_sqlite_target(tmp_path):
    settings = load_settings(env(tmp_path), dotenv_path=None)
    assert settings.demo
    assert settings.targets["default"].dialect == "sqlite"
    assert settings.schedule == "0 2 * * *"
    assert settings.schedule_formats == ("sql",)
    assert settings.broker_url.startswith("sqla+sqlite:///")
    assert (tmp_path / "b").is_dir() and (tmp_path / "u").is_dir()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BACKUP_DATABASE_URL", "oracle://u:p@h/db"),
        ("BACKUP_DATABASE_URL", "not a url"),
        ("BACKUP_TARGETS", "{not json"),
        ("BACKUP_TARGETS", '["a list"]'),
        ("BACKUP_TARGETS", '{"../evil": "sqlite:///x.db"}'),
        ("BACKUP_SCHEDULE", "every night"),
        ("BACKUP_SCHEDULE", "99 2 * * *"),
        ("BACKUP_SCHEDULE_FORMATS", "sql,xml"),
        ("BACKUP_FILE_PREFIX", "../up"),
    ],
)
def test_a_wrong_value_names_its_variable(tmp_path, variable, value):
    with pytest.raises(errors.ConfigError) as raised:
        load_settings(env(tmp_path, **{variable: value}), dotenv_path=None)
    assert variable in str(raised.value)


def test_unwritable_backup_dir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(errors.ConfigError, match="BACKUP_DIR"):
        load_settings(env(tmp_path, BACKUP_DIR=str(blocker / "sub")), dotenv_path=None)


def test_urls_are_masked_when_described(tmp_path):
    settings = load_settings(
        env(tmp_path, BACKUP_DATABASE_URL="postgresql://app:s3cret-pw@db.example:5432/app",
            BACKUP_TARGETS=json.dumps({"reports": "postgresql://r:other-s3cret@h/r"}),
            CELERY_BROKER_URL="redis://:broker-s3cret@localhost:6379/0",
            CELERY_RESULT_BACKEND="db+postgresql://u:backend-s3cret@h/results"),
        dotenv_path=None,
    )
    shown = json.dumps(settings.describe())
    described = settings.describe()
    assert described["targets"]["default"] == "postgresql://app:***@db.example:5432/app", described
    assert "***" in shown
    reprs = repr(settings) + "".join(repr(target) for target in settings.targets.values())
    for secret in ("s3cret-pw", "other-s3cret", "broker-s3cret", "backend-s3cret"):
        assert secret not in shown, secret
        assert secret not in reprs, secret


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("BACKUP_SCHEDULE=5 3 * * *\nBACKUP_SCHEDULE_FORMATS=sql,csv\n")
    settings = load_settings(env(tmp_path, BACKUP_SCHEDULE_FORMATS="json"), dotenv_path=dotenv)
    assert settings.schedule == "5 3 * * *"
    assert settings.schedule_formats == ("json",)


def test_unknown_target_is_a_clear_error(tmp_path):
    settings = load_settings(env(tmp_path), dotenv_path=None)
    with pytest.raises(errors.InvalidRequest, match="Unknown target: 'nope'"):
        settings.target("nope")


@pytest.mark.parametrize("expression", sorted(DEFAULT_SCHEDULES))
def test_the_default_schedules_are_crontabs_celery_reads(expression):
    """Settings take the built-in schedules without parsing them (no Celery import per command):
    each must be what Celery's beat reads, five fields that make a crontab."""
    from celery.schedules import crontab

    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    schedule = crontab(minute, hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week)
    assert schedule.minute and schedule.hour
