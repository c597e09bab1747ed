"""Helpers of the reliability suite: process trees, task results read from Redis, store checks.

Not a test module. Everything here talks to real processes and servers: tasks are sent by
name with a bare Celery client (as another application would), and their outcome is read
straight from the result backend's `celery-task-meta-*` keys, so a broker restart cannot hang
the reader.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from backup_engine.storage.local import TEMP_PREFIX
from backup_engine.trust.manifest import MANIFEST_SUFFIX
from tests.processes import ManagedProcess, celery_worker, clean_environment

FINAL_STATES = ("SUCCESS", "FAILURE")
_redis_dbs = itertools.count(1)


# --- processes ---------------------------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return name, int(fields[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> list[tuple[int, str]]:
    """(pid, command name) of every live descendant of `root`."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                parents.setdefault(stat[1], []).append((int(entry), stat[0]))
    found: list[tuple[int, str]] = []
    stack = [root]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child[0])
    return found


def find_tool(root: int, tool: str) -> tuple[int, int] | None:
    """(tool pid, pid of its parent under `root`) of a running `pg_dump` / `psql` below `root`."""
    for pid, name in descendants(root):
        if name == tool:
            stat = _proc_stat(pid)
            if stat is not None:
                return pid, stat[1]
    return None


def passfile_of(pid: int) -> Path | None:
    """The PGPASSFILE a running pg_dump / psql was given (read from its environment)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return None
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    return Path(environ["PGPASSFILE"]) if "PGPASSFILE" in environ else None


def kill9(*pids: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.01, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def snapshot_processes() -> str:
    """argv and environment of every process on the machine, as text (what `ps e` would show)."""
    parts = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        parts.append(cmdline(int(entry)))
        with contextlib.suppress(OSError):
            parts.append(Path(f"/proc/{entry}/environ").read_bytes().replace(b"\x00", b" ").decode(errors="replace"))
    return "\n".join(parts)


# --- brokers -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transport:
    """A test's broker and result backend (README "brokers": the backend stays Redis with either
    broker). Wherever a helper takes a Redis URL (broker and backend in one), it takes this too."""

    kind: str  # "redis" or "rabbitmq"
    broker: str
    backend: str


def urls(where: str | Transport) -> tuple[str, str]:
    """(broker URL, result backend URL)."""
    return (where.broker, where.backend) if isinstance(where, Transport) else (where, where)


def rabbitmq_vhost(server) -> Iterator[str]:
    """For a `transport` fixture: a vhost of its own on the session's RabbitMQ, deleted afterwards with
    every queue and unacknowledged message in it; yields its broker URL."""
    from urllib.parse import quote

    vhost = f"bw-{uuid.uuid4().hex[:10]}"
    server.ctl("add_vhost", vhost)
    server.ctl("set_permissions", "-p", vhost, server.user, ".*", ".*", ".*")
    yield server.url[:-1] + quote(vhost, safe="")  # `amqp://…@host:port/` + the vhost
    with contextlib.suppress(RuntimeError):
        server.ctl("delete_vhost", vhost)


# --- tasks -------------------------------------------------------------------------------------------------
def client(where: str | Transport) -> Celery:
    """A bare Celery client: knows the broker and nothing of this project's code."""
    broker, backend = urls(where)
    return Celery("reliability-client", broker=broker, backend=backend)


def send(where: str | Transport, name: str, **kwargs: Any) -> str:
    app = client(where)
    try:
        return app.send_task(name, kwargs=kwargs).id
    finally:
        app.close()


def task_meta(where: str | Transport, task_id: str) -> dict[str, Any] | None:
    connection = redis.Redis.from_url(urls(where)[1], socket_connect_timeout=2, socket_timeout=5)
    try:
        raw = connection.get(f"celery-task-meta-{task_id}")
    except redis.RedisError:
        return None
    finally:
        connection.close()
    return json.loads(raw) if raw else None


def wait_result(where: str | Transport, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """The task's final meta (status SUCCESS or FAILURE), polling Redis; survives a Redis restart."""
    deadline = time.monotonic() + timeout
    meta: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        meta = task_meta(where, task_id)
        if meta and meta.get("status") in FINAL_STATES:
            return meta
        time.sleep(0.2)
    raise TimeoutError(f"task {task_id} not finished in {timeout}s; last meta: {meta}")


def failure_text(meta: dict[str, Any]) -> str:
    """The failure as the result backend (and Flower) shows it: type and message."""
    result = meta.get("result") or {}
    if isinstance(result, dict):
        message = result.get("exc_message")
        if isinstance(message, list | tuple):
            message = " ".join(str(part) for part in message)
        return f"{result.get('exc_type')}: {message}"
    return str(result)


# --- the backup folder -------------------------------------------------------------------------------------
def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{TEMP_PREFIX}*"))


def backup_files(folder: Path) -> list[Path]:
    """Every visible file that is not a manifest: what an operator would take for a backup."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith(MANIFEST_SUFFIX))


def manifests(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"*{MANIFEST_SUFFIX}"))]


def assert_every_backup_whole(folder: Path) -> list[dict[str, Any]]:
    """Every manifest describes a file of exactly its size and sha256; returns the manifests."""
    records = manifests(folder)
    for record in records:
        path = folder / record["backup_filename"]
        assert path.is_file(), record
        assert path.stat().st_size == record["size_bytes"], record["backup_filename"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"], record["backup_filename"]
    return records


def assert_no_partial_under_a_backup_name(folder: Path) -> None:
    """A visible file without a manifest must not exist: it would look like a backup."""
    described = {r["backup_filename"] for r in manifests(folder)}
    orphans = [p.name for p in backup_files(folder) if p.name not in described]
    assert not orphans, f"files under backup names without a manifest: {orphans}"


def grep_files(paths: Iterable[Path], needle: str) -> list[str]:
    hits = []
    for path in paths:
        try:
            if needle.encode() in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue
    return hits


# --- workers -----------------------------------------------------------------------------------------------
def isolated_broker(redis_server) -> Iterator[str]:
    """For a `broker` fixture: a Redis database of its own (1..15) on the session's Redis, empty
    before and after, so a message a killed worker left unacknowledged never reaches another test."""
    number = 1 + (next(_redis_dbs) - 1) % 15
    url = f"redis://{redis_server.host}:{redis_server.port}/{number}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    yield url
    connection.flushdb()
    connection.close()


def managed_processes() -> Iterator[list[ManagedProcess]]:
    """For a `processes` fixture: started ManagedProcesses, stopped at teardown whatever happened."""
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        process.stop()


def worker_env(tmp_path: Path, where: str | Transport, targets: dict[str, str], **extra: str) -> dict[str, str]:
    broker, backend = urls(where)
    return clean_environment(
        BACKUP_TARGETS=json.dumps(targets), BACKUP_DIR=str(tmp_path / "backups"),
        BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"), CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=backend,
        BACKUP_RETRY_BACKOFF_S="1", BACKUP_RETRY_BACKOFF_MAX_S="2", **extra)


def start_worker(processes: list, env: dict[str, str], cwd: Path, name: str, concurrency: int = 1) -> ManagedProcess:
    worker = celery_worker(env, cwd, name=name, concurrency=concurrency)
    processes.append(worker)
    worker.wait_for("ready.", timeout=60)
    return worker


def wait_for_tool(worker: ManagedProcess, tool: str, timeout: float = 60) -> tuple[int, int]:
    """(the tool's pid, the pool process's pid) once the worker runs `tool`."""
    return wait_until(lambda: find_tool(worker.process.pid, tool), timeout, interval=0.005, what=f"{tool} running")
