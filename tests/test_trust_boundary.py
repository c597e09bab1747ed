"""The trust boundary end to end (issue 10): every file of the hostile corpus, uploaded and restored
through the worker's own operations, once with a role that is not a superuser and once with a
superuser allowed by BACKUP_UPLOAD_ALLOW_SUPERUSER. Each must be refused with its reason, and leave:
the target as it was (a pg_dump of it compares equal), no file outside the backup folder, no
process run (`/tmp/pwned`, the corpus's marker, never appears), no role or database setting
changed. Then the other side of the boundary: unsigned or forged manifests are uploads, hostile
JSON documents are refused, and a clean pg_dump passes as a non-superuser.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from backup_engine import errors
from config.settings import load_settings
from tasks import operations
from tests import richdb_pg
from tests.engine_api import BackupStore
from tests.gate_helpers import hostile_files

CORPUS = hostile_files()
MARKER = Path("/tmp/pwned")
RESTRICT = re.compile(rb"^\\(un)?restrict .*$", re.M)


def pg_dump_of(url: str) -> bytes:
    """The target as pg_dump sees it (its random \\restrict key left out)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    env = {"PGPASSWORD": parsed.password or "", "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(["pg_dump", "-h", parsed.host, "-p", str(parsed.port), "-U", parsed.username,
                           "--no-owner", "--no-privileges", parsed.database], env=env, capture_output=True,
                          check=True)
    return RESTRICT.sub(b"", done.stdout)


def server_state(pg_server) -> dict:
    """Everything outside one database that an upload must not change: roles and their settings,
    databases and theirs."""
    conn = pg_server.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolconfig FROM pg_roles "
                    "ORDER BY 1")
        roles = cur.fetchall()
        cur.execute("SELECT d.datname, s.setrole, s.setconfig FROM pg_db_role_setting s "
                    "LEFT JOIN pg_database d ON d.oid = s.setdatabase ORDER BY 1, 2")
        settings = cur.fetchall()
        cur.execute("SELECT datname, datallowconn, datconnlimit, datistemplate FROM pg_database ORDER BY 1")
        databases = cur.fetchall()
    conn.close()
    return {"roles": roles, "settings": settings, "databases": databases}


@pytest.fixture(scope="module")
def boundary(pg_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("boundary")
    role, password = f"bw_app_{uuid.uuid4().hex[:6]}", "app-" + uuid.uuid4().hex
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN CREATEDB PASSWORD %s', (password,))
    conn.close()
    names = {"app": f"bw_boundary_app_{uuid.uuid4().hex[:6]}", "su": f"bw_boundary_su_{uuid.uuid4().hex[:6]}"}
    pg_server.create_database(names["app"], owner=role)
    pg_server.create_database(names["su"])
    urls = {"app": pg_server.url(names["app"], user=role, password=password), "su": pg_server.url(names["su"])}
    for url in urls.values():
        richdb_pg.build_rich_database(url, rows_per_table=10, seed=3)
    (root / "uploads").mkdir()
    config = {"BACKUP_TARGETS": json.dumps(urls), "BACKUP_DIR": str(root / "backups"),
              "BACKUP_UPLOAD_DIR": str(root / "uploads"), "BACKUP_UPLOAD_ALLOW_SUPERUSER": "true",
              "BACKUP_COMPRESSION": "none"}  # the tests edit stored files as text
    yield {"root": root, "urls": urls, "config": config, "dumps": {key: pg_dump_of(url) for key, url in urls.items()},
           "server": server_state(pg_server)}
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()


def outside(root: Path) -> list[str]:
    """Every file under the test's root but the backup folder (where the upload's copy may go)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "backups" not in p.parts)


@pytest.mark.parametrize("role", ["app", "su"])
@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_a_hostile_upload_is_refused_and_changes_nothing(boundary, pg_server, case, role):
    config = dict(boundary["config"])
    if case.limit:
        config["BACKUP_UPLOAD_MAX_STATEMENT_BYTES"] = str(case.limit)
    settings = load_settings(config, dotenv_path=None)
    upload = f"{case.name}-{role}-{uuid.uuid4().hex[:6]}.sql"
    (boundary["root"] / "uploads" / upload).write_bytes(case.data)
    files_before = outside(boundary["root"])
    MARKER.unlink(missing_ok=True)
    with pytest.raises(errors.BackupError) as caught:
        operations.restore_upload(settings, path=upload, target=role)
    message = str(caught.value)
    sniffed = "the upload is binary" in message and b"\x00" in case.data[:4096]  # refused before the gate reads it
    assert case.expect in message or sniffed, message
    assert not MARKER.exists(), f"{case.name}: a program ran"
    assert pg_dump_of(boundary["urls"][role]) == boundary["dumps"][role]
    assert outside(boundary["root"]) == files_before
    assert server_state(pg_server) == boundary["server"]


def test_a_clean_pg_dump_restores_through_the_gate_as_a_role_that_is_not_a_superuser(boundary, tmp_path):
    """The control case: real pg_dump output of the other database passes and restores identical."""
    settings = load_settings(boundary["config"], dotenv_path=None)
    source = BackupStore(Path(boundary["config"]["BACKUP_DIR"]))
    dump = pg_dump_of(boundary["urls"]["su"])
    (boundary["root"] / "uploads" / "clean.sql").write_bytes(dump)
    before = richdb_pg.database_state(boundary["urls"]["app"])
    result = operations.restore_upload(settings, path="clean.sql", target="app")
    assert result["imported_file"] and result["safety_backup"]["target"] == "app"
    assert richdb_pg.database_state(boundary["urls"]["app"]) == richdb_pg.database_state(boundary["urls"]["su"])
    # and back: the safety backup (ours, signed) restores the target as it was
    operations.restore(settings, backup_filename=result["safety_backup"]["backup_filename"], target="app")
    assert richdb_pg.database_state(boundary["urls"]["app"]) == before
    assert source.read_manifest(result["imported_file"])["origin"] == "upload"
    boundary["dumps"]["app"] = pg_dump_of(boundary["urls"]["app"])  # what the next cases must leave alone


def _plant(boundary, data: bytes, manifest: dict, sign: bool) -> str:
    folder = Path(boundary["config"]["BACKUP_DIR"])
    name = f"app_db_backup_20200101_{uuid.uuid4().int % 1_000_000:06d}.sql"
    (folder / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    record = {**manifest, "backup_filename": name, "size_bytes": len(data), "sha256": digest,
              "content_bytes": len(data), "content_sha256": digest}
    BackupStore(folder).write_manifest(record, sign=sign)
    return name


@pytest.mark.parametrize("forgery", ["unsigned", "origin removed", "signature of another key", "origin flipped"])
def test_a_manifest_that_does_not_verify_makes_its_file_an_upload(boundary, forgery):
    """Trust is the signature: a hostile file whose manifest claims to be ours goes through the gate."""
    settings = load_settings(boundary["config"], dotenv_path=None)
    hostile = next(case for case in CORPUS if case.name == "copy_to_program")
    seed = operations.create(settings, target="app")
    manifest = {key: value for key, value in seed.items() if key not in ("path", "signature")}
    if forgery == "origin removed":
        manifest.pop("origin")
    name = _plant(boundary, hostile.data, manifest, sign=False)
    folder = Path(boundary["config"]["BACKUP_DIR"])
    record = json.loads((folder / f"{name}.meta.json").read_text())
    if forgery == "signature of another key":
        record["signature"] = hashlib.sha256(b"not our key").hexdigest()
    if forgery == "origin flipped":  # a signed upload's manifest edited to say "worker"
        signed = BackupStore(folder)
        signed.write_manifest({**record, "origin": "upload"})
        record = json.loads((folder / f"{name}.meta.json").read_text())
        record["origin"] = "worker"
    (folder / f"{name}.meta.json").write_text(json.dumps(record))
    listed = {m["backup_filename"]: m for m in operations.list_backups(settings, target="app")}
    assert name in listed  # still listed (as what it says), but never trusted
    with pytest.raises(errors.UploadRefused, match=re.escape(hostile.expect)):
        operations.restore(settings, backup_filename=name, target="app")
    with pytest.raises(errors.ArtifactError, match=re.escape(errors.VERIFY_FAILED)):
        operations.verify(settings, backup_filename=name)
    assert pg_dump_of(boundary["urls"]["app"]) == boundary["dumps"]["app"]
    assert not MARKER.exists()


HOSTILE_JSON_TYPES = [
    ("integer); DROP TABLE public.customers; --", "not exactly one"),
    ("integer DEFAULT pg_read_file('/etc/passwd')", "more than a type"),
    ("numeric(pg_sleep(10)::integer)", "calls pg_sleep"),
]


@pytest.mark.parametrize(("type_text", "expect"), HOSTILE_JSON_TYPES)
def test_a_json_upload_with_a_hostile_type_is_refused_before_any_sql_is_written(boundary, type_text, expect):
    settings = load_settings(boundary["config"], dotenv_path=None)
    created = operations.create(settings, target="app", format="json")
    path = Path(created["path"])
    lines = path.read_bytes().split(b"\n")
    schema = json.loads(lines[2][len(b'"schema": '):-1])
    schema["tables"][0]["columns"][0]["type"] = type_text
    lines[2] = b'"schema": ' + json.dumps(schema).encode() + b","
    upload = f"hostile-{uuid.uuid4().hex[:6]}.json"
    (boundary["root"] / "uploads" / upload).write_bytes(b"\n".join(lines))
    with pytest.raises(errors.BackupError) as caught:
        operations.restore_upload(settings, path=upload, target="app")
    assert errors.FRAGMENT_REFUSED in str(caught.value) and expect in str(caught.value), str(caught.value)
    assert pg_dump_of(boundary["urls"]["app"]) == boundary["dumps"]["app"]


def test_a_json_row_of_the_wrong_width_is_refused(boundary):
    settings = load_settings(boundary["config"], dotenv_path=None)
    created = operations.create(settings, target="app", format="json")
    data = Path(created["path"]).read_bytes()
    start = data.index(b'"rows": [\n') + len(b'"rows": [\n')
    end = data.index(b"\n", start)
    row = json.loads(data[start:end].rstrip(b","))
    widened = json.dumps(row + [1]).encode() + (b"," if data[start:end].endswith(b",") else b"")
    upload = f"wide-{uuid.uuid4().hex[:6]}.json"
    (boundary["root"] / "uploads" / upload).write_bytes(data[:start] + widened + data[end:])
    with pytest.raises(errors.ConversionError, match="expected an array of"):
        operations.restore_upload(settings, path=upload, target="app")
    assert pg_dump_of(boundary["urls"]["app"]) == boundary["dumps"]["app"]
