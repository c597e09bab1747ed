"""The tasks through a real worker process, a real broker (Redis, and RabbitMQ where marked) and a
real PostgreSQL.

Clients here are separate processes that import only `celery`, as another application would.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from config.settings import load_settings
from tasks import operations
from tasks.locks import target_lock
from tests.processes import celery_worker, clean_environment
from tests.reliability_helpers import Transport, urls, wait_until
from tests.servers import ThrowawayPostgres

BOTH_BROKERS = pytest.mark.parametrize("transport", ["redis", "rabbitmq"], indirect=True)

CLIENT = textwrap.dedent("""
    import json, sys
    from celery import Celery
    broker, backend, name = sys.argv[1], sys.argv[2], sys.argv[3]
    kwargs, timeout = json.loads(sys.argv[4]), float(sys.argv[5])
    app = Celery(broker=broker, backend=backend)
    result = app.send_task(name, kwargs=kwargs)
    try:
        value = result.get(timeout=timeout, propagate=False)
    except Exception as exc:
        value = repr(exc)
    print(json.dumps({"id": result.id, "state": result.state, "result": value if result.successful() else str(value),
                      "retries": (result.info or {}).get("retries") if isinstance(result.info, dict) else None},
                     default=str))
""")


def client_argv(where: str | Transport, name: str, kwargs: dict, timeout: float) -> list[str]:
    return [sys.executable, "-c", CLIENT, *urls(where), name, json.dumps(kwargs), str(timeout)]


def send(where: str | Transport, name: str, timeout: float = 120, **kwargs) -> dict:
    """send_task by name from a process that has never seen this project's code."""
    done = subprocess.run(client_argv(where, name, kwargs, timeout), capture_output=True, text=True,
                          timeout=timeout + 60, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def seed(server: ThrowawayPostgres, dbname: str, rows: int = 500) -> None:
    conn = server.connect(dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);"
                    "INSERT INTO notes (body) SELECT repeat('n', 200) || g FROM generate_series(1, %s) g;", (rows,))
    conn.close()


@pytest.fixture
def deployment(pg_server, transport, make_pg_database, tmp_path):
    source = make_pg_database("task_src")
    target = make_pg_database("task_dst")
    seed(pg_server, source.rsplit("/", 1)[1])
    env = clean_environment(
        BACKUP_TARGETS=json.dumps({"src": source, "dst": target}),
        BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
        CELERY_BROKER_URL=transport.broker, CELERY_RESULT_BACKEND=transport.backend,
    )
    worker = celery_worker(env, tmp_path)
    worker.wait_for("ready.")
    yield {"broker": transport, "dir": tmp_path / "backups", "worker": worker, "env": env,
           "dst": target.rsplit("/", 1)[1]}
    worker.stop()
    assert pg_server.password not in worker.output()


def test_create_and_restore_by_name_from_another_application(deployment, pg_server):
    created = send(deployment["broker"], "backups.create", target="src")
    assert created["state"] == "SUCCESS", created
    manifest = created["result"]
    path = Path(manifest["path"])
    assert path.is_file() and path.stat().st_size == manifest["size_bytes"] > 0
    assert len(manifest["sha256"]) == 64 and manifest["rows"] == 500

    restored = send(deployment["broker"], "backups.restore", backup_filename=manifest["backup_filename"],
                    target="dst", source_target="src")
    assert restored["state"] == "SUCCESS", restored
    conn = pg_server.connect(deployment["dst"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM notes")
        assert cur.fetchone()[0] == 500
    conn.close()
    listed = send(deployment["broker"], "backups.list", target="src")
    assert [m["backup_filename"] for m in listed["result"]] == [manifest["backup_filename"]]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"backup_filename": "../../etc/passwd", "target": "dst"}, "Refused path outside its folder"),
        ({"backup_filename": "src_db_backup_20250101_000000.sql", "target": "dst"}, "Backup file not found"),
        ({"backup_filename": "x.sql", "target": "elsewhere"}, "Unknown target"),
    ],
)
def test_a_bad_restore_fails_with_its_reason_in_the_result_backend(deployment, kwargs, reason):
    outcome = send(deployment["broker"], "backups.restore", **kwargs)
    assert outcome["state"] == "FAILURE"
    assert reason in outcome["result"]


def test_wrong_arguments_fail_clearly(deployment):
    outcome = send(deployment["broker"], "backups.create", target="src", format="xml")
    assert outcome["state"] == "FAILURE" and "Unknown backup format" in outcome["result"]
    outcome = send(deployment["broker"], "backups.create", target="src", colour="blue")
    assert outcome["state"] == "FAILURE" and "colour" in outcome["result"]


@BOTH_BROKERS
def test_two_backups_of_one_target_never_overlap(deployment):
    """Three backups of one target sent at once while the test holds the target's lock: each finds it
    busy (and gives its slot back), then, once it is free, they run one at a time."""
    broker, worker = deployment["broker"], deployment["worker"]
    settings = load_settings(deployment["env"], dotenv_path=None)
    engine = operations.engine_of(settings, settings.targets["src"])
    with target_lock(settings, engine, wait_s=0):
        procs = [subprocess.Popen(client_argv(broker, "backups.create", {"target": "src"}, 120),
                                  stdout=subprocess.PIPE, text=True, cwd="/") for _ in range(3)]
        # Both pool processes took one and found the target busy (the third waits on the queue).
        wait_until(lambda: worker.output().count("Retry in") >= 2, 60, interval=0.1, what="two busy retries")
    outcomes = [json.loads(p.communicate(timeout=200)[0]) for p in procs]
    assert all(o["state"] == "SUCCESS" for o in outcomes), outcomes
    assert "TargetBusy" in worker.output()
    spans = sorted((datetime.fromisoformat(o["result"]["created_at"]),
                    datetime.fromisoformat(o["result"]["created_at"]) + timedelta(seconds=o["result"]["duration_s"]))
                   for o in outcomes)
    assert len({o["result"]["backup_filename"] for o in outcomes}) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start + timedelta(milliseconds=5)


@pytest.fixture
def flaky(transport, tmp_path):
    """A PostgreSQL of the test's own (stopped and started by it) and a worker retrying every 2-4 s."""
    server = ThrowawayPostgres().init()
    server.start()
    try:
        url = server.create_database("flaky")
        seed(server, "flaky", rows=50)
        env = clean_environment(
            BACKUP_TARGETS=json.dumps({"flaky": url}), BACKUP_DIR=str(tmp_path / "backups"),
            BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"), CELERY_BROKER_URL=transport.broker,
            CELERY_RESULT_BACKEND=transport.backend, BACKUP_RETRY_BACKOFF_S="2", BACKUP_RETRY_BACKOFF_MAX_S="4",
            BACKUP_TASK_MAX_RETRIES="6",
        )
        worker = celery_worker(env, tmp_path, name="flaky")
        try:
            worker.wait_for("ready.")
            yield {"server": server, "worker": worker, "broker": transport}
        finally:
            worker.stop()
        assert server.password not in worker.output()
    finally:
        server.destroy()


@BOTH_BROKERS
def test_a_backup_retries_while_the_server_is_down_and_succeeds_when_it_is_back(flaky):
    server, worker = flaky["server"], flaky["worker"]
    server.stop()
    client = subprocess.Popen(client_argv(flaky["broker"], "backups.create", {"target": "flaky"}, 120),
                              stdout=subprocess.PIPE, text=True)
    worker.wait_for("Retry in", timeout=60)
    server.start()
    outcome = json.loads(client.communicate(timeout=200)[0])
    assert outcome["state"] == "SUCCESS", outcome
    assert outcome["result"]["rows"] == 50
    assert "Target database unreachable" in worker.output()


def test_a_backup_fails_with_the_reason_after_its_last_retry(flaky):
    server, worker = flaky["server"], flaky["worker"]
    server.stop()
    env_note = send(flaky["broker"], "backups.create", timeout=150, target="flaky")
    assert env_note["state"] == "FAILURE"
    assert "Target database unreachable" in env_note["result"]
    assert "connection" in env_note["result"].lower()
    assert worker.output().count("Retry in") == 6  # BACKUP_TASK_MAX_RETRIES, then the failure
    assert server.password not in worker.output() + json.dumps(env_note)
