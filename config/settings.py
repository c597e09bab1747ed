"""The worker's settings: environment variables (and `.env`), validated at start.

A wrong value stops the worker with a message that names the variable, before any task
runs. URLs are only ever shown masked.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.formats import FORMATS
from backup_engine.registry import client_tools
from backup_engine.retention import RetentionPolicy
from backup_engine.storage.base import OBJECT_NAME, check_object_name
from backup_engine.storage.compression import Compression
from backup_engine.storage.encryption import load_identities, parse_recipients
from backup_engine.targets import Target, mask_url

VAR_DIR = Path("var")
DEMO_DATABASE = VAR_DIR / "demo.sqlite3"
DEFAULT_SCHEDULE = "0 2 * * *"
SCHEDULE_FORMATS = tuple(FORMATS)
DEFAULT_LOCK_WAIT_S = 600.0
DEFAULT_TASK_TIME_LIMIT_S = 6 * 3600
DEFAULT_PRUNE_SCHEDULE = "30 3 * * *"
DEFAULT_VERIFY_SCHEDULE = "0 4 * * *"
DEFAULT_SCHEDULES = frozenset({DEFAULT_SCHEDULE, DEFAULT_PRUNE_SCHEDULE, DEFAULT_VERIFY_SCHEDULE})
SIGNING_KEY_FILE = "signing.key"
SIGNING_KEY_BYTES = 32


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures: exponential backoff with full jitter, capped."""

    max_retries: int = 5
    backoff_s: int = 2
    backoff_max_s: int = 120


@dataclass(frozen=True)
class Settings:
    targets: dict[str, Target]
    backup_dir: Path
    upload_dir: Path
    file_prefix: str | None
    broker_url: str = field(repr=False)  # may hold the broker's password; `describe()` shows them masked
    result_backend: str = field(repr=False)
    schedule: str
    schedule_formats: tuple[str, ...]
    tools: ClientTools
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S
    task_time_limit_s: int = DEFAULT_TASK_TIME_LIMIT_S
    retry: RetryPolicy = RetryPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    prune_schedule: str = DEFAULT_PRUNE_SCHEDULE
    verify_schedule: str | None = DEFAULT_VERIFY_SCHEDULE
    demo: bool = False
    storage_url: str = ""
    signing_key: bytes = field(default=b"", repr=False)
    compression: Compression = Compression()
    recipients: tuple[str, ...] = ()
    identity_file: Path | None = None
    upload_allow_superuser: bool = False
    upload_max_statement_bytes: int = 64 * 1024 * 1024
    notify_urls: tuple[str, ...] = field(default=(), repr=False)  # Apprise URLs may hold tokens
    notify_on: str = "failure"
    jobs: int | None = None  # parallel jobs of a pgdump backup or restore (None: the engine's default)
    stale_after_h: float = 26.0

    def target(self, name: object) -> Target:
        """The configured target `name`; the refusal names no other target (a caller may be anyone)."""
        if not isinstance(name, str) or name not in self.targets:
            shown = name[:80] if isinstance(name, str) else type(name).__name__
            raise errors.InvalidRequest(errors.UNKNOWN_TARGET, f"{shown!r} is not configured")
        return self.targets[name]

    def describe(self) -> dict[str, object]:
        """What the worker runs with, safe to log: every URL masked."""
        return {
            "targets": {name: target.masked_url for name, target in self.targets.items()},
            "backup_dir": str(self.backup_dir),
            "upload_dir": str(self.upload_dir),
            "broker_url": mask_url(self.broker_url) if "://" in self.broker_url else self.broker_url,
            "result_backend": _mask_backend(self.result_backend),
            "schedule": self.schedule,
            "schedule_formats": list(self.schedule_formats),
            "storage": mask_url(self.storage_url) if "@" in self.storage_url else self.storage_url,
            "compression": str(self.compression),
            "encrypted_to": len(self.recipients),
            "tools": self.tools.as_dict(),
        }


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike | None = ".env") -> Settings:
    """Settings from `environ` (default: the process environment over `.env`)."""
    env: dict[str, str] = {}
    if dotenv_path and Path(dotenv_path).is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    targets, demo = _targets(env)
    backup_dir = _writable_dir(env, "BACKUP_DIR", VAR_DIR / "backups")
    upload_dir = _writable_dir(env, "BACKUP_UPLOAD_DIR", VAR_DIR / "uploads")
    prefix = env.get("BACKUP_FILE_PREFIX") or None
    if prefix is not None:
        _as_config_error("BACKUP_FILE_PREFIX", lambda: check_object_name(prefix, "BACKUP_FILE_PREFIX"))
    storage_url = env.get("BACKUP_STORAGE_URL") or backup_dir.as_uri()
    identity_file = env.get("BACKUP_ENCRYPTION_IDENTITY_FILE") or None
    if identity_file is not None:
        _as_config_error("BACKUP_ENCRYPTION_IDENTITY_FILE", lambda: load_identities(identity_file))
    return Settings(
        storage_url=storage_url,
        compression=_as_config_error("BACKUP_COMPRESSION", lambda: Compression.parse(env.get("BACKUP_COMPRESSION"))),
        recipients=tuple(_as_config_error("BACKUP_ENCRYPTION_RECIPIENTS",
                                          lambda: parse_recipients(env.get("BACKUP_ENCRYPTION_RECIPIENTS")))),
        identity_file=Path(identity_file) if identity_file else None,
        signing_key=_signing_key(env, backup_dir),
        upload_allow_superuser=_flag(env, "BACKUP_UPLOAD_ALLOW_SUPERUSER"),
        upload_max_statement_bytes=max(1024, _count(env, "BACKUP_UPLOAD_MAX_STATEMENT_BYTES", 64 * 1024 * 1024)),
        notify_urls=tuple(url.strip() for url in (env.get("BACKUP_NOTIFY_URLS") or "").split(",") if url.strip()),
        notify_on=_choice(env, "BACKUP_NOTIFY_ON", ("failure", "all"), "failure"),
        stale_after_h=_seconds(env, "BACKUP_STALE_AFTER_H", 26.0),
        targets=targets,
        backup_dir=backup_dir,
        upload_dir=upload_dir,
        file_prefix=prefix,
        broker_url=_embedded(env.get("CELERY_BROKER_URL")
                             or f"sqla+sqlite:///{(VAR_DIR / 'celery-broker.sqlite3').resolve()}"),
        result_backend=_embedded(env.get("CELERY_RESULT_BACKEND")
                                 or f"db+sqlite:///{(VAR_DIR / 'celery-results.sqlite3').resolve()}"),
        schedule=_crontab(env.get("BACKUP_SCHEDULE") or DEFAULT_SCHEDULE),
        prune_schedule=_crontab(env.get("BACKUP_PRUNE_SCHEDULE") or DEFAULT_PRUNE_SCHEDULE, "BACKUP_PRUNE_SCHEDULE"),
        verify_schedule=_optional_crontab(env.get("BACKUP_VERIFY_SCHEDULE", DEFAULT_VERIFY_SCHEDULE)),
        retention=RetentionPolicy(
            keep_last=max(1, _count(env, "BACKUP_KEEP_LAST", RetentionPolicy.keep_last)),
            keep_daily=_count(env, "BACKUP_KEEP_DAILY", RetentionPolicy.keep_daily),
            keep_weekly=_count(env, "BACKUP_KEEP_WEEKLY", RetentionPolicy.keep_weekly),
            keep_monthly=_count(env, "BACKUP_KEEP_MONTHLY", RetentionPolicy.keep_monthly),
            keep_side=max(1, _count(env, "BACKUP_KEEP_SIDE", RetentionPolicy.keep_side)),
        ),
        schedule_formats=_formats(env.get("BACKUP_SCHEDULE_FORMATS") or "sql"),
        tools=ClientTools(**{name: _tool(env, variable, names) for name, (variable, names) in client_tools().items()}),
        lock_wait_s=_seconds(env, "BACKUP_LOCK_WAIT_S", DEFAULT_LOCK_WAIT_S),
        task_time_limit_s=max(10, _count(env, "BACKUP_TASK_TIME_LIMIT_S", DEFAULT_TASK_TIME_LIMIT_S)),
        retry=RetryPolicy(
            max_retries=_count(env, "BACKUP_TASK_MAX_RETRIES", RetryPolicy.max_retries),
            backoff_s=max(1, _count(env, "BACKUP_RETRY_BACKOFF_S", RetryPolicy.backoff_s)),
            backoff_max_s=max(1, _count(env, "BACKUP_RETRY_BACKOFF_MAX_S", RetryPolicy.backoff_max_s)),
        ),
        jobs=_count(env, "BACKUP_JOBS", 0) or None,
        demo=demo,
    )


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json.loads hook: a name given twice is refused, not silently resolved to the last."""
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise errors.ConfigError(errors.CONFIG_INVALID, f"BACKUP_TARGETS: {key!r} is named twice")
        seen[key] = value
    return seen


def _targets(env: Mapping[str, str]) -> tuple[dict[str, Target], bool]:
    targets: dict[str, Target] = {}
    demo = False
    default_url = env.get("BACKUP_DATABASE_URL")
    if default_url:
        targets["default"] = _as_config_error("BACKUP_DATABASE_URL", lambda: Target.from_url("default", default_url))
    raw = env.get("BACKUP_TARGETS") or "{}"
    try:
        named = json.loads(raw, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"BACKUP_TARGETS is not valid JSON: {exc}") from exc
    shape = 'BACKUP_TARGETS must be a JSON object {"name": "url"} or {"name": {"url": "...", "queue": "..."}}'
    if not isinstance(named, dict):
        raise errors.ConfigError(errors.CONFIG_INVALID, shape)
    for name, spec in named.items():
        if not OBJECT_NAME.fullmatch(name):
            raise errors.ConfigError(
                errors.CONFIG_INVALID, f"BACKUP_TARGETS: target name {name[:80]!r} is not [A-Za-z0-9._-]",
            )
        if name in targets:
            raise errors.ConfigError(errors.CONFIG_INVALID, f"BACKUP_TARGETS: {name!r} is also BACKUP_DATABASE_URL")
        url, queue = _target_spec(name, spec, shape)
        targets[name] = _as_config_error("BACKUP_TARGETS", lambda n=name, u=url, q=queue: Target.from_url(n, u, q))
    if "default" not in targets:
        targets["default"] = Target.from_url("default", f"sqlite:///{DEMO_DATABASE.resolve()}")
        demo = True
    return targets, demo


def _target_spec(name: str, spec: object, shape: str) -> tuple[str, str | None]:
    """A target's URL and Celery queue: `"url"` or `{"url": "...", "queue": "..."}`."""
    if isinstance(spec, str):
        return spec, None
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str) or set(spec) - {"url", "queue"}:
        raise errors.ConfigError(errors.CONFIG_INVALID, shape)
    queue = spec.get("queue")
    if queue is not None and (not isinstance(queue, str) or not OBJECT_NAME.fullmatch(queue)):
        raise errors.ConfigError(errors.CONFIG_INVALID, f"BACKUP_TARGETS: {name!r}: queue must be [A-Za-z0-9._-]")
    return spec["url"], queue


def _choice(env: Mapping[str, str], variable: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(variable) or default).strip().lower()
    if value not in choices:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={value!r}: one of {', '.join(choices)}")
    return value


def _embedded(url: str) -> str:
    """A broker or result backend in a local SQLite file: its folder is made wherever it is."""
    for scheme in ("sqla+sqlite:///", "db+sqlite:///", "sqlite:///"):
        if url.startswith(scheme) and url[len(scheme):]:
            folder = Path(url[len(scheme):]).parent
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise errors.ConfigError(errors.CONFIG_INVALID, f"{folder}: cannot create the embedded "
                                         f"broker's folder ({exc.strerror})") from exc
    return url


def _flag(env: Mapping[str, str], variable: str) -> bool:
    raw = (env.get(variable) or "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={raw!r}: true or false")
    return raw in ("true", "1", "yes")


def _signing_key(env: Mapping[str, str], backup_dir: Path) -> bytes:
    """BACKUP_SIGNING_KEY, or for a local store a key generated once beside the backup folder
    (never inside it: whoever can write backups must not be able to sign them)."""
    configured = env.get("BACKUP_SIGNING_KEY")
    if configured:
        if len(configured) < 16:
            raise errors.ConfigError(errors.CONFIG_INVALID, "BACKUP_SIGNING_KEY: at least 16 characters")
        return configured.encode("utf-8")
    if (env.get("BACKUP_STORAGE_URL") or "file:").split(":", 1)[0] != "file":
        raise errors.ConfigError(errors.CONFIG_INVALID, "BACKUP_SIGNING_KEY is required with a shared store "
                                 "(every worker of the store uses the same key)")
    path = backup_dir.parent / SIGNING_KEY_FILE
    try:
        return _read_or_create_key(path)
    except OSError as exc:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"BACKUP_SIGNING_KEY is unset and {path} cannot be "
                                 f"read or created ({exc.strerror}); set it") from exc


def _read_or_create_key(path: Path) -> bytes:
    """The key in `path`, made (0600, random) if there is none; two processes racing agree."""
    import secrets

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(SIGNING_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    for _ in range(50):  # a racing creator may not have written it yet
        key = path.read_text().strip()
        if key:
            return key.encode("utf-8")
        import time

        time.sleep(0.01)
    raise errors.ConfigError(errors.CONFIG_INVALID, f"{path} is empty")


def _as_config_error(variable: str, build):
    try:
        return build()
    except errors.BackupError as exc:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}: {exc}") from exc


def _writable_dir(env: Mapping[str, str], variable: str, default: Path) -> Path:
    folder = Path(env.get(variable) or default).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={folder}: cannot create ({exc.strerror})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={folder}: not writable")
    return folder.resolve()


def _optional_crontab(expression: str) -> str | None:
    """BACKUP_VERIFY_SCHEDULE: a crontab, or empty / `off` for no periodic drill."""
    if expression.strip().lower() in ("", "off", "none"):
        return None
    return _crontab(expression, "BACKUP_VERIFY_SCHEDULE")


def _crontab(expression: str, variable: str = "BACKUP_SCHEDULE") -> str:
    """A schedule, checked as Celery's beat will read it. The built-in defaults are known good
    (a test checks them), and are not parsed again: that would import Celery (0.04 s) into every
    `--local` run and CLI command."""
    if expression in DEFAULT_SCHEDULES:
        return expression
    fields = expression.split()
    if len(fields) != 5:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={expression!r}: needs 5 crontab fields")
    from celery.schedules import crontab  # validation only: the engine itself never imports Celery

    try:
        crontab(*fields[:2], day_of_month=fields[2], month_of_year=fields[3], day_of_week=fields[4])
    except (ValueError, TypeError) as exc:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={expression!r}: {exc}") from exc
    return expression


def _formats(raw: str) -> tuple[str, ...]:
    formats = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [f for f in formats if f not in SCHEDULE_FORMATS]
    if not formats or unknown:
        raise errors.ConfigError(errors.CONFIG_INVALID,
                                 f"BACKUP_SCHEDULE_FORMATS={raw!r}: use a comma list of {', '.join(SCHEDULE_FORMATS)}")
    return formats


def _seconds(env: Mapping[str, str], variable: str, default: float) -> float:
    raw = env.get(variable)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={raw!r}: a number >= 0")
    return value


def _count(env: Mapping[str, str], variable: str, default: int) -> int:
    raw = env.get(variable)
    if not raw:
        return default
    if not raw.strip().isdigit():
        raise errors.ConfigError(errors.CONFIG_INVALID, f"{variable}={raw!r}: a whole number >= 0")
    return int(raw)


def _tool(env: Mapping[str, str], variable: str, names: tuple[str, ...]) -> str | None:
    configured = env.get(variable)
    if configured:
        return configured  # a missing configured tool is reported when used, so `auto` can fall back
    return next((found for name in names if (found := shutil.which(name))), None)


def _mask_backend(url: str) -> str:
    scheme, sep, rest = url.partition("+")
    if sep and "://" in rest:
        return f"{scheme}+{mask_url(rest)}"
    return mask_url(url) if "://" in url else url


def ensure_demo_database(settings: Settings) -> None:
    """Create the small demo SQLite database that `make run` backs up when nothing is configured."""
    if not settings.demo:
        return
    path = Path(settings.targets["default"].url.database or DEMO_DATABASE)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT UNIQUE);
            CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,
                                 customer_id INTEGER NOT NULL REFERENCES customers(id),
                                 total NUMERIC NOT NULL, placed_at TEXT NOT NULL);
            INSERT INTO customers (name, email) VALUES ('Ada Lovelace', 'ada@example.org'),
                                                       ('Grace Hopper', 'grace@example.org');
            INSERT INTO orders (customer_id, total, placed_at) VALUES (1, 12.50, '2025-01-01T12:00:00Z'),
                                                                     (2, 99.99, '2025-01-02T08:30:00Z');
            """
        )
