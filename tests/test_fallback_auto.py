"""`method="auto"`: a missing or failing pg_dump is a non-event; a failing fallback says why."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, create_backup, restore_backup

PSQL = shutil.which("psql")


@pytest.fixture
def rich_url(make_pg_database) -> str:
    url = make_pg_database("auto")
    richdb_pg.build_rich_database(url, rows_per_table=60, seed=3)
    return url


def failing_tool(tmp_path: Path) -> str:
    script = tmp_path / "pg_dump"
    script.write_text("#!/bin/sh\necho 'pg_dump: error: simulated failure' >&2\nexit 1\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("broken", ["missing", "exits-1"])
def test_auto_falls_back_and_the_result_restores_exactly(rich_url, make_pg_database, backup_dir, tmp_path, broken):
    pg_dump = str(tmp_path / "no-such-pg_dump") if broken == "missing" else failing_tool(tmp_path)
    tools = ClientTools(pg_dump=pg_dump, psql=PSQL)
    store = BackupStore(backup_dir)

    manifest = create_backup(Target.from_url("auto", rich_url), store, method="auto", tools=tools)

    assert manifest["method"] == "sqlalchemy"
    expected_reason = "Client tool not found" if broken == "missing" else "simulated failure"
    assert expected_reason in manifest["fallback_reason"]
    assert manifest["rows"] == richdb_pg.total_rows(rich_url)
    copy_url = make_pg_database("auto_copy")
    restore_backup(Target.from_url("copy", copy_url), store, manifest["backup_filename"], tools=tools)
    assert richdb_pg.database_state(copy_url) == richdb_pg.database_state(rich_url)
    assert richdb_pg.schema_fingerprint(copy_url) == richdb_pg.schema_fingerprint(rich_url)


def test_native_does_not_fall_back(rich_url, backup_dir, tmp_path):
    tools = ClientTools(pg_dump=failing_tool(tmp_path), psql=PSQL)
    with pytest.raises(errors.DumpError, match="Native backup failed"):
        create_backup(Target.from_url("auto", rich_url), BackupStore(backup_dir), method="native", tools=tools)
    assert os.listdir(backup_dir) == []


def test_when_the_fallback_fails_too_nothing_is_left(pg_server, make_pg_database, backup_dir, tmp_path):
    url = make_pg_database("locked")
    conn = richdb_pg.connect(url)
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS reader_without_rights")
        cur.execute("CREATE ROLE reader_without_rights LOGIN PASSWORD 'r-pw-1'")
        cur.execute("CREATE TABLE secret (id int); INSERT INTO secret VALUES (1)")
        cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    conn.commit()
    conn.close()
    limited = pg_server.url(url.rsplit("/", 1)[1], user="reader_without_rights", password="r-pw-1")
    tools = ClientTools(pg_dump=shutil.which("pg_dump"), psql=PSQL)

    with pytest.raises(errors.DumpError) as raised:
        create_backup(Target.from_url("locked", limited), BackupStore(backup_dir), method="auto", tools=tools)

    assert str(raised.value).startswith("SQLAlchemy backup fallback failed: ")
    assert "permission denied" in str(raised.value)
    assert "after the native dump failed" in str(raised.value)
    assert os.listdir(backup_dir) == []
