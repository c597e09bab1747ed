"""`make run` with nothing configured: the worker on the embedded SQLite broker and a demo database."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from tests.processes import ROOT, ManagedProcess, celery_worker, clean_environment


def cli(cwd, *args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=cwd, env=env or clean_environment(),
                          capture_output=True, text=True, timeout=timeout)


def test_the_worker_runs_on_the_embedded_default_and_backs_up_the_demo_database(tmp_path):
    stale = tmp_path / "var" / "backups" / f".partial.{os.uname().nodename}.999999.dead.sql"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by a worker killed with -9")
    worker = ManagedProcess([sys.executable, "-m", "worker", "run"], clean_environment(), tmp_path,
                            tmp_path / "worker.log").start()
    try:
        worker.wait_for("ready.", timeout=90)
        assert not stale.exists(), "temp files of dead processes are swept at start"
        assert (tmp_path / "var" / "demo.sqlite3").is_file()

        done = cli(tmp_path, "backup", "--timeout", "90")
        assert done.returncode == 0, done.stderr + worker.output()[-2000:]
        manifest = json.loads(done.stdout)
        assert manifest["target"] == "default" and manifest["dialect"] == "sqlite"
        assert manifest["rows"] == 4 and (tmp_path / "var" / "backups" / manifest["backup_filename"]).is_file()

        listed = json.loads(cli(tmp_path, "list", "--timeout", "60").stdout)
        assert [m["backup_filename"] for m in listed] == [manifest["backup_filename"]]

        done = cli(tmp_path, "restore", "../demo.sqlite3", "--timeout", "60")
        assert done.returncode == 1 and "Refused path outside its folder" in done.stderr
    finally:
        worker.stop()


def test_the_cli_shows_progress_on_a_terminal(tmp_path, pg_server, broker, make_pg_database):
    url = make_pg_database("progress")
    conn = pg_server.connect(url.rsplit("/", 1)[1])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b"
                    " FROM generate_series(1, 1000000) g")
    conn.close()
    env = clean_environment(BACKUP_DATABASE_URL=url, CELERY_BROKER_URL=broker,
                            CELERY_RESULT_BACKEND=broker, BACKUP_DIR=str(tmp_path / "b"),
                            BACKUP_UPLOAD_DIR=str(tmp_path / "u"))
    worker = celery_worker(env, tmp_path, name="progress", concurrency=1)
    try:
        worker.wait_for("ready.", timeout=60)
        primary, secondary = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "worker", "backup", "--timeout", "120"], cwd=tmp_path,
                                   env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=secondary)
        os.close(secondary)
        shown = b""
        deadline = time.monotonic() + 150
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.2)[0]:
                try:
                    shown += os.read(primary, 4096)
                except OSError:
                    break
        stdout = process.communicate(timeout=30)[0]
        os.close(primary)
        assert process.returncode == 0, shown.decode(errors="replace")
        assert json.loads(stdout)["rows"] == 1000000
        assert b"PROGRESS" in shown and b"phase=" in shown
    finally:
        worker.stop()
