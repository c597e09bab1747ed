"""`python -m worker ...`: the CLI prints result JSON and fails with a reason, in this process
(`--local`) or through a real worker (`--no-wait` returns the task id at once)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import celery_worker, clean_environment, imported_modules, run_local
from tests.reliability_helpers import wait_result

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(pg_server, make_pg_database, tmp_path):
    source = make_pg_database("cli_src")
    target = make_pg_database("cli_dst")
    conn = pg_server.connect(source.rsplit("/", 1)[1])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL);"
                    "INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 250) g;")
    conn.close()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "CELERY_"))},
        "BACKUP_TARGETS": json.dumps({"src": source, "dst": target}),
        "BACKUP_DIR": str(tmp_path / "backups"),
        "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"),
    }
    transcript: list[str] = []

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "worker", *args], cwd=tmp_path,
                              env={**env, "PYTHONPATH": str(ROOT), **extra}, capture_output=True, text=True,
                              timeout=120)
        transcript.extend([done.stdout, done.stderr])
        return done

    run.transcript = transcript  # type: ignore[attr-defined]
    run.target_db = target.rsplit("/", 1)[1]  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    run.folder = tmp_path  # type: ignore[attr-defined]
    yield run
    assert pg_server.password not in "".join(transcript)


def test_backup_list_restore_round_trip(cli, pg_server):
    done = cli("backup", "--target", "src", "--local")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["rows"] == 250 and manifest["target"] == "src" and manifest["method"] == "pg_dump"
    assert Path(manifest["path"]).stat().st_size == manifest["size_bytes"] > 0

    listed = json.loads(cli("list", "--local").stdout)
    assert [m["backup_filename"] for m in listed] == [manifest["backup_filename"]]
    assert json.loads(cli("list", "--target", "dst", "--local").stdout) == []

    done = cli("restore", manifest["backup_filename"], "--target", "dst", "--from", "src", "--local")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["restored_file"] == manifest["backup_filename"]
    assert result["safety_backup"]["target"] == "dst"
    conn = pg_server.connect(cli.target_db)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), max(label) FROM items")
        assert cur.fetchone() == (250, "item 99")
    conn.close()


def test_pg_dump_paths_start_without_sqlalchemy(cli, pg_server):
    """SQLAlchemy is most of a start's imports (0.17 s, 16 MB): pg_dump, pg_restore and psql need
    none of it, so their backups and restores never load it; the fallback does (the control)."""
    no_demo = {"BACKUP_DATABASE_URL": json.loads(cli.env["BACKUP_TARGETS"])["src"], "PYTHONPROFILEIMPORTTIME": "1"}
    for backup_format, method in (("sql", "native"), ("pgdump", "native"), ("sql", "sqlalchemy")):
        made = cli("backup", "--target", "src", "--format", backup_format, "--method", method, "--local", **no_demo)
        assert made.returncode == 0, made.stderr
        restored = cli("restore", json.loads(made.stdout)["backup_filename"], "--target", "dst", "--from", "src",
                       "--local", **no_demo)
        assert restored.returncode == 0, restored.stderr[-3000:]
        assert ("sqlalchemy" in imported_modules(made.stderr)) == (method == "sqlalchemy")
        assert "sqlalchemy" not in imported_modules(restored.stderr)
        assert items(pg_server, cli.target_db) == (250, "item 99")


def test_sqlite_snapshots_start_without_sqlalchemy(tmp_path):
    """A SQLite snapshot and its restore need none of SQLAlchemy; the `sql` dump reflects the
    schema with it (the control)."""
    source = tmp_path / "app.db"
    with sqlite3.connect(source) as conn:
        conn.executescript("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT);"
                           "INSERT INTO items (label) VALUES ('a');")
    conn.close()
    copy = tmp_path / "copy.db"
    env = clean_environment(BACKUP_DATABASE_URL=f"sqlite:///{source}",
                            BACKUP_TARGETS=json.dumps({"copy": f"sqlite:///{copy}"}),
                            BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
                            PYTHONPROFILEIMPORTTIME="1")

    for backup_format in ("sqlite", "sql"):
        made = run_local(env, tmp_path, "backup", "--format", backup_format)
        restored = run_local(env, tmp_path, "restore", json.loads(made.stdout)["backup_filename"],
                             "--target", "copy", "--from", "default")
        assert ("sqlalchemy" in imported_modules(made.stderr)) == (backup_format == "sql")
        assert "sqlalchemy" not in imported_modules(restored.stderr)
        assert sqlite3.connect(copy).execute("SELECT label FROM items").fetchall() == [("a",)]


WORKER_START_PROBE = """
import json, sys
from celery.signals import worker_init
import worker.app
before = sorted(name for name in sys.modules if name.split(".")[0] in ("sqlalchemy", "pglast"))
worker_init.send(sender=None)
print(json.dumps({"before": before, "after": sorted(sys.modules)}))
"""


def test_the_worker_imports_at_its_start_what_a_task_would_import_on_first_use(tmp_path, pg_server):
    """A running worker pays SQLAlchemy and pglast once, before its pool forks, not in a task."""
    env = clean_environment(BACKUP_DATABASE_URL=pg_server.url("postgres"), BACKUP_DIR=str(tmp_path / "backups"),
                            BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"))
    done = subprocess.run([sys.executable, "-c", WORKER_START_PROBE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    probed = json.loads(done.stdout.splitlines()[-1])
    assert probed["before"] == []
    assert {"sqlalchemy", "pglast", "backup_engine.convert", "backup_engine.engines.postgresql.json_export",
            "backup_engine.engines.postgresql.generated", "backup_engine.engines.postgresql.json_import",
            "backup_engine.engines.postgresql.uploads"} <= set(probed["after"])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["backup", "--target", "nowhere"], "Unknown target: 'nowhere'"),
        (["backup", "--target", "src", "--format", "xml"], "Unknown backup format"),
        (["restore", "../../etc/passwd", "--target", "dst"], "Refused path outside its folder"),
        (["restore", "/etc/passwd", "--target", "dst"], "Refused path outside its folder"),
        (["restore", "src_db_backup_20250101_120000.sql", "--target", "dst"], "Backup file not found"),
    ],
)
def test_failures_exit_non_zero_with_the_reason(cli, args, reason):
    done = cli(*args, "--local")
    assert done.returncode == 1
    assert reason in done.stderr
    assert done.stdout == ""


def items(pg_server, dbname: str) -> tuple[int, str] | None:
    """(count, max label) of the items table, or None when there is no such table."""
    conn = pg_server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.items') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT count(*), max(label) FROM items")
            return cur.fetchone()
    finally:
        conn.close()


def test_verify_prune_and_restore_upload(cli, pg_server):
    made = [json.loads(cli("backup", "--target", "src", "--local").stdout) for _ in range(3)]
    newest = made[-1]["backup_filename"]

    done = cli("verify", newest, "--local")
    assert done.returncode == 0, done.stderr
    verified = json.loads(done.stdout)
    assert verified["backup_filename"] == newest and verified["checksum_ok"] is True and verified["drill_ok"] is True
    assert verified["table_rows"] == {"public.items": 250}
    path = Path(made[0]["path"])
    data = bytearray(path.read_bytes())  # compressed (the product's default): flip a byte in the middle
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    done = cli("verify", made[0]["backup_filename"], "--local")
    assert done.returncode == 1 and "Backup file does not match its manifest checksum" in done.stderr
    assert done.stdout == ""

    # keep_last=1 and no calendar slots: the newest good one stays, the corrupt one is reported and kept.
    policy = {"BACKUP_KEEP_LAST": "1", "BACKUP_KEEP_DAILY": "0", "BACKUP_KEEP_WEEKLY": "0",
              "BACKUP_KEEP_MONTHLY": "0"}
    done = cli("prune", "--target", "src", "--local", **policy)
    assert done.returncode == 0, done.stderr
    pruned = json.loads(done.stdout)
    assert pruned["kept"] == [newest] and pruned["deleted"] == [made[1]["backup_filename"]]
    assert pruned["corrupt"] == [made[0]["backup_filename"]]
    listed = json.loads(cli("list", "--target", "src", "--local").stdout)
    assert sorted(m["backup_filename"] for m in listed) == sorted([newest, made[0]["backup_filename"]])
    assert not Path(made[1]["path"]).exists()

    # A dump copied into the upload folder restores like a backup of ours, through the gate.
    uploads = cli.folder / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "copied.sql").write_bytes(Path(made[-1]["path"]).read_bytes())
    done = cli("restore-upload", "copied.sql", "--target", "dst", "--local")
    assert done.returncode == 1 and "superuser" in done.stderr  # the throwaway server's role is one
    assert items(pg_server, cli.target_db) is None  # refused before anything was touched
    done = cli("restore-upload", "copied.sql", "--target", "dst", "--local", BACKUP_UPLOAD_ALLOW_SUPERUSER="true")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["uploaded_path"] == "copied.sql" and result["imported_file"] != newest
    assert items(pg_server, cli.target_db) == (250, "item 99")
    done = cli("restore-upload", "../outside.sql", "--target", "dst", "--local")
    assert done.returncode == 1 and "Refused path outside its folder" in done.stderr


def test_no_wait_prints_the_task_id_without_waiting_for_a_worker(cli, broker, processes):
    remote = {"CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
    # No worker runs yet: a CLI that waited would time out instead of printing the id.
    done = cli("backup", "--target", "src", "--no-wait", "--timeout", "5", **remote)
    assert done.returncode == 0, done.stderr
    queued = json.loads(done.stdout)
    assert list(queued) == ["task_id"] and len(queued["task_id"]) == 36
    env = clean_environment(**{k: v for k, v in cli.env.items() if k.startswith("BACKUP_")}, **remote)
    worker = celery_worker(env, cli.folder, name="nowait", concurrency=1)
    processes.append(worker)
    worker.wait_for("ready.")
    meta = wait_result(broker, queued["task_id"], timeout=120)
    assert meta["status"] == "SUCCESS", meta
    assert meta["result"]["rows"] == 250 and Path(meta["result"]["path"]).is_file()
    # The same CLI without --no-wait waits for the worker and prints the result itself.
    done = cli("verify", meta["result"]["backup_filename"], "--timeout", "90", **remote)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["drill_ok"] is True
