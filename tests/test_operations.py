"""Operations (issue 15): the metrics page, notifications, the status view, and `celery -A worker`.

The metrics page is parsed by prometheus-client's own text parser and its values checked against
backups made here; notifications go through Apprise's `json://` to a local HTTP catcher; an endpoint
that refuses does not fail the task; `status` is read as JSON and as a table. Everything runs
against real servers and real worker processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ManagedProcess, celery_worker, clean_environment
from tests.servers import free_port
from tests.test_celery_tasks import send


class Catcher:
    """A local HTTP endpoint that keeps what Apprise's json:// posts to it (or refuses it)."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Event()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                catcher.received.append(json.loads(body or b"{}"))
                catcher.arrived.set()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def catcher():
    endpoint = Catcher()
    yield endpoint
    endpoint.close()


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def ops(pg_server, make_pg_database, tmp_path, catcher):
    source = make_pg_database("ops_src")
    conn = pg_server.connect(source.rsplit("/", 1)[1])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50)")
    conn.close()
    env = clean_environment(BACKUP_TARGETS=json.dumps({"src": source,
                                                       "down": f"postgresql://u:secret-pw@127.0.0.1:{free_port()}/x"}),
                            BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
                            BACKUP_NOTIFY_URLS=catcher.url, BACKUP_TASK_MAX_RETRIES="0")
    return {"env": env, "tmp": tmp_path}


def metrics(ops: dict) -> dict[tuple[str, tuple], float]:
    done = run_cli(ops["env"], ops["tmp"], "metrics", "--once")
    assert done.returncode == 0, done.stderr
    values = {}
    for family in text_string_to_metric_families(done.stdout):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_status_and_notifications_follow_backups_and_failures(ops, catcher):
    made = run_cli(ops["env"], ops["tmp"], "backup", "--target", "src", "--local")
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    verified = run_cli(ops["env"], ops["tmp"], "verify", manifest["backup_filename"], "--local")
    assert verified.returncode == 0, verified.stderr
    failed = run_cli(ops["env"], ops["tmp"], "backup", "--target", "down", "--local")
    assert failed.returncode == 1

    values = metrics(ops)
    created = datetime.fromisoformat(manifest["created_at"]).timestamp()
    src_sql = (("format", "sql"), ("target", "src"))
    assert values[("backup_worker_last_success_timestamp_seconds", src_sql)] == pytest.approx(created)
    assert values[("backup_worker_last_backup_size_bytes", src_sql)] == manifest["size_bytes"]
    assert values[("backup_worker_last_backup_duration_seconds", src_sql)] == pytest.approx(manifest["duration_s"])
    assert values[("backup_worker_backups", (("target", "src"),))] == 1
    assert values[("backup_worker_stale", (("target", "src"),))] == 0
    assert values[("backup_worker_stale", (("target", "down"),))] == 1
    now = datetime.now(UTC).timestamp()
    assert now - 120 < values[("backup_worker_last_verify_success_timestamp_seconds", (("target", "src"),))] <= now
    down_backup = (("operation", "backup"), ("target", "down"))
    assert now - 120 < values[("backup_worker_last_failure_timestamp_seconds", down_backup)] <= now
    assert values[("backup_worker_last_failure_timestamp_seconds", (("operation", "backup"), ("target", "src")))] == 0

    assert catcher.arrived.wait(10)
    note = catcher.received[-1]
    text = json.dumps(note)
    assert "down" in text and "backup" in text and "failure" in text and "secret-pw" not in text

    status = json.loads(run_cli(ops["env"], ops["tmp"], "status", "--json").stdout)
    assert status["src"]["newest_backup"] == manifest["backup_filename"] and status["src"]["stale"] is False
    assert status["src"]["last_verify"] and status["down"]["last_failure"]["operation"] == "backup"
    table = run_cli(ops["env"], ops["tmp"], "status").stdout
    assert table.splitlines()[0].split()[:3] == ["target", "newest", "backup"]
    assert any(line.startswith("down") and " yes " in line for line in table.splitlines())


def test_a_notification_endpoint_that_refuses_does_not_fail_the_task(ops, redis_server, processes):
    refusing = Catcher(status=500)
    try:
        env = {**ops["env"], "BACKUP_NOTIFY_URLS": refusing.url, "BACKUP_NOTIFY_ON": "all",
               "CELERY_BROKER_URL": redis_server.url.rsplit("/", 1)[0] + "/9",
               "CELERY_RESULT_BACKEND": redis_server.url.rsplit("/", 1)[0] + "/9"}
        worker = celery_worker(env, ops["tmp"], name="notify")
        processes.append(worker)
        worker.wait_for("ready.")
        failed = send(env["CELERY_BROKER_URL"], "backups.create", target="down")
        assert failed["state"] == "FAILURE" and "Target database unreachable" in failed["result"]
        assert refusing.arrived.wait(10)  # it was tried, it refused, and the outcome is the task's own
        made = send(env["CELERY_BROKER_URL"], "backups.verify_latest", target="src")
        assert made["state"] == "SUCCESS"
    finally:
        refusing.close()


def test_celery_finds_the_app_by_its_package_name(ops, redis_server, processes):
    """`celery -A worker worker`, Celery's own convention, runs the tasks (as `-A worker.app` does)."""
    broker = redis_server.url.rsplit("/", 1)[0] + "/10"
    env = {**ops["env"], "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
    worker = ManagedProcess([sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel=INFO",
                             "--concurrency=1", "-n", "bypackage@%h", "--without-gossip", "--without-mingle"],
                            env, ops["tmp"], ops["tmp"] / "bypackage.log").start()
    processes.append(worker)
    worker.wait_for("ready.")
    listed = send(broker, "backups.list", target="src")
    assert listed["state"] == "SUCCESS" and listed["result"] == []
