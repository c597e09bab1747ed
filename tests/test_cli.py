"""`python -m worker ... --local`: the CLI prints result JSON and fails with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "worker", *args], cwd=tmp_path,
                              env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
        transcript.extend([done.stdout, done.stderr])
        return done

    run.transcript = transcript  # type: ignore[attr-defined]
    run.target_db = target.rsplit("/", 1)[1]  # type: ignore[attr-defined]
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
