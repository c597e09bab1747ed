"""Fault injection against real processes: kill -9, broker and database restarts, a full disk,
altered files, two workers racing for the same targets (issue 6).

Each test starts the worker processes it breaks; nothing is mocked. Task outcomes are read
from the Redis result backend (`celery-task-meta-*`). Every test gets its own Redis database
number, so a message left unacknowledged by a killed worker can never reach another test.
See RELIABILITY.md for the table of faults and outcomes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml

from backup_engine import errors
from backup_engine.formats import FORMATS
from backup_engine.storage.local import TEMP_PREFIX
from config.settings import load_settings
from tasks import operations
from tests import richdb_pg
from tests.engine_api import BackupStore
from tests.processes import ROOT, ManagedProcess
from tests.reliability_helpers import (
    assert_every_backup_whole,
    assert_no_partial_under_a_backup_name,
    backup_files,
    failure_text,
    find_tool,
    kill9,
    manifests,
    passfile_of,
    send,
    start_worker,
    task_meta,
    temp_files,
    wait_for_tool,
    wait_result,
    wait_until,
    worker_env,
)
from tests.servers import ThrowawayRedis

pytestmark = pytest.mark.reliability

BIG_ROWS = 1_500_000  # ~150 MB of plain SQL: pg_dump streams it through the worker in ~2 s
DISK_FULL = ("No space left on device", "disk is full", errors.WRITE_FAILED)


# --- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big(pg_server):
    """A rich database plus a bulk table generated server-side: a backup that takes seconds."""
    name = f"rel_big_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    richdb_pg.build_rich_database(url, rows_per_table=60, seed=1)
    conn = pg_server.connect(name)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE bulk (id bigint NOT NULL, payload text NOT NULL, n int);"
                    "INSERT INTO bulk SELECT g, md5(g::text) || repeat('x', 60), g %% 1000"
                    " FROM generate_series(1, %s) g", (BIG_ROWS,))
    conn.close()
    yield {"url": url, "name": name}
    pg_server.drop_database(name)


def settings_for(env: dict[str, str]):
    return load_settings(env, dotenv_path=None)


def received_count(worker_log: str, task_id: str) -> int:
    return sum(1 for line in worker_log.splitlines() if task_id in line and "received" in line.lower())


def unacked_due(redis_url: str, visibility_s: int) -> bool:
    """Some message unacknowledged by a dead worker is older than the visibility timeout, by the
    delivery time Redis recorded for it: a worker starting now gives it back."""
    connection = redis.Redis.from_url(redis_url)
    try:
        delivered = connection.zrange("unacked_index", 0, -1, withscores=True)
        now = connection.time()[0]
    finally:
        connection.close()
    assert delivered, "nothing is unacknowledged: the killed worker's task is gone"
    return any(score < now - visibility_s for _, score in delivered)


def configured_visibility_timeout(env: dict[str, str], cwd: Path) -> int:
    """The Redis visibility timeout the worker's app is configured with under `env`."""
    done = subprocess.run([sys.executable, "-c", "from worker.app import app; "
                           "print(app.conf.broker_transport_options['visibility_timeout'])"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def copying(pg_server, table: str) -> bool:
    """A restore's COPY into `table` is running on the server."""
    conn = pg_server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query ~ %s",
                        (rf"^COPY [^ ]*\m{table}\M",))
            return cur.fetchone()[0] > 0
    finally:
        conn.close()


# --- kill -9 during a backup -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("moment", ["dump", "publish"])
def test_kill9_during_a_large_backup_redelivers_and_leaves_exactly_one_whole_backup(
        moment, big, broker, processes, disk_path):
    """`dump`: the pool process (and its pg_dump) is killed while the dump streams; the worker's
    main process survives and requeues at once (reject_on_worker_lost).
    `publish`: the whole worker (main, pool, pg_dump) is killed -9 the moment pg_dump exits,
    i.e. while the file is fsynced, linked and its manifest written; nothing requeues it, so
    the worker is started again with `python -m worker run` once the Redis visibility timeout
    (BACKUP_TASK_TIME_LIMIT_S + 5 s) has passed, and that start sweeps the temp files. The store is
    on disk (`disk_path`): on tmpfs the fsync takes no time and the kill comes too late."""
    backups = disk_path / "backups"
    # `publish` needs a short visibility timeout (time limit + 5 s) for Redis to give the task back.
    extra = {"BACKUP_TASK_TIME_LIMIT_S": "25"} if moment == "publish" else {}
    env = worker_env(disk_path, broker, {"big": big["url"]}, **extra)
    worker = start_worker(processes, env, disk_path, f"kill-{moment}")
    task_id = send(broker, "backups.create", target="big")

    dump_pid, pool_pid = wait_for_tool(worker, "pg_dump")
    if moment == "dump":
        wait_until(lambda: any(p.stat().st_size > 30_000_000 for p in temp_files(backups)), 60, what="30 MB dumped")
        kill9(pool_pid, dump_pid)
    else:
        wait_until(lambda: find_tool(worker.process.pid, "pg_dump") is None, 60, interval=0.001, what="pg_dump done")
        worker.kill()  # SIGKILL to the whole process group
    at_kill = {"temps": [p.name for p in temp_files(backups)], "manifests": [m["backup_filename"]
                                                                          for m in manifests(backups)]}
    # Whatever the moment, nothing under a backup's name is partial, and nothing is listed.
    assert at_kill["manifests"] == [], f"the kill came too late to test this moment: {at_kill}"
    assert_no_partial_under_a_backup_name(backups)
    assert at_kill["temps"], "the kill should have left the dump's temp file behind"

    if moment == "publish":
        assert task_meta(broker, task_id)["status"] in ("STARTED", "PROGRESS")
        # A starting worker gives back the unacked messages older than the visibility timeout (by the
        # delivery time Redis recorded); kombu's periodic sweep after that is rare, so start it then.
        visibility = configured_visibility_timeout(env, disk_path)
        assert visibility == 30  # BACKUP_TASK_TIME_LIMIT_S + 5 s
        wait_until(lambda: unacked_due(broker, visibility), 60, interval=0.2, what="visibility timeout")
        restarted = ManagedProcess([sys.executable, "-m", "worker", "run"], env, disk_path,
                                   disk_path / "restarted.log").start()
        processes.append(restarted)
        restarted.wait_for("ready.", timeout=60)
        # The start swept the dead worker's temp files before taking any task.
        assert not set(at_kill["temps"]) & {p.name for p in temp_files(backups)}
        worker = restarted

    meta = wait_result(broker, task_id, timeout=120)
    assert meta["status"] == "SUCCESS", failure_text(meta)
    records = assert_every_backup_whole(backups)
    assert [r["backup_filename"] for r in records] == [meta["result"]["backup_filename"]]
    assert records[0]["table_rows"]["public.bulk"] == BIG_ROWS
    assert_no_partial_under_a_backup_name(backups)
    if moment == "dump":
        assert received_count(worker.output(), task_id) >= 2, "the task was not redelivered"
        # The worker's main process lived on, so nothing swept the dead pool process's temp file yet;
        # the sweep every start runs (`python -m worker sweep`) removes it and nothing else.
        assert {p.name for p in temp_files(backups)} == set(at_kill["temps"])
        swept = subprocess.run([sys.executable, "-m", "worker", "sweep"], env=env, cwd=disk_path,
                               capture_output=True, text=True, timeout=120)
        assert swept.returncode == 0, swept.stderr
    assert temp_files(backups) == []
    assert [r["backup_filename"] for r in assert_every_backup_whole(backups)] == [meta["result"]["backup_filename"]]


# --- kill -9 during a restore ------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill9_during_a_restore_leaves_the_target_as_before_then_the_redelivery_restores_it(
        big, pg_server, broker, processes, tmp_path, make_pg_database):
    dst_url = make_pg_database("rel_dst")
    richdb_pg.build_rich_database(dst_url, rows_per_table=40, seed=7)
    env = worker_env(tmp_path, broker, {"big": big["url"], "dst": dst_url})
    backup = operations.create(settings_for(env), target="big")
    before = richdb_pg.database_state(dst_url)
    source = richdb_pg.database_state(big["url"])
    assert before != source

    worker = start_worker(processes, env, tmp_path, "kill-restore")
    task_id = send(broker, "backups.restore", backup_filename=backup["backup_filename"], target="dst",
                   source_target="big")
    psql_pid, pool_pid = wait_for_tool(worker, "psql")
    wait_until(lambda: copying(pg_server, "bulk"), 60, interval=0.005, what="the COPY of the bulk table")
    assert find_tool(worker.process.pid, "psql") is not None, "psql finished before the kill"
    kill9(pool_pid, psql_pid)

    during = richdb_pg.database_state(dst_url)
    assert during in (before, source), "the target is between its old and new contents"
    assert during == before

    meta = wait_result(broker, task_id, timeout=150)
    assert meta["status"] == "SUCCESS", failure_text(meta)
    assert received_count(worker.output(), task_id) >= 2
    assert richdb_pg.database_state(dst_url) == source
    safety = [m for m in manifests(tmp_path / "backups") if m["target"] == "dst"]
    assert safety and all("safety backup" in m.get("purpose", "") for m in safety)


# --- kill -9 of the lock holder: redelivery on both brokers ------------------------------------------------
def live_tool(workers: list, tool: str, but: set[int]) -> tuple[int, int, object] | None:
    """(tool pid, its parent's pid, the worker) of a running `tool` under any live worker, other than `but`."""
    for worker in workers:
        if worker.process.poll() is None:
            found = find_tool(worker.process.pid, tool)
            if found and found[0] not in but:
                return (*found, worker)
    return None


@pytest.mark.slow
@pytest.mark.parametrize(("transport", "killed"), [("redis", "pool"), ("rabbitmq", "pool"), ("rabbitmq", "worker")],
                         indirect=["transport"])
def test_after_a_kill9_of_the_lock_holder_the_redelivered_task_starts_at_once_and_never_overlaps(
        transport, killed, big, pg_server, processes, tmp_path):
    """Two backups of one target; the process holding its lock (its pool process, or the whole
    worker on RabbitMQ, which redelivers as soon as the connection drops) is killed -9 mid-dump.
    The lock goes with its holder's session, so the redelivered task starts within the issue's
    bound (about 5 s; asserted loosely) and the two never run on the target at once."""
    env = worker_env(tmp_path, transport, {"big": big["url"]})
    workers = [start_worker(processes, env, tmp_path, f"holder-{index}", concurrency=2)
               for index in range(2 if killed == "worker" else 1)]
    sampler = ActivitySampler(pg_server, [big["name"]])
    sampler.start()
    try:
        first = send(transport, "backups.create", target="big")
        dump_pid, pool_pid, holder = wait_until(lambda: live_tool(workers, "pg_dump", set()), 60, interval=0.005,
                                                what="pg_dump running")
        second = send(transport, "backups.create", target="big")  # finds the target busy
        wait_until(lambda: any(received_count(w.output(), second) for w in workers), 30, interval=0.02,
                   what="the second task received")
        assert find_tool(holder.process.pid, "pg_dump") == (dump_pid, pool_pid), "the dump ended before the kill"
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
        if killed == "pool":
            kill9(pool_pid)  # its pg_dump dies of the broken pipe; the worker's main process requeues
        else:
            holder.kill()  # the whole process group: main, pool and pg_dump
        _, _, runner = wait_until(lambda: live_tool(workers, "pg_dump", {dump_pid}), 30, interval=0.005,
                                  what="a dump started after the kill")
        restarted_after = time.monotonic() - killed_at
        outcomes = {task_id: wait_result(transport, task_id, timeout=120) for task_id in (first, second)}
    finally:
        sampler.stop.set()
        sampler.join()

    print(f"{transport.kind}/{killed}: next dump {restarted_after:.2f}s after the kill")  # shown with -s
    assert restarted_after < 15, f"the next operation on the target started {restarted_after:.1f}s after the kill"
    assert all(meta["status"] == "SUCCESS" for meta in outcomes.values()), [failure_text(m) for m in outcomes.values()]
    redelivered = outcomes[first]["result"]
    assert sum(received_count(w.output(), first) for w in workers) >= 2, "the killed task was not redelivered"
    if killed == "worker":
        assert runner is not holder
    started = datetime.fromisoformat(redelivered["created_at"])  # taken once it held the lock
    assert (started - killed_wall).total_seconds() < 15, (started, killed_wall)
    assert sampler.busy_samples > 10 and not sampler.overlaps, (sampler.samples, sampler.overlaps)
    records = assert_every_backup_whole(tmp_path / "backups")
    assert sorted(r["backup_filename"] for r in records) == sorted(m["result"]["backup_filename"]
                                                                    for m in outcomes.values())
    spans = sorted((datetime.fromisoformat(r["created_at"]),
                    datetime.fromisoformat(r["created_at"]) + timedelta(seconds=r["duration_s"])) for r in records)
    assert spans[0][1] <= spans[1][0] + timedelta(milliseconds=5), "two operations on the target overlapped"
    assert all(r["table_rows"]["public.bulk"] == BIG_ROWS for r in records)


# --- Redis restarted in the middle -------------------------------------------------------------------------
@pytest.mark.slow
def test_redis_restarted_during_a_backup_the_backup_and_its_restore_complete(
        big, processes, tmp_path, make_pg_database):
    own = ThrowawayRedis()  # the session's Redis stays up for everyone else
    own.start()
    try:
        dst_url = make_pg_database("rel_redis_dst")
        env = worker_env(tmp_path, own.url, {"big": big["url"], "dst": dst_url})
        worker = start_worker(processes, env, tmp_path, "redis-restart")
        task_id = send(own.url, "backups.create", target="big")
        wait_for_tool(worker, "pg_dump")
        own.restart()  # append-only file: the queue and unacked messages survive
        meta = wait_result(own.url, task_id, timeout=120)
        assert meta["status"] == "SUCCESS", failure_text(meta)

        # The next step of the chain, sent once Redis is back, runs on the reconnected worker.
        restore_id = send(own.url, "backups.restore", backup_filename=meta["result"]["backup_filename"], target="dst",
                          source_target="big")
        restored = wait_result(own.url, restore_id, timeout=120)
        assert restored["status"] == "SUCCESS", failure_text(restored)
        assert richdb_pg.table_row_counts(dst_url)["public.bulk"] == BIG_ROWS
        records = [r for r in assert_every_backup_whole(tmp_path / "backups") if r["target"] == "big"]
        assert len(records) == 1
        assert temp_files(tmp_path / "backups") == []
        # No message is left unacknowledged: nothing will run a second time after the visibility timeout.
        connection = redis.Redis.from_url(own.url)
        assert connection.hlen("unacked") == 0 and connection.llen("celery") == 0
        connection.close()
    finally:
        own.destroy()


# --- the target's PostgreSQL restarted during a backup -----------------------------------------------------
@pytest.mark.slow
def test_target_postgres_restarted_during_a_backup_fails_cleanly_and_the_retry_succeeds(
        pg_server, big, broker, processes, tmp_path):
    backups = tmp_path / "backups"
    env = worker_env(tmp_path, broker, {"big": big["url"]})
    worker = start_worker(processes, env, tmp_path, "pg-restart")
    task_id = send(broker, "backups.create", target="big")
    wait_for_tool(worker, "pg_dump")
    wait_until(lambda: any(p.stat().st_size > 10_000_000 for p in temp_files(backups)), 60, what="10 MB dumped")
    pg_server.restart()
    meta = wait_result(broker, task_id, timeout=120)
    assert meta["status"] == "SUCCESS", failure_text(meta)
    assert meta.get("retries", 0) >= 1, "the interrupted attempt should have been retried"
    log = worker.output()
    assert "Retry in" in log and errors.TARGET_UNREACHABLE in log
    records = assert_every_backup_whole(backups)
    assert len(records) == 1 and records[0]["table_rows"]["public.bulk"] == BIG_ROWS
    assert_no_partial_under_a_backup_name(backups)
    assert temp_files(backups) == []


# --- disk full (conftest's `full_disk`) ----------------------------------------------------------------------
def small_sqlite(path: Path, rows: int, blob: int = 100) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO t (body) VALUES (?)", ((os.urandom(blob),) for _ in range(rows)))
    return f"sqlite:///{path}"


def test_disk_full_fails_clearly_leaves_no_partial_file_and_keeps_older_backups(big, full_disk, tmp_path):
    settings = load_settings({
        "BACKUP_TARGETS": json.dumps({"small": small_sqlite(tmp_path / "small.sqlite3", 20),
                                      "fat": small_sqlite(tmp_path / "fat.sqlite3", 3000, blob=1000),
                                      "big": big["url"]}),
        "BACKUP_DIR": str(full_disk), "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads")}, dotenv_path=None)
    older = operations.create(settings, target="small")
    listed_before = operations.list_backups(settings)

    attempts = [dict(target="big"), dict(target="big", format="pgdump"), dict(target="fat", format="sqlite"),
                dict(target="fat", format="sql")]
    for kwargs in attempts:
        with pytest.raises(Exception) as caught:  # noqa: B017 - the type is checked below
            operations.create(settings, **kwargs)
        message = str(caught.value)
        assert any(reason in message for reason in DISK_FULL), (kwargs, message)
        assert temp_files(full_disk) == [], kwargs
        assert_no_partial_under_a_backup_name(full_disk)
        assert operations.list_backups(settings) == listed_before
        assert BackupStore(full_disk).verified(older["backup_filename"])[1]["sha256"] == older["sha256"]

    # The dump itself fits, its manifest does not: the published name is taken back.
    stat = os.statvfs(full_disk)
    pages = math.ceil(older["size_bytes"] / stat.f_frsize)
    with open(full_disk / ".filler", "wb") as filler:
        filler.write(b"\0" * ((stat.f_bavail - pages) * stat.f_frsize))
    with pytest.raises(Exception) as caught:  # noqa: B017
        operations.create(settings, target="small")
    assert any(reason in str(caught.value) for reason in DISK_FULL), str(caught.value)
    (full_disk / ".filler").unlink()
    assert temp_files(full_disk) == []
    assert_no_partial_under_a_backup_name(full_disk)
    assert operations.list_backups(settings) == listed_before


def test_disk_full_is_reported_as_the_engines_write_failure(full_disk, tmp_path):
    settings = load_settings({
        "BACKUP_TARGETS": json.dumps({"fat": small_sqlite(tmp_path / "fat.sqlite3", 3000, blob=1000)}),
        "BACKUP_DIR": str(full_disk), "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads")}, dotenv_path=None)
    for backup_format in ("sql", "sqlite"):
        with pytest.raises(errors.DumpError, match=re.escape(errors.WRITE_FAILED)):
            operations.create(settings, target="fat", format=backup_format)


# --- an altered backup file --------------------------------------------------------------------------------
@pytest.fixture
def small_pg(pg_server, make_pg_database, tmp_path):
    src = make_pg_database("rel_src")
    dst = make_pg_database("rel_dst")
    richdb_pg.build_rich_database(src, rows_per_table=30, seed=2)
    richdb_pg.build_rich_database(dst, rows_per_table=20, seed=3)
    settings = load_settings({"BACKUP_TARGETS": json.dumps({"src": src, "dst": dst}),
                              "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"),
                              "BACKUP_COMPRESSION": "none"},  # the tests edit the stored SQL
                             dotenv_path=None)
    return {"src": src, "dst": dst, "settings": settings, "dir": tmp_path / "backups"}


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("alteration", ["flipped byte", "truncated", "appended", "replaced by an older dump"])
def test_an_altered_backup_is_refused_by_verify_and_restore(small_pg, alteration):
    settings = small_pg["settings"]
    backup = operations.create(settings, target="src")
    path = Path(backup["path"])
    if alteration == "flipped byte":
        _flip_byte(path, path.stat().st_size // 2)
    elif alteration == "truncated":
        with path.open("r+b") as handle:
            handle.truncate(path.stat().st_size - 100)
    elif alteration == "appended":
        with path.open("ab") as handle:
            handle.write(b"DROP TABLE public.customers;\n")
    else:
        other = operations.create(settings, target="dst")
        path.write_bytes(Path(other["path"]).read_bytes())
    before = richdb_pg.database_state(small_pg["dst"])
    names_before = sorted(p.name for p in small_pg["dir"].iterdir())

    with pytest.raises(errors.ArtifactError, match=re.escape(errors.CHECKSUM_MISMATCH)):
        operations.verify(settings, backup_filename=backup["backup_filename"])
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.CHECKSUM_MISMATCH)):
        operations.restore(settings, backup_filename=backup["backup_filename"], target="dst", source_target="src")
    assert richdb_pg.database_state(small_pg["dst"]) == before
    assert sorted(p.name for p in small_pg["dir"].iterdir()) == names_before  # not even a safety backup


def test_a_backup_name_without_a_manifest_is_not_a_backup(small_pg):
    """What a crash between publishing the file and writing its manifest would leave."""
    settings, folder = small_pg["settings"], small_pg["dir"]
    real = operations.create(settings, target="src")
    orphan = folder / real["backup_filename"].replace(".sql", "_7.sql")
    orphan.write_bytes(Path(real["path"]).read_bytes())
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.MANIFEST_MISSING)):
        operations.restore(settings, backup_filename=orphan.name, target="dst")
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.MANIFEST_MISSING)):
        operations.verify(settings, backup_filename=orphan.name)
    assert [m["backup_filename"] for m in operations.list_backups(settings)] == [real["backup_filename"]]
    assert orphan.name not in json.dumps(operations.prune(settings))


# --- temp files left by dead workers -----------------------------------------------------------------------
def test_sweep_removes_the_temp_files_of_dead_writers_only(tmp_path):
    """A writer holds an flock on its temp file; the kernel drops it when the writer dies, so
    a lockable temp file is an orphan whatever pid or host its name carries."""
    folder = tmp_path / "backups"
    folder.mkdir()
    host = socket.gethostname()
    dead = folder / f"{TEMP_PREFIX}{host}.{os.getpid()}.{uuid.uuid4().hex}.sql"  # our pid, yet nobody writes it
    other_host = folder / f"{TEMP_PREFIX}elsewhere.1.{uuid.uuid4().hex}.sql"
    for path in (dead, other_host):
        path.write_bytes(b"partial")
    store = BackupStore(folder)
    with store.catalogue.new_artifact(FORMATS["sql"], "live", datetime.now(UTC)) as live:
        live.write(b"being written")
        assert sorted(store.catalogue.sweep()) == sorted([dead.name, other_host.name])
        assert len(list(folder.glob(f"{TEMP_PREFIX}*"))) == 1  # the live writer's own temp file


def test_sweep_removes_a_stale_temp_file_whose_pid_was_reused(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    # Written by a worker that died; the pid in its name now belongs to an unrelated process.
    reused = folder / f"{TEMP_PREFIX}{socket.gethostname()}.{os.getppid()}.{uuid.uuid4().hex}.sql"
    reused.write_bytes(b"partial dump of a worker that was killed before the restart")
    BackupStore(folder).catalogue.sweep()
    assert not reused.exists()


@pytest.mark.slow
def test_the_deployed_worker_command_sweeps_temp_files_at_start(broker, processes, tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["worker"]["command"]
    assert command[0] == "python"
    backups = tmp_path / "backups"
    backups.mkdir()
    stale = backups / f"{TEMP_PREFIX}{socket.gethostname()}.999999.{uuid.uuid4().hex}.sql"
    stale.write_bytes(b"partial dump of a killed worker")
    env = worker_env(tmp_path, broker, {"small": small_sqlite(tmp_path / "s.sqlite3", 5)})
    worker = ManagedProcess([sys.executable, *command[1:]], env, tmp_path, tmp_path / "compose-worker.log").start()
    processes.append(worker)
    worker.wait_for("ready.", timeout=60)
    assert not stale.exists()


# --- two workers, many operations at once ------------------------------------------------------------------
class ActivitySampler(threading.Thread):
    """Samples pg_stat_activity: a target database with two active worker sessions is an overlap."""

    def __init__(self, pg_server, databases: list[str]) -> None:
        super().__init__(daemon=True)
        self.conn = pg_server.connect()
        self.conn.autocommit = True
        self.databases = databases
        self.stop = threading.Event()
        self.overlaps: list[tuple] = []
        self.samples = 0
        self.busy_samples = 0

    def run(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute("SELECT datname, array_agg(pid || ' ' || left(query, 60)) FROM pg_stat_activity"
                            " WHERE application_name = 'backup-worker' AND state = 'active'"
                            " AND backend_type = 'client backend' AND datname = ANY(%s)"
                            " GROUP BY datname", (self.databases,))
                rows = cur.fetchall()
                self.samples += 1
                self.busy_samples += bool(rows)
                self.overlaps += [row for row in rows if len(row[1]) > 1]
                time.sleep(0.005)
        self.conn.close()


@pytest.mark.slow
def test_two_workers_many_operations_never_two_on_one_target(pg_server, broker, processes, tmp_path,
                                                              make_pg_database):
    urls = {}
    for name in ("alpha", "beta"):
        urls[name] = make_pg_database(f"rel_{name}")
        conn = richdb_pg.connect(urls[name])
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, body text);"
                        "INSERT INTO items SELECT g, repeat('i', 100) FROM generate_series(1, 60000) g")
        conn.close()
    urls["gamma"] = small_sqlite(tmp_path / "gamma.sqlite3", 20000)
    env = worker_env(tmp_path, broker, urls)
    settings = settings_for(env)
    seeds = {name: operations.create(settings, target=name) for name in urls}
    for index in (1, 2):
        start_worker(processes, env, tmp_path, f"racer{index}", concurrency=2)

    sampler = ActivitySampler(pg_server, [url.rsplit("/", 1)[1] for name, url in urls.items() if name != "gamma"])
    sampler.start()
    sent = []
    for round_ in range(4):
        for name in urls:
            sent.append(("create", name, send(broker, "backups.create", target=name)))
            if round_ % 2:
                sent.append(("restore", name, send(broker, "backups.restore", target=name,
                                                   backup_filename=seeds[name]["backup_filename"])))
    try:
        outcomes = [(kind, name, wait_result(broker, task_id, timeout=240)) for kind, name, task_id in sent]
    finally:
        sampler.stop.set()
        sampler.join()

    failures = [(kind, name, failure_text(meta)) for kind, name, meta in outcomes if meta["status"] != "SUCCESS"]
    assert not failures, failures  # the lock waits (BACKUP_LOCK_WAIT_S=600): every operation gets its turn
    assert sampler.busy_samples > 10 and not sampler.overlaps, (sampler.samples, sampler.overlaps)

    records = assert_every_backup_whole(tmp_path / "backups")
    # 3 seeds + 12 creates + 6 safety backups taken inside the restores
    assert len(records) == 3 + 12 + 6
    for name in urls:
        spans = sorted((datetime.fromisoformat(r["created_at"]),
                        datetime.fromisoformat(r["created_at"]) + timedelta(seconds=r["duration_s"]))
                       for r in records if r["target"] == name)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start + timedelta(milliseconds=5), f"{name}: two operations overlapped"
    assert temp_files(tmp_path / "backups") == []
    assert all(p.name.endswith((".sql", ".sqlite3")) for p in backup_files(tmp_path / "backups"))


# --- a worker killed -9 leaves its password file behind ----------------------------------------------------
def test_a_killed_worker_leaves_no_password_file_behind(big, broker, processes, tmp_path):
    env = worker_env(tmp_path, broker, {"big": big["url"]})
    worker = start_worker(processes, env, tmp_path, "pgpass")
    send(broker, "backups.create", target="big")
    dump_pid, _ = wait_for_tool(worker, "pg_dump")
    # read again while pg_dump's wrapper execs the real binary (its environment reads empty meanwhile)
    passfile = wait_until(lambda: passfile_of(dump_pid), 10, what="pg_dump's PGPASSFILE")
    # The password file is a memfd inherited as /dev/fd/N: it lives only as long as the processes.
    assert str(passfile).startswith("/dev/fd/"), passfile
    assert stat.S_ISREG(os.stat(f"/proc/{dump_pid}/fd/{passfile.name}").st_mode)
    worker.kill()
    wait_until(lambda: not Path(f"/proc/{dump_pid}/fd/{passfile.name}").exists(), 20, what="pg_dump gone")
    assert not list(Path(tempfile.gettempdir()).glob("bw-pgpass-*")), "no password folder on disk (old layout)"


# --- backups.verify: checksum, then a restore drill --------------------------------------------------------
def _drill_databases(pg_server) -> list[str]:
    conn = pg_server.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bw\\_drill\\_%'")
        names = [name for (name,) in cur.fetchall()]
    conn.close()
    return names


def _rewrite(path: Path, data: bytes, manifest_changes: dict | None = None) -> None:
    """Change a backup and make its manifest agree (sizes, checksums, signature): only the drill can tell."""
    path.write_bytes(data)
    store = BackupStore(path.parent)
    record = store.read_manifest(path.name)
    digest = hashlib.sha256(data).hexdigest()
    record.update(size_bytes=len(data), sha256=digest, content_bytes=len(data), content_sha256=digest,
                  **(manifest_changes or {}))
    store.write_manifest(record)


def test_verify_checks_the_checksum_then_drills_a_restore_and_compares_row_counts(small_pg, pg_server):
    settings = small_pg["settings"]
    backup = operations.create(settings, target="src")
    result = operations.verify(settings, backup_filename=backup["backup_filename"])
    assert result["checksum_ok"] is True and result["drill_ok"] is True
    assert result["table_rows"] == backup["table_rows"] == richdb_pg.table_row_counts(small_pg["src"])
    assert _drill_databases(pg_server) == []

    # The file and its manifest agree, but the manifest promises a row the file does not hold.
    path = Path(backup["path"])
    table = next(name for name, count in backup["table_rows"].items() if count)
    _rewrite(path, path.read_bytes(), {"table_rows": {**backup["table_rows"], table: backup["table_rows"][table] + 1}})
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.VERIFY_FAILED)) as caught:
        operations.verify(settings, backup_filename=backup["backup_filename"])
    assert table in str(caught.value)

    # A file whose SQL fails half-way: the drill fails, the scratch database is dropped.
    data = path.read_bytes()
    cut = data.index(b"\nCOPY ") + 1
    _rewrite(path, data[:cut] + b"SELECT 1/0;\n" + data[cut:], {"table_rows": backup["table_rows"]})
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.VERIFY_FAILED)):
        operations.verify(settings, backup_filename=backup["backup_filename"])
    assert _drill_databases(pg_server) == []


# --- retention ---------------------------------------------------------------------------------------------
def _fake_backup(store: BackupStore, target: str, created_at: datetime, body: bytes = b"-- fake\n") -> str:
    record = store.publish_bytes(body + created_at.isoformat().encode(), target,
                                 {"format": "sql", "target": target, "dialect": "postgresql", "include_data": "full",
                                  "table_rows": {}, "tables": 0, "rows": 0, "method": "pg_dump", "duration_s": 0.0},
                                 created_at=created_at)
    return record["backup_filename"]


@pytest.fixture
def strict_retention(tmp_path):
    """keep_last=1 and no daily/weekly/monthly slots: the harshest policy there is."""
    settings = load_settings({"BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"),
                              "BACKUP_TARGETS": json.dumps({"a": f"sqlite:///{tmp_path}/a.db",
                                                            "b": f"sqlite:///{tmp_path}/b.db"}),
                              "BACKUP_KEEP_LAST": "0", "BACKUP_KEEP_DAILY": "0", "BACKUP_KEEP_WEEKLY": "0",
                              "BACKUP_KEEP_MONTHLY": "0"}, dotenv_path=None)
    return settings, BackupStore(settings.backup_dir)


def test_retention_never_deletes_the_last_good_backup_and_never_counts_corrupt_ones(strict_retention):
    settings, store = strict_retention
    now = datetime.now(UTC).replace(microsecond=0)
    names = [_fake_backup(store, "a", now - timedelta(days=day)) for day in range(5)]  # newest first
    others = [_fake_backup(store, "b", now - timedelta(days=day, hours=1)) for day in range(3)]
    for corrupt in names[:2]:
        _flip_byte(settings.backup_dir / corrupt, 2)

    result = operations.prune(settings, target="a")
    assert result["kept"] == [names[2]]
    assert sorted(result["corrupt"]) == sorted(names[:2])
    assert sorted(result["deleted"]) == sorted(names[3:])
    for name in names[:3] + others:
        assert (settings.backup_dir / name).is_file()
    store.verified(names[2])

    # Everything corrupt: nothing at all is deleted.
    for name in others:
        _flip_byte(settings.backup_dir / name, 2)
    result = operations.prune(settings, target="b")
    assert result["kept"] == [] and result["deleted"] == [] and sorted(result["corrupt"]) == sorted(others)
    assert all((settings.backup_dir / name).is_file() for name in others)


def test_retention_never_deletes_a_corrupt_backup(strict_retention):
    settings, store = strict_retention
    now = datetime.now(UTC)
    newest = _fake_backup(store, "a", now)
    oldest = _fake_backup(store, "a", now - timedelta(days=40))
    _flip_byte(settings.backup_dir / oldest, 2)
    result = operations.prune(settings, target="a")
    assert result["kept"] == [newest]
    assert (settings.backup_dir / oldest).is_file() and oldest in result["corrupt"]
