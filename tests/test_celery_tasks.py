"""The tasks through a real worker process, a real Redis and a real PostgreSQL.

Clients here are separate processes that import only `celery`, as another application would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.processes import celery_worker, clean_environment
from tests.servers import ThrowawayPostgres

CLIENT = textwrap.dedent("""
    import json, sys
    from celery import Celery
    broker, name, kwargs, timeout = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    app = Celery(broker=broker, backend=broker)
    result = app.send_task(name, kwargs=kwargs)
    try:
        value = result.get(timeout=timeout, propagate=False)
    except Exception as exc:
        value = repr(exc)
    print(json.dumps({"id": result.id, "state": result.state, "result": value if result.successful() else str(value),
                      "retries": (result.info or {}).get("retries") if isinstance(result.info, dict) else None},
                     default=str))
""")


def send(redis_url: str, name: str, timeout: float = 120, **kwargs) -> dict:
    """send_task by name from a process that has never seen this project's code."""
    done = subprocess.run([sys.executable, "-c", CLIENT, redis_url, name, json.dumps(kwargs), str(timeout)],
                          capture_output=True, text=True, timeout=timeout + 60, cwd="/")
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
def deployment(pg_server, redis_server, make_pg_database, tmp_path):
    source = make_pg_database("task_src")
    target = make_pg_database("task_dst")
    seed(pg_server, source.rsplit("/", 1)[1])
    redis_server_db = redis_server.url
    env = clean_environment(
        BACKUP_TARGETS=json.dumps({"src": source, "dst": target}),
        BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
        CELERY_BROKER_URL=redis_server_db, CELERY_RESULT_BACKEND=redis_server_db,
    )
    worker = celery_worker(env, tmp_path)
    worker.wait_for("ready.")
    yield {"broker": redis_server_db, "dir": tmp_path / "backups", "worker": worker,
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


def test_two_backups_of_one_target_never_overlap(deployment):
    broker = deployment["broker"]
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, broker, "backups.create", json.dumps({"target": "src"}),
                               "120"], stdout=subprocess.PIPE, text=True, cwd="/") for _ in range(3)]
    outcomes = [json.loads(p.communicate(timeout=200)[0]) for p in procs]
    assert all(o["state"] == "SUCCESS" for o in outcomes), outcomes
    spans = sorted((datetime.fromisoformat(o["result"]["created_at"]),
                    datetime.fromisoformat(o["result"]["created_at"]) + timedelta(seconds=o["result"]["duration_s"]))
                   for o in outcomes)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start
    assert "Target busy" not in deployment["worker"].output()


def test_a_backup_retries_while_the_server_is_down_and_succeeds_when_it_is_back(redis_server, tmp_path):
    server = ThrowawayPostgres().init()
    server.start()
    try:
        url = server.create_database("flaky")
        seed(server, "flaky", rows=50)
        env = clean_environment(
            BACKUP_TARGETS=json.dumps({"flaky": url}), BACKUP_DIR=str(tmp_path / "backups"),
            BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"), CELERY_BROKER_URL=redis_server.url,
            CELERY_RESULT_BACKEND=redis_server.url, BACKUP_RETRY_BACKOFF_S="2", BACKUP_RETRY_BACKOFF_MAX_S="4",
            BACKUP_TASK_MAX_RETRIES="6",
        )
        worker = celery_worker(env, tmp_path, name="flaky")
        worker.wait_for("ready.")
        try:
            server.stop()
            client = subprocess.Popen([sys.executable, "-c", CLIENT, redis_server.url, "backups.create",
                                       json.dumps({"target": "flaky"}), "120"], stdout=subprocess.PIPE, text=True)
            worker.wait_for("Retry in", timeout=60)
            server.start()
            outcome = json.loads(client.communicate(timeout=200)[0])
            assert outcome["state"] == "SUCCESS", outcome
            assert outcome["result"]["rows"] == 50

            server.stop()
            env_note = send(redis_server.url, "backups.create", timeout=150, target="flaky")
            assert env_note["state"] == "FAILURE"
            assert "Target database unreachable" in env_note["result"]
            assert "connection" in env_note["result"].lower()
            assert worker.output().count("Retry in") >= 6
            assert server.password not in worker.output() + json.dumps(env_note)
        finally:
            worker.stop()
    finally:
        server.destroy()
