"""The backup folder through the catalogue: names, no overwrite, atomic publish, manifests, safe paths."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_engine import errors
from backup_engine.formats import FORMATS
from backup_engine.storage.base import check_object_name as check_safe_name
from tests.engine_api import BackupStore
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parents[1]

WHEN = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def publish_bytes(store: BackupStore, data: bytes, prefix: str = "gbot", when=WHEN) -> dict:
    with store.catalogue.new_artifact(FORMATS["sql"], prefix, when) as pending:
        pending.write(data)
        return pending.publish(format="sql", target="default", dialect="sqlite", method="test",
                               include_data="full").as_result()


def test_name_manifest_mode_and_checksum(backup_dir):
    store = BackupStore(backup_dir)
    record = publish_bytes(store, b"SELECT 1;\n")
    assert record["backup_filename"] == "gbot_db_backup_20250101_120000.sql"
    path = backup_dir / record["backup_filename"]
    manifest = backup_dir / (record["backup_filename"] + ".meta.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    assert record["sha256"] == hashlib.sha256(b"SELECT 1;\n").hexdigest()
    assert json.loads(manifest.read_text())["size_bytes"] == 10
    assert sorted(p.name for p in backup_dir.iterdir()) == [path.name, manifest.name]


def test_a_clash_gets_a_suffix_and_never_overwrites(backup_dir):
    store = BackupStore(backup_dir)
    first = publish_bytes(store, b"first")
    second = publish_bytes(store, b"second")
    third = publish_bytes(store, b"third")
    assert [first["backup_filename"], second["backup_filename"], third["backup_filename"]] == [
        "gbot_db_backup_20250101_120000.sql", "gbot_db_backup_20250101_120000_2.sql",
        "gbot_db_backup_20250101_120000_3.sql"]
    assert (backup_dir / first["backup_filename"]).read_bytes() == b"first"


def test_a_foreign_file_with_the_name_is_not_overwritten(backup_dir):
    (backup_dir / "gbot_db_backup_20250101_120000.sql").write_bytes(b"precious")
    record = publish_bytes(BackupStore(backup_dir), b"new")
    assert record["backup_filename"].endswith("_2.sql")
    assert (backup_dir / "gbot_db_backup_20250101_120000.sql").read_bytes() == b"precious"


def test_a_failed_write_leaves_nothing(backup_dir):
    store = BackupStore(backup_dir)
    with pytest.raises(RuntimeError), store.catalogue.new_artifact(FORMATS["sql"], "gbot", WHEN) as pending:
        pending.write(b"half a dump")
        raise RuntimeError("dump broke")
    assert list(backup_dir.iterdir()) == []


def test_a_file_without_manifest_is_not_a_backup(backup_dir):
    (backup_dir / "x_db_backup_20250101_120000.sql").write_text("SELECT 1;")
    store = BackupStore(backup_dir)
    assert store.list() == []
    with pytest.raises(errors.ArtifactError, match="no manifest"):
        store.verified("x_db_backup_20250101_120000.sql")


def test_a_file_left_without_a_manifest_is_swept_after_the_grace_period_and_only_ours(backup_dir, tmp_path):
    """A writer killed between publishing its artifact and writing the manifest leaves a complete
    object that is no backup. The sweep at worker start removes it once it is a day old, and never
    a described backup, a fresh orphan (its writer may be about to describe it), another
    deployment's file, or a status record."""
    store = BackupStore(backup_dir)
    kept = publish_bytes(store, b"SELECT 1;\n", prefix="app")["backup_filename"]
    old = time.time() - 25 * 3600
    planted = {
        "app_db_backup_20250101_000000.sql": old,  # ours, a day old: swept
        "app_db_backup_20250102_000000.sql.zst": time.time() - 60,  # ours, a minute old: kept
        "other_db_backup_20250101_000000.sql": old,  # another deployment's: kept
        "app_db_status_app_backup_failure.json": old,  # a status record: kept
    }
    for name, moment in planted.items():
        (backup_dir / name).write_bytes(b"x")
        os.utime(backup_dir / name, (moment, moment))
    os.utime(backup_dir / kept, (old, old))
    env = clean_environment(BACKUP_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}", BACKUP_DIR=str(backup_dir),
                            BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"),
                            BACKUP_TARGETS=json.dumps({"app": f"sqlite:///{tmp_path / 'b.db'}"}))
    done = subprocess.run([sys.executable, "-m", "worker", "sweep"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["store"] == ["app_db_backup_20250101_000000.sql"]
    left = {path.name for path in backup_dir.iterdir()}
    assert left == {kept, kept + ".meta.json", *planted} - {"app_db_backup_20250101_000000.sql"}
    assert store.verified(kept)


def test_an_altered_file_fails_its_checksum(backup_dir):
    store = BackupStore(backup_dir)
    record = publish_bytes(store, b"SELECT 1;\n")
    (backup_dir / record["backup_filename"]).write_bytes(b"SELECT 2;\n")
    with pytest.raises(errors.ArtifactError, match="checksum"):
        store.verified(record["backup_filename"])


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a\x00b.sql", "..", ".", "", "a/b.sql",
                                  "x" * 300, "name with space.sql", 42, None])
def test_unsafe_names_are_refused(backup_dir, name):
    with pytest.raises(errors.InvalidRequest):
        BackupStore(backup_dir).catalogue.entry(name)


def test_a_symlink_to_outside_is_refused(backup_dir, tmp_path):
    outside = tmp_path / "outside.sql"
    outside.write_text("SELECT 1;")
    (backup_dir / "link_db_backup_20250101_120000.sql").symlink_to(outside)
    with pytest.raises(errors.InvalidRequest, match="symbolic link"):
        BackupStore(backup_dir).catalogue.entry("link_db_backup_20250101_120000.sql")


def test_list_is_newest_first_and_filters_by_target(backup_dir):
    store = BackupStore(backup_dir)
    publish_bytes(store, b"a", prefix="one", when=WHEN)
    publish_bytes(store, b"b", prefix="two", when=WHEN.replace(hour=13))
    names = [r["backup_filename"] for r in store.list()]
    assert names == ["two_db_backup_20250101_130000.sql", "one_db_backup_20250101_120000.sql"]
    assert store.list("nobody") == []


def test_temp_files_of_dead_processes_are_swept(backup_dir):
    store = BackupStore(backup_dir)
    # A child process starts a pending artifact and dies without cleaning up (kill -9 in effect).
    code = ("import os, sys; from pathlib import Path; from backup_engine.storage.local import LocalStore;"
            f"w = LocalStore(Path({str(backup_dir)!r})).create(iter(['x.sql']));"
            "w.write(b'x'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())
    leftovers = [p.name for p in backup_dir.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".partial.")
    with store.catalogue.new_artifact(FORMATS["sql"], "gbot", WHEN):  # our own live temp file must survive the sweep
        assert store.catalogue.sweep() == leftovers
        assert len(list(backup_dir.iterdir())) == 1
    assert list(backup_dir.iterdir()) == []


def test_prefix_must_be_safe():
    with pytest.raises(errors.InvalidRequest):
        check_safe_name("../x", "file prefix")
