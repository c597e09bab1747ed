"""JSON backups and restores as chains of separate steps, through a real worker and a real broker
(Redis; the chain itself on RabbitMQ too)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from tests import richdb_pg
from tests.engine_api import BackupStore
from tests.processes import celery_worker, clean_environment
from tests.test_celery_tasks import BOTH_BROKERS, send
from tests.test_sqlite_engine import make_rich_db as make_rich_sqlite


@pytest.fixture
def chain_deployment(pg_server, transport, make_pg_database, tmp_path):
    source = make_pg_database("chain_src")
    target = make_pg_database("chain_dst")
    richdb_pg.build_rich_database(source, rows_per_table=40, seed=11)
    lite = tmp_path / "lite.db"
    make_rich_sqlite(lite)
    env = clean_environment(
        BACKUP_TARGETS=json.dumps({"src": source, "dst": target, "lite": f"sqlite:///{lite}"}),
        BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
        CELERY_BROKER_URL=transport.broker, CELERY_RESULT_BACKEND=transport.backend,
        BACKUP_UPLOAD_ALLOW_SUPERUSER="true",  # the throwaway server's role is a superuser; the chain is the point
    )
    worker = celery_worker(env, tmp_path, name="chains")
    worker.wait_for("ready.")
    yield {"broker": transport, "dir": tmp_path / "backups", "worker": worker, "src": source, "dst": target,
           "uploads": tmp_path / "uploads"}
    worker.stop()
    assert pg_server.password not in worker.output()


@BOTH_BROKERS
def test_a_json_backup_is_a_chain_that_names_both_files(chain_deployment):
    """SQLite's twin is converted from the document by the steps of a chain."""
    outcome = send(chain_deployment["broker"], "backups.create", target="lite", format="json")
    assert outcome["state"] == "SUCCESS", outcome
    manifest = outcome["result"]
    folder = chain_deployment["dir"]
    assert manifest["format"] == "json" and (folder / manifest["backup_filename"]).is_file()
    [twin] = manifest["companions"]
    assert twin.endswith(".sql") and (folder / twin).stat().st_size > 0
    twin_manifest = json.loads((folder / f"{twin}.meta.json").read_text())
    assert twin_manifest["converted_from"] == manifest["backup_filename"]
    assert twin_manifest["method"] == "json-conversion"
    log = chain_deployment["worker"].output()
    for step in ("backups.create", "backups.convert_json_to_sql", "backups.attach_companion"):
        assert f"Task {step}[" in log, step


def test_a_postgresql_json_backup_makes_its_twin_alongside_from_the_same_snapshot(chain_deployment):
    """The twin is written from the JSON export's own snapshot: one task, and it restores the same data."""
    outcome = send(chain_deployment["broker"], "backups.create", target="src", format="json")
    assert outcome["state"] == "SUCCESS", outcome
    manifest = outcome["result"]
    folder = chain_deployment["dir"]
    [twin] = manifest["companions"]
    twin_manifest = json.loads((folder / f"{twin}.meta.json").read_text())
    assert twin_manifest["converted_from"] == manifest["backup_filename"]
    assert twin_manifest["method"] == "sqlalchemy" and twin_manifest["format"] == "sql"
    assert twin_manifest["rows"] == manifest["rows"]
    log = chain_deployment["worker"].output()
    assert "Task backups.convert_json_to_sql[" not in log and "Task backups.attach_companion[" not in log
    restored = send(chain_deployment["broker"], "backups.restore", backup_filename=manifest["backup_filename"],
                    target="dst", source_target="src")
    assert restored["state"] == "SUCCESS", restored
    assert restored["result"]["restored_file"] == manifest["backup_filename"]
    assert richdb_pg.database_state(chain_deployment["dst"]) == richdb_pg.database_state(chain_deployment["src"])


def test_restoring_json_by_name_restores_it_exactly(chain_deployment):
    broker = chain_deployment["broker"]
    created = send(broker, "backups.create", target="src", format="json")["result"]
    # Without a usable twin for the target, the restore is convert -> restore_converted.
    for twin in created["companions"]:
        (chain_deployment["dir"] / f"{twin}.meta.json").unlink()
    restored = send(broker, "backups.restore", backup_filename=created["backup_filename"], target="dst",
                    source_target="src")
    assert restored["state"] == "SUCCESS", restored
    result = restored["result"]
    assert result["restored_file"] == created["backup_filename"]
    assert result["converted_file"].endswith(".sql") and result["safety_backup"]["target"] == "dst"
    assert "Task backups.restore_converted[" in chain_deployment["worker"].output()
    assert richdb_pg.database_state(chain_deployment["dst"]) == richdb_pg.database_state(chain_deployment["src"])


def test_a_failing_conversion_fails_the_chain_with_its_reason(chain_deployment):
    broker = chain_deployment["broker"]
    created = send(broker, "backups.create", target="src", format="json")["result"]
    path = chain_deployment["dir"] / created["backup_filename"]
    data = path.read_bytes()
    broken = data[: len(data) // 2]  # cut in the middle; the manifest is made to agree so only conversion fails
    path.write_bytes(broken)
    store = BackupStore(chain_deployment["dir"])
    record = store.read_manifest(path.name)
    digest = hashlib.sha256(broken).hexdigest()
    record.update(size_bytes=len(broken), sha256=digest, content_bytes=len(broken), content_sha256=digest)
    store.write_manifest(record)
    before = richdb_pg.database_state(chain_deployment["dst"])

    for twin in created["companions"]:
        (chain_deployment["dir"] / f"{twin}.meta.json").unlink()
    outcome = send(broker, "backups.restore", backup_filename=created["backup_filename"], target="dst",
                   source_target="src")
    assert outcome["state"] == "FAILURE"
    assert "Failed to convert JSON backup to SQL format" in outcome["result"]
    outcome = send(broker, "backups.convert_json_to_sql", backup_filename=created["backup_filename"])
    assert outcome["state"] == "FAILURE" and "Failed to convert JSON backup to SQL format" in outcome["result"]
    assert richdb_pg.database_state(chain_deployment["dst"]) == before


def test_cli_convert_and_json_upload(chain_deployment, tmp_path):
    broker = chain_deployment["broker"]
    created = send(broker, "backups.create", target="src", format="json")["result"]
    env = clean_environment(BACKUP_TARGETS=json.dumps({"src": chain_deployment["src"], "dst": chain_deployment["dst"]}),
                            BACKUP_DIR=str(chain_deployment["dir"]), BACKUP_UPLOAD_DIR=str(chain_deployment["uploads"]),
                            CELERY_BROKER_URL=broker.broker, CELERY_RESULT_BACKEND=broker.backend)
    done = subprocess.run([sys.executable, "-m", "worker", "convert", created["backup_filename"], "--dialect", "sqlite",
                           "--timeout", "120"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    converted = json.loads(done.stdout)
    assert converted["dialect"] == "sqlite" and converted["converted_from"] == created["backup_filename"]

    # The JSON file as an upload (e.g. copied from another site) restores like a backup of ours.
    chain_deployment["uploads"].mkdir(exist_ok=True)
    upload = chain_deployment["uploads"] / "from-elsewhere.json"
    upload.write_bytes((chain_deployment["dir"] / created["backup_filename"]).read_bytes())
    outcome = send(broker, "backups.restore_upload", path="from-elsewhere.json", target="dst")
    assert outcome["state"] == "SUCCESS", outcome
    assert outcome["result"]["imported_file"].endswith(".json")
    assert richdb_pg.database_state(chain_deployment["dst"]) == richdb_pg.database_state(chain_deployment["src"])
