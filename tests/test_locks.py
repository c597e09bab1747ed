"""The target lock (`tasks.locks`, `Engine.exclusive`): one operation per target, a clear "Target busy"
when the wait runs out, and a lock that dies with its holder (kill -9), for the flock beside a SQLite
file and the advisory lock on a PostgreSQL server.

The holders here are real processes; nothing is mocked. A task's wait is seen through the real CLI
against a real worker on the embedded broker (no Redis, no RabbitMQ: the lock needs neither).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from backup_engine import errors
from config.settings import load_settings
from tasks import operations
from tasks.locks import target_lock
from tests.processes import ROOT, ManagedProcess, clean_environment

HOLDER = textwrap.dedent("""
    import json, os, sys, time
    from config.settings import load_settings
    from tasks import operations
    from tasks.locks import target_lock
    settings = load_settings(json.loads(sys.argv[1]), dotenv_path=None)
    engine = operations.engine_of(settings, settings.targets[sys.argv[2]])
    with target_lock(settings, engine, wait_s=0):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes it (or kills us)
    print("released", flush=True)
""")


def small_sqlite(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO t (body) VALUES (?)", ((f"row {i}",) for i in range(50)))
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def locked_target(request, tmp_path):
    """A target of each kind of lock, and the settings of a deployment that backs it up."""
    if request.param == "sqlite":
        url = small_sqlite(tmp_path / "lite.sqlite3")
    else:
        make = request.getfixturevalue("make_pg_database")
        pg_server = request.getfixturevalue("pg_server")
        url = make("lock")
        pg_server.execute(url, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50)")
    env = {"BACKUP_TARGETS": json.dumps({"t": url}), "BACKUP_DIR": str(tmp_path / "backups"),
           "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"), "BACKUP_COMPRESSION": "none"}
    settings = load_settings(env, dotenv_path=None)
    return {"kind": request.param, "env": env, "settings": settings, "tmp": tmp_path,
            "engine": operations.engine_of(settings, settings.targets["t"])}


def start_holder(locked_target) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, json.dumps(locked_target["env"]), "t"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=locked_target["tmp"],
                              env={**clean_environment(), "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"  # blocks until the child holds the lock
    return holder


def test_an_operation_on_a_busy_target_fails_with_target_busy_when_its_wait_runs_out(locked_target):
    settings, engine = locked_target["settings"], locked_target["engine"]
    holder = start_holder(locked_target)
    try:
        started = time.monotonic()
        with pytest.raises(errors.TargetBusy, match=errors.TARGET_BUSY) as caught:
            operations.create(settings, target="t", lock_wait=0.5)
        assert time.monotonic() - started >= 0.5  # it did wait
        assert "'t'" in str(caught.value)
        assert operations.list_backups(settings) == []  # nothing was written while it waited
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    # Released by its holder: the next operation takes it at once.
    with target_lock(settings, engine, wait_s=0):
        pass
    assert operations.create(settings, target="t", lock_wait=0)["rows"] == 50


def test_the_lock_dies_with_a_holder_killed_with_sigkill(locked_target):
    settings, engine = locked_target["settings"], locked_target["engine"]
    holder = start_holder(locked_target)
    with pytest.raises(errors.TargetBusy), target_lock(settings, engine, wait_s=0.2):
        pass  # held by the child
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    # No expiry to wait out: the kernel (flock) or the server (the session's advisory lock) frees it
    # with its holder. The server may take a moment to see the connection drop, hence the short wait.
    started = time.monotonic()
    with target_lock(settings, engine, wait_s=5):
        waited = time.monotonic() - started
    assert waited < 2, f"the dead holder's lock was freed only after {waited:.1f}s"
    assert operations.create(settings, target="t", lock_wait=0)["rows"] == 50


def test_a_task_on_the_embedded_broker_gives_up_with_target_busy_after_the_lock_wait(tmp_path):
    """`python -m worker run` with no broker configured (embedded SQLite broker and results), a SQLite
    target whose flock another process holds, `BACKUP_LOCK_WAIT_S=1`: the task waits, gives its slot
    back, asks once more, then fails with "Target busy"; once the holder is gone the same CLI backs up."""
    url = small_sqlite(tmp_path / "lite.sqlite3")
    env = clean_environment(BACKUP_TARGETS=json.dumps({"lite": url}), BACKUP_LOCK_WAIT_S="1")
    worker = ManagedProcess([sys.executable, "-m", "worker", "run"], env, tmp_path, tmp_path / "worker.log").start()
    holder_settings = {"BACKUP_TARGETS": env["BACKUP_TARGETS"], "BACKUP_DIR": str(tmp_path / "holder"),
                       "BACKUP_UPLOAD_DIR": str(tmp_path / "holder-uploads")}  # an flock needs no deployment
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, json.dumps(holder_settings), "lite"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        worker.wait_for("ready.", timeout=90)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "worker", "backup", "--target", "lite", "--timeout", "90"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
        elapsed = time.monotonic() - started
        assert done.returncode == 1 and errors.TARGET_BUSY in done.stderr, done.stderr + worker.output()[-2000:]
        assert done.stdout == ""
        assert elapsed >= 1  # BACKUP_LOCK_WAIT_S
        assert worker.output().count("Retry in") == 1  # ceil(1 s / (2 s + 5 s)) asks again, then it fails
        assert list((tmp_path / "var" / "backups").glob("*.sql")) == []

        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        done = subprocess.run([sys.executable, "-m", "worker", "backup", "--target", "lite", "--timeout", "90"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
        assert done.returncode == 0, done.stderr + worker.output()[-2000:]
        assert json.loads(done.stdout)["rows"] == 50
    finally:
        with contextlib.suppress(ProcessLookupError):
            holder.kill()
        holder.wait(timeout=30)
        worker.stop()
