"""Operations (issue 15): the metrics page, notifications, the status view, and `celery -A worker`.

The metrics page is parsed by prometheus-client's own text parser and its values checked against
backups made here; notifications go through Apprise's `json://` to a local HTTP catcher; an endpoint
that refuses does not fail the task; `status` is read as JSON and as a table. Everything runs
against real servers and real worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backup_engine import errors
from config.settings import load_settings
from tasks import operations
from tests.engine_api import BackupStore
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
    pg_server.execute(source, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50)")
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


def test_a_notification_endpoint_that_refuses_does_not_fail_the_task(ops, broker, processes):
    refusing = Catcher(status=500)
    try:
        env = {**ops["env"], "BACKUP_NOTIFY_URLS": refusing.url, "BACKUP_NOTIFY_ON": "all",
               "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
        worker = celery_worker(env, ops["tmp"], name="notify")
        processes.append(worker)
        worker.wait_for("ready.")
        failed = send(env["CELERY_BROKER_URL"], "backups.create", target="down")
        assert failed["state"] == "FAILURE" and "Target database unreachable" in failed["result"]
        assert refusing.arrived.wait(10)  # it was tried, it refused, and the outcome is the task's own
        made = send(env["CELERY_BROKER_URL"], "backups.verify_latest", target="src")
        assert made["state"] == "SUCCESS" and made["result"] == []  # no backup of src yet: nothing to drill
    finally:
        refusing.close()


def test_celery_finds_the_app_by_its_package_name(ops, broker, processes):
    """`celery -A worker worker`, Celery's own convention, runs the tasks (as `-A worker.app` does)."""
    env = {**ops["env"], "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
    worker = ManagedProcess([sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel=INFO",
                             "--concurrency=1", "-n", "bypackage@%h", "--without-gossip", "--without-mingle"],
                            env, ops["tmp"], ops["tmp"] / "bypackage.log").start()
    processes.append(worker)
    worker.wait_for("ready.")
    listed = send(broker, "backups.list", target="src")
    assert listed["state"] == "SUCCESS" and listed["result"] == []


# --- the periodic drill and prune: beat's entries, and the task they name ----------------------------------
SCHEDULE_PROBE = """
import json
from worker.app import app
app.loader.import_default_modules()
entries = {name: {"task": entry["task"], "kwargs": entry.get("kwargs", {}), "options": entry.get("options", {}),
                  "schedule": [sorted(entry["schedule"].minute), sorted(entry["schedule"].hour),
                               sorted(entry["schedule"].day_of_week)]}
           for name, entry in app.conf.beat_schedule.items()}
print(json.dumps({"entries": entries, "tasks": sorted(app.tasks)}))
"""


def beat_entries(env: dict[str, str], cwd: Path) -> dict:
    """The beat schedule of the worker's own Celery app under `env`, and the tasks it registers."""
    done = subprocess.run([sys.executable, "-c", SCHEDULE_PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_beat_schedules_prune_and_one_verify_drill_per_target_on_its_queue(tmp_path):
    env = clean_environment(
        BACKUP_TARGETS=json.dumps({"a": f"sqlite:///{tmp_path}/a.db",
                                   "b": {"url": f"sqlite:///{tmp_path}/b.db", "queue": "site-b"}}),
        BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
        BACKUP_PRUNE_SCHEDULE="15 1 * * *", BACKUP_VERIFY_SCHEDULE="45 5 * * 0")
    probed = beat_entries(env, tmp_path)
    entries, registered = probed["entries"], set(probed["tasks"])
    assert entries["prune"] == {"task": "backups.prune", "kwargs": {}, "options": {},
                                "schedule": [[15], [1], list(range(7))]}
    assert entries["verify-latest-a"] == {"task": "backups.verify_latest", "kwargs": {"target": "a"}, "options": {},
                                          "schedule": [[45], [5], [0]]}
    assert entries["verify-latest-b"] == {"task": "backups.verify_latest", "kwargs": {"target": "b"},
                                          "options": {"queue": "site-b"}, "schedule": [[45], [5], [0]]}
    assert entries["backup-b-sql"]["options"] == {"queue": "site-b"}
    assert {entry["task"] for entry in entries.values()} <= registered  # every entry names a real task
    assert {"backups.prune", "backups.verify_latest"} <= registered

    # The drill can be turned off; the prune cannot.
    off = beat_entries({**env, "BACKUP_VERIFY_SCHEDULE": "off"}, tmp_path)["entries"]
    assert "prune" in off and not [name for name in off if name.startswith("verify-latest")]


def test_verify_latest_drills_the_newest_primary_backup_of_each_target(pg_server, make_pg_database, broker,
                                                                        processes, tmp_path):
    """Through a real worker, as beat sends it: for each target the newest backup by our clock is
    drilled (an older, corrupt one and a future-dated, broken one are not), and the verify is recorded."""
    source = make_pg_database("latest")
    pg_server.execute(source, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 40)")
    lite = tmp_path / "lite.sqlite3"
    with contextlib.closing(sqlite3.connect(lite)) as db, db:
        db.execute("CREATE TABLE n (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO n VALUES (?)", ((i,) for i in range(30)))
    env = clean_environment(BACKUP_TARGETS=json.dumps({"src": source, "lite": f"sqlite:///{lite}"}),
                            BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
                            CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=broker)
    settings = load_settings(env, dotenv_path=None)
    older = {name: operations.create(settings, target=name) for name in ("src", "lite")}
    newer = {name: operations.create(settings, target=name, format=fmt) for name, fmt in (("src", "sql"),
                                                                                         ("lite", "sqlite"))}
    for manifest in older.values():  # drilling one of these would fail on its checksum
        path = Path(manifest["path"])
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    store = BackupStore(settings.backup_dir)
    future = store.publish_bytes(b"SELECT 1/0;\n", "src", {"format": "sql", "target": "src", "dialect": "postgresql",
                                                           "table_rows": {}, "tables": 0, "rows": 0},
                                 created_at=datetime.now(UTC) + timedelta(days=3))

    worker = celery_worker(env, tmp_path, name="latest")
    processes.append(worker)
    worker.wait_for("ready.")
    drilled = send(broker, "backups.verify_latest")
    assert drilled["state"] == "SUCCESS", drilled
    by_target = {result["target"]: result for result in drilled["result"]}
    assert sorted(by_target) == ["lite", "src"]
    for name, result in by_target.items():
        assert result["backup_filename"] == newer[name]["backup_filename"] != future["backup_filename"]
        assert result["checksum_ok"] is True and result["drill_ok"] is True
        assert result["table_rows"] == newer[name]["table_rows"] and sum(result["table_rows"].values()) > 0
    status = json.loads(run_cli(env, tmp_path, "status", "--json").stdout)
    assert status["src"]["last_verify"] and status["lite"]["last_verify"]

    one = send(broker, "backups.verify_latest", target="lite")
    assert [r["backup_filename"] for r in one["result"]] == [newer["lite"]["backup_filename"]]


@pytest.mark.parametrize("fmt", ["sql", "sqlite"])
def test_the_sqlite_verify_drill_restores_into_a_scratch_file_and_compares_rows(fmt, tmp_path):
    lite = tmp_path / "lite.sqlite3"
    with contextlib.closing(sqlite3.connect(lite)) as db, db:
        db.execute("CREATE TABLE n (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO n (body) VALUES (?)", ((f"row {i}",) for i in range(25)))
    settings = load_settings({"BACKUP_TARGETS": json.dumps({"lite": f"sqlite:///{lite}"}),
                              "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_UPLOAD_DIR": str(tmp_path / "up"),
                              "BACKUP_COMPRESSION": "none"}, dotenv_path=None)
    backup = operations.create(settings, target="lite", format=fmt)
    result = operations.verify(settings, backup_filename=backup["backup_filename"])
    assert result["checksum_ok"] is True and result["drill_ok"] is True
    assert result["table_rows"] == backup["table_rows"] == {"n": 25, "m": 0}

    # The file and its manifest agree, but the manifest promises a row the file does not hold.
    store = BackupStore(settings.backup_dir)
    record = store.read_manifest(backup["backup_filename"])
    store.write_manifest({**record, "table_rows": {"n": 26, "m": 0}})
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.VERIFY_FAILED)) as caught:
        operations.verify(settings, backup_filename=backup["backup_filename"])
    assert "n: manifest 26, restored 25" in str(caught.value)

    # A file that does not load, its checksums made to match: the drill fails, the target is untouched.
    path = Path(backup["path"])
    data = path.read_bytes()
    broken = data.replace(b"INSERT INTO", b"INSERT INTX", 1) if fmt == "sql" else data[:4096]
    assert broken != data
    digest = hashlib.sha256(broken).hexdigest()
    path.write_bytes(broken)
    store.write_manifest({**record, "size_bytes": len(broken), "sha256": digest, "content_bytes": len(broken),
                          "content_sha256": digest})
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.VERIFY_FAILED)):
        operations.verify(settings, backup_filename=backup["backup_filename"])
    with contextlib.closing(sqlite3.connect(lite)) as db:
        assert db.execute("SELECT count(*) FROM n").fetchone() == (25,)
    assert not list(tmp_path.rglob("drill.sqlite3")), "the scratch file of a drill was left behind"
