"""Off-site storage end to end (issue 13): an S3-compatible store (a throwaway moto server) shared by
workers with folders of their own, zstd and age on every artifact, signed manifests.

Worker A backs up into the bucket; worker B (another process, another folder) lists and restores it
identical; worker C without the identity is refused and touches nothing; an object changed in the
bucket is refused by its checksum; a manifest whose signature does not verify is not trusted; a
worker killed with -9 in the middle of a multipart upload leaves no object and no manifest under a
backup's name, its retry completes, and the incomplete upload is swept.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import subprocess
import sys
import uuid

import pyrage
import pytest
import zstandard

from backup_engine import errors
from backup_engine.storage.s3 import S3Store
from tests import richdb_pg
from tests.processes import ROOT, clean_environment
from tests.reliability_helpers import kill9, send, start_worker, wait_for_tool, wait_result, wait_until

pytest_plugins = ["tests.conftest_s3"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("age")
    identity = pyrage.x25519.Identity.generate()
    escrow = pyrage.x25519.Identity.generate()
    path = folder / "key.txt"
    path.write_text(f"# worker\n{identity}\n")
    path.chmod(0o600)
    return {"identity_file": path, "recipients": f"{identity.to_public()},{escrow.to_public()}",
            "escrow": escrow}


@pytest.fixture
def site(s3_server, s3_env, pg_server, make_pg_database, keys, tmp_path):
    """A source and a destination database and the environment every worker of the site shares."""
    source = make_pg_database("off_src")
    richdb_pg.build_rich_database(source, rows_per_table=60, seed=4)
    prefix = f"site-{uuid.uuid4().hex[:8]}"
    common = {
        **s3_server.env(),
        "BACKUP_TARGETS": json.dumps({"src": source, "dst": make_pg_database("off_dst")}),
        "BACKUP_STORAGE_URL": f"s3://{s3_server.bucket}/{prefix}",
        "BACKUP_SIGNING_KEY": "k-" + uuid.uuid4().hex,
        "BACKUP_COMPRESSION": "zstd",
        "BACKUP_ENCRYPTION_RECIPIENTS": keys["recipients"],
        "BACKUP_ENCRYPTION_IDENTITY_FILE": str(keys["identity_file"]),
    }
    return {"source": source, "prefix": prefix, "common": common, "tmp": tmp_path, "bucket": s3_server.bucket,
            "s3": s3_server}


def cli(site: dict, worker: str, *args: str, **overrides: str) -> subprocess.CompletedProcess:
    """`python -m worker ... --local` as its own process, with a folder of its own."""
    folder = site["tmp"] / worker
    env = clean_environment(**{**site["common"], "BACKUP_DIR": str(folder / "backups"),
                               "BACKUP_UPLOAD_DIR": str(folder / "uploads"), **overrides})
    env = {key: value for key, value in env.items() if value != ""}
    return subprocess.run([sys.executable, "-m", "worker", *args, "--local"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def bucket_keys(site: dict) -> list[str]:
    client = site["s3"].client()
    listing = client.list_objects_v2(Bucket=site["bucket"], Prefix=site["prefix"] + "/")
    return sorted(item["Key"].split("/", 1)[1] for item in listing.get("Contents", []))


def test_a_backup_made_by_one_worker_restores_on_another(site):
    made = cli(site, "a", "backup", "--target", "src")
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    name = manifest["backup_filename"]
    assert name.endswith(".sql.zst.age") and manifest["compression"] == "zstd"
    assert manifest["encryption"]["scheme"] == "age" and len(manifest["encryption"]["recipients"]) == 2
    assert manifest["location"] == f"s3://{site['bucket']}/{site['prefix']}/{name}"
    assert manifest["content_bytes"] > manifest["size_bytes"]  # compressed
    assert bucket_keys(site) == [name, name + ".meta.json"]

    listed = cli(site, "b", "list")
    assert listed.returncode == 0, listed.stderr
    assert [m["backup_filename"] for m in json.loads(listed.stdout)] == [name]
    restored = cli(site, "b", "restore", name, "--target", "dst", "--from", "src")
    assert restored.returncode == 0, restored.stderr
    dst = json.loads(site["common"]["BACKUP_TARGETS"])["dst"]
    assert richdb_pg.database_state(dst) == richdb_pg.database_state(site["source"])
    assert not (site["tmp"] / "b" / "backups" / ".scratch").exists()  # scratch space cleaned up

    # Worker C has no identity: refused up front, naming what is missing, the target untouched.
    before = richdb_pg.database_state(dst)
    refused = cli(site, "c", "restore", name, "--target", "dst", "--from", "src", BACKUP_ENCRYPTION_IDENTITY_FILE="")
    assert refused.returncode == 1 and "BACKUP_ENCRYPTION_IDENTITY_FILE" in refused.stderr
    assert richdb_pg.database_state(dst) == before
    wrong = site["tmp"] / "wrong.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    refused = cli(site, "c", "restore", name, "--target", "dst", "--from", "src",
                  BACKUP_ENCRYPTION_IDENTITY_FILE=str(wrong))
    assert refused.returncode == 1 and errors.IDENTITY_MISMATCH in refused.stderr
    assert richdb_pg.database_state(dst) == before


def test_the_standard_tools_open_a_stored_object(site, keys):
    """The manual recipe: `age -d -i key.txt F | zstd -d | psql` (here with the escrow key)."""
    if not shutil.which("age") or not shutil.which("zstd"):
        pytest.skip("age or zstd CLI not installed")
    made = json.loads(cli(site, "a", "backup", "--target", "src").stdout)
    blob = site["s3"].client().get_object(Bucket=site["bucket"],
                                          Key=f"{site['prefix']}/{made['backup_filename']}")["Body"].read()
    escrow = site["tmp"] / "escrow.txt"
    escrow.write_text(f"{keys['escrow']}\n")
    plain = subprocess.run(f"age -d -i {escrow} | zstd -d", shell=True, input=blob, capture_output=True,  # noqa: S602
                           check=True).stdout
    assert b"PostgreSQL database dump complete" in plain and len(plain) == made["content_bytes"]


def test_a_changed_object_is_refused_and_a_forged_manifest_is_not_trusted(site):
    made = json.loads(cli(site, "a", "backup", "--target", "src").stdout)
    name = made["backup_filename"]
    client = site["s3"].client()
    key = f"{site['prefix']}/{name}"
    original = client.get_object(Bucket=site["bucket"], Key=key)["Body"].read()
    client.put_object(Bucket=site["bucket"], Key=key, Body=original[:-10] + b"0123456789")
    dst = json.loads(site["common"]["BACKUP_TARGETS"])["dst"]
    before = richdb_pg.database_state(dst)
    changed = cli(site, "b", "restore", name, "--target", "dst", "--from", "src")
    assert changed.returncode == 1 and errors.CHECKSUM_MISMATCH in changed.stderr
    assert richdb_pg.database_state(dst) == before

    client.put_object(Bucket=site["bucket"], Key=key, Body=original)
    manifest = json.loads(client.get_object(Bucket=site["bucket"], Key=key + ".meta.json")["Body"].read())
    manifest["rows"] += 1  # any change breaks the signature
    client.put_object(Bucket=site["bucket"], Key=key + ".meta.json", Body=json.dumps(manifest).encode())
    forged = cli(site, "b", "restore", name, "--target", "dst", "--from", "src")
    assert forged.returncode == 1 and errors.UPLOAD_ROLE_REFUSED in forged.stderr  # an upload, as a superuser
    assert richdb_pg.database_state(dst) == before


def test_uploads_may_be_gzip_or_zstd(site):
    made = json.loads(cli(site, "a", "backup", "--target", "src").stdout)
    blob = site["s3"].client().get_object(Bucket=site["bucket"],
                                          Key=f"{site['prefix']}/{made['backup_filename']}")["Body"].read()
    plain = subprocess.run(["bash", "-c", f"age -d -i {site['common']['BACKUP_ENCRYPTION_IDENTITY_FILE']} | zstd -d"],
                           input=blob, capture_output=True, check=True).stdout if shutil.which("age") else None
    if plain is None:
        pytest.skip("age CLI not installed")
    uploads = site["tmp"] / "b" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "dump.sql.gz").write_bytes(gzip.compress(plain))
    (uploads / "dump.sql.zst").write_bytes(zstandard.ZstdCompressor().compress(plain))
    dst = json.loads(site["common"]["BACKUP_TARGETS"])["dst"]
    for upload in ("dump.sql.gz", "dump.sql.zst"):
        done = cli(site, "b", "restore-upload", upload, "--target", "dst", BACKUP_UPLOAD_ALLOW_SUPERUSER="true")
        assert done.returncode == 0, done.stderr
        assert richdb_pg.database_state(dst) == richdb_pg.database_state(site["source"])


@pytest.mark.slow
def test_kill9_during_a_multipart_upload_leaves_nothing_and_the_retry_completes(site, broker, processes,
                                                                               pg_server):
    """Small parts (`?part_size=`) so the upload is well under way when the worker dies."""
    big = richdb_pg.connect(site["source"])
    with big.cursor() as cur:
        cur.execute("CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS body "
                    "FROM generate_series(1, 300000) g")
    big.commit()
    big.close()
    env = clean_environment(**{**site["common"], "BACKUP_STORAGE_URL": site["common"]["BACKUP_STORAGE_URL"]
                               + "?part_size=1048576", "BACKUP_COMPRESSION": "none",
                               "BACKUP_DIR": str(site["tmp"] / "w" / "backups"),
                               "BACKUP_UPLOAD_DIR": str(site["tmp"] / "w" / "uploads"),
                               "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker,
                               "BACKUP_TASK_TIME_LIMIT_S": "60"})
    worker = start_worker(processes, env, site["tmp"], "s3-kill")
    task_id = send(broker, "backups.create", target="src")
    dump_pid, pool_pid = wait_for_tool(worker, "pg_dump")
    client = site["s3"].client()

    def uploading() -> bool:
        uploads = client.list_multipart_uploads(Bucket=site["bucket"], Prefix=site["prefix"]).get("Uploads", [])
        return any(len(client.list_parts(Bucket=site["bucket"], Key=u["Key"], UploadId=u["UploadId"])
                       .get("Parts", [])) >= 3 for u in uploads)

    wait_until(uploading, 60, what="three parts uploaded")
    kill9(pool_pid, dump_pid)
    assert bucket_keys(site) == []  # no object, no manifest under a backup's name
    meta = wait_result(broker, task_id, timeout=240)
    assert meta["status"] == "SUCCESS", meta
    name = meta["result"]["backup_filename"]
    assert bucket_keys(site) == [name, name + ".meta.json"]

    store = S3Store(site["bucket"], site["prefix"], scratch_dir=site["tmp"])
    assert store.sweep(dt.timedelta(seconds=0))  # the dead writer's incomplete upload
    assert client.list_multipart_uploads(Bucket=site["bucket"], Prefix=site["prefix"]).get("Uploads", []) == []
