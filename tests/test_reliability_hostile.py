"""Hostile input (issue 6): paths, files and arguments meant to escape, break or trick the worker,
and a sweep for the target's password everywhere the worker leaves traces.

Each case must give a clear error and change nothing: the target database, the other
databases, the backup folder and the rest of the disk are compared before and after.
Engine-level cases call `tasks.operations` (what the tasks and `--local` call); argument cases
go through a real worker and read the failure from the result backend.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import redis

from backup_engine import errors
from config.settings import load_settings
from tasks import operations
from tests import richdb_pg
from tests.engine_api import BackupStore
from tests.processes import ManagedProcess, clean_environment
from tests.reliability_helpers import (
    failure_text,
    grep_files,
    send,
    snapshot_processes,
    start_worker,
    wait_result,
    worker_env,
)
from tests.servers import free_port

pytestmark = pytest.mark.reliability


# --- a victim and its neighbours ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(pg_server, tmp_path_factory):
    """`victim` (PostgreSQL, rich), `other` (another database on the same server), `lite` (SQLite),
    a backup of each, an upload folder, a folder outside both, and a world-writable folder where
    a successful shell or COPY PROGRAM escape would leave its marker."""
    root = tmp_path_factory.mktemp("hostile")
    names = {key: f"rel_{key}_{uuid.uuid4().hex[:8]}" for key in ("victim", "other")}
    urls = {key: pg_server.create_database(name) for key, name in names.items()}
    richdb_pg.build_rich_database(urls["victim"], rows_per_table=25, seed=11)
    conn = pg_server.connect(names["other"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE keep_me (id int PRIMARY KEY); INSERT INTO keep_me SELECT generate_series(1, 10)")
    conn.close()
    lite = root / "lite.sqlite3"
    _sqlite_seed(lite)
    for folder in ("backups", "uploads", "outside"):
        (root / folder).mkdir()
    markers = Path(tempfile.mkdtemp(prefix="bw-markers-", dir="/tmp"))
    markers.chmod(0o777)  # the PostgreSQL server runs as `postgres`: a COPY ... TO PROGRAM could write here
    settings = load_settings({  # uncompressed: the cases below cut and copy the seed backups' bytes
        "BACKUP_TARGETS": json.dumps({"victim": urls["victim"], "other": urls["other"], "lite": f"sqlite:///{lite}"}),
        "BACKUP_DIR": str(root / "backups"), "BACKUP_UPLOAD_DIR": str(root / "uploads"),
        "BACKUP_COMPRESSION": "none"}, dotenv_path=None)
    seeds = {name: operations.create(settings, target=name) for name in ("victim", "other", "lite")}
    (root / "outside" / "secret.sql").write_bytes(Path(seeds["victim"]["path"]).read_bytes())
    yield {"victim_state": richdb_pg.database_state(urls["victim"]),
           "root": root, "urls": urls, "settings": settings, "seeds": seeds, "markers": markers, "lite": lite,
           "backups": root / "backups", "uploads": root / "uploads", "outside": root / "outside"}
    shutil.rmtree(markers, ignore_errors=True)
    for name in names.values():
        pg_server.drop_database(name)


def _sqlite_seed(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');")
    conn.close()


def world(lab) -> dict:
    """Everything a hostile request must leave alone."""
    return {
        "victim": richdb_pg.database_state(lab["urls"]["victim"]),
        "other": richdb_pg.database_state(lab["urls"]["other"]),
        "lite": lab["lite"].read_bytes(),
        "outside": sorted(p.name for p in lab["outside"].iterdir()),
        "markers": sorted(p.name for p in lab["markers"].iterdir()),
    }


@contextlib.contextmanager
def healing(lab):
    """Put the victim back from its seed backup if a case (an engine bug) changed it, so that one
    failure cannot hide the next."""
    try:
        yield
    finally:
        if richdb_pg.database_state(lab["urls"]["victim"]) != lab["victim_state"]:
            operations.restore(lab["settings"], backup_filename=lab["seeds"]["victim"]["backup_filename"],
                               target="victim")


def backup_names(lab) -> list[str]:
    return sorted(p.name for p in lab["backups"].iterdir())


# --- paths -------------------------------------------------------------------------------------------------
HOSTILE_BACKUP_NAMES = [
    ("../outside/secret.sql", errors.UNSAFE_PATH),
    ("/etc/passwd", errors.UNSAFE_PATH),
    ("sub/../../outside/secret.sql", errors.UNSAFE_PATH),
    ("..", errors.UNSAFE_PATH),
    (".", errors.UNSAFE_PATH),
    ("..\\..\\etc\\passwd", errors.UNSAFE_PATH),
    ("victim_db_backup\x00.sql", errors.UNSAFE_PATH),
    ("a" * 300 + ".sql", errors.BAD_FILENAME),
    ("a" * 5000, errors.BAD_FILENAME),
    ("", errors.BAD_FILENAME),
    (".partial.host.1.abc.sql", errors.BAD_FILENAME),
    ("%2e%2e%2fetc%2fpasswd", errors.BAD_FILENAME),
    ("victim backup.sql", errors.BAD_FILENAME),
    ("\u2024\u2024/etc/passwd", errors.UNSAFE_PATH),
    ("victim_db_backup_20990101_000000.sql", errors.BACKUP_NOT_FOUND),
    (123, errors.BAD_FILENAME),
    (None, errors.BAD_FILENAME),
    (["victim.sql"], errors.BAD_FILENAME),
]


@pytest.mark.parametrize(("name", "reason"), HOSTILE_BACKUP_NAMES, ids=[repr(n)[:40] for n, _ in HOSTILE_BACKUP_NAMES])
def test_hostile_backup_names_are_refused_by_restore_and_verify(lab, name, reason):
    before, listing = world(lab), backup_names(lab)
    settings = lab["settings"]
    with pytest.raises(errors.BackupError, match=re.escape(reason)):
        operations.restore(settings, backup_filename=name, target="victim")
    with pytest.raises(errors.BackupError, match=re.escape(reason)):
        operations.verify(settings, backup_filename=name)
    assert world(lab) == before and backup_names(lab) == listing


def test_the_manifest_itself_is_not_a_backup(lab):
    name = lab["seeds"]["victim"]["backup_filename"] + ".meta.json"
    with pytest.raises(errors.InvalidRequest, match=re.escape(errors.BAD_FILENAME)):
        operations.restore(lab["settings"], backup_filename=name, target="victim")


def test_symlinks_planted_in_the_backup_folder_are_refused(lab):
    """A link named like a backup (with a manifest that matches the file it points to), and a real
    backup whose manifest is a link: neither is restored, verified or listed."""
    settings, backups, seed = lab["settings"], lab["backups"], lab["seeds"]["victim"]
    linked = "victim_db_backup_20000101_000000.sql"
    (backups / linked).symlink_to(lab["outside"] / "secret.sql")
    manifest = {**json.loads((backups / (seed["backup_filename"] + ".meta.json")).read_text()),
                "backup_filename": linked}
    (backups / (linked + ".meta.json")).write_text(json.dumps(manifest))

    copied = "victim_db_backup_20000102_000000.sql"
    shutil.copy(seed["path"], backups / copied)
    outside_manifest = lab["outside"] / "planted.meta.json"
    outside_manifest.write_text(json.dumps({**manifest, "backup_filename": copied}))
    (backups / (copied + ".meta.json")).symlink_to(outside_manifest)
    before = world(lab)
    try:
        with pytest.raises(errors.InvalidRequest, match=re.escape(errors.UNSAFE_PATH)):
            operations.restore(settings, backup_filename=linked, target="victim")
        with pytest.raises(errors.InvalidRequest, match=re.escape(errors.UNSAFE_PATH)):
            operations.verify(settings, backup_filename=linked)
        with pytest.raises(errors.ArtifactError, match=re.escape(errors.MANIFEST_MISSING)):
            operations.restore(settings, backup_filename=copied, target="victim")
        listed = {m["backup_filename"] for m in operations.list_backups(settings)}
        assert linked not in listed and copied not in listed
        assert not {linked, copied} & set(json.dumps(operations.prune(settings, target="victim")))
        assert world(lab) == before
    finally:
        for name in (linked, linked + ".meta.json", copied, copied + ".meta.json"):
            (backups / name).unlink(missing_ok=True)
        outside_manifest.unlink()


@pytest.fixture
def upload_links(lab):
    uploads = lab["uploads"]
    (uploads / "link.sql").symlink_to(lab["outside"] / "secret.sql")
    (uploads / "linkdir").symlink_to(lab["outside"])
    (uploads / "sub").mkdir()
    yield
    for name in ("link.sql", "linkdir"):
        (uploads / name).unlink()
    shutil.rmtree(uploads / "sub")


HOSTILE_UPLOAD_PATHS = [
    ("../outside/secret.sql", errors.UNSAFE_PATH),
    ("/etc/passwd", errors.UNSAFE_PATH),  # made relative to the folder: a `..` path, refused
    ("sub/../../outside/secret.sql", errors.UNSAFE_PATH),
    ("link.sql", errors.UNSAFE_PATH),
    ("linkdir/secret.sql", errors.UNSAFE_PATH),
    ("sub//x.sql", errors.UNSAFE_PATH),
    ("./x.sql", errors.UNSAFE_PATH),
    ("x\x00.sql", errors.UNSAFE_PATH),
    ("a" * 300 + ".sql", errors.BAD_FILENAME),
    ("", errors.BAD_FILENAME),
    ("missing.sql", errors.BACKUP_NOT_FOUND),
    (7, errors.BAD_FILENAME),
    (["x.sql"], errors.BAD_FILENAME),
]


@pytest.mark.parametrize(("path", "reason"), HOSTILE_UPLOAD_PATHS, ids=[repr(p)[:40] for p, _ in HOSTILE_UPLOAD_PATHS])
def test_hostile_upload_paths_are_refused(lab, upload_links, path, reason):
    before, listing = world(lab), backup_names(lab)
    with pytest.raises(errors.BackupError) as caught:
        operations.restore_upload(lab["settings"], path=path, target="victim")
    message = str(caught.value)
    assert reason in message, message
    assert world(lab) == before and backup_names(lab) == listing  # nothing imported


def test_an_absolute_upload_path_outside_the_folder_is_refused(lab):
    with pytest.raises(errors.InvalidRequest, match=re.escape(errors.UNSAFE_PATH)):
        operations.restore_upload(lab["settings"], path=str(lab["outside"] / "secret.sql"), target="victim")


# --- another target's backups ------------------------------------------------------------------------------
def test_restoring_one_targets_backup_into_another_is_deliberate_and_safe(lab, make_pg_database):
    """By design a restore takes any backup of the same dialect for any configured target (a restore
    drill, a copy to staging). It must be explicit in the result, back up the overwritten target
    first, leave the source alone, and still refuse a backup of another engine."""
    settings = load_settings({
        "BACKUP_TARGETS": json.dumps({"victim": lab["urls"]["victim"], "copy": make_pg_database("rel_copy"),
                                      "lite": f"sqlite:///{lab['lite']}"}),
        "BACKUP_DIR": str(lab["backups"]), "BACKUP_UPLOAD_DIR": str(lab["uploads"])}, dotenv_path=None)
    seed = lab["seeds"]["victim"]
    before = world(lab)
    with pytest.raises(errors.InvalidRequest, match=re.escape(errors.FOREIGN_BACKUP)):  # not without saying so
        operations.restore(settings, backup_filename=seed["backup_filename"], target="copy")
    result = operations.restore(settings, backup_filename=seed["backup_filename"], target="copy",
                                source_target="victim")
    assert result["restored_from"] == {"target": "victim", "prefix": "victim"}
    assert result["target"] == "copy" and result["restored_file"] == seed["backup_filename"]
    assert result["safety_backup"]["target"] == "copy"
    assert richdb_pg.database_state(settings.targets["copy"].url) == before["victim"]
    assert world(lab) == before
    listed = {m["backup_filename"] for m in operations.list_backups(settings, target="copy")}
    assert seed["backup_filename"] not in listed

    with pytest.raises(errors.InvalidRequest, match=re.escape(errors.UNSUPPORTED_SQLITE_RESTORE)):
        operations.restore(settings, backup_filename=seed["backup_filename"], target="lite", source_target="victim")
    with pytest.raises(errors.InvalidRequest, match=re.escape(errors.UNSUPPORTED_PG_RESTORE)):
        operations.restore(settings, backup_filename=lab["seeds"]["lite"]["backup_filename"], target="victim",
                           source_target="lite")
    assert world(lab) == before
    # Pruning one target never touches another's backups.
    operations.prune(settings, target="copy")
    assert BackupStore(lab["backups"]).verified(seed["backup_filename"])


# --- uploaded files ----------------------------------------------------------------------------------------
def _truncated_dump(lab) -> bytes:
    data = Path(lab["seeds"]["victim"]["path"]).read_bytes()
    start = data.index(b"\nCOPY ")
    return data[: data.index(b"\n", start + 1) + 40]


def _csv_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("customers.csv", "id,name\n1,Ada\n")
    return buffer.getvalue()


def _marker_sql(kind: str, marker: Path) -> bytes:
    return {
        "shell escape": f"\\! touch {marker}\n",
        "shell escape mid-line": f"SELECT 1; \\! touch {marker}\n",
        "psql \\o to a file": f"SELECT 1 \\o {marker}\nSELECT 'written';\n",
        "psql \\copy to a file": f"SELECT 1; \\copy (SELECT 1) TO '{marker}'\n",
        "COPY TO PROGRAM": f"COPY (SELECT 1) TO PROGRAM 'touch {marker}';\n",
        "COPY TO PROGRAM mid-line": f"SELECT 1; COPY (SELECT 1) TO PROGRAM 'touch {marker}';\n",
        "COPY TO PROGRAM over two lines": f"COPY (SELECT 1)\nTO PROGRAM 'touch {marker}';\n",
        "COPY TO a server file": f"COPY (SELECT 1) TO '{marker}';\n",
        "COPY FROM a server file": "CREATE TABLE stolen (line text);\nCOPY stolen FROM '/etc/passwd';\n",
    }[kind].encode()


MARKER_CASES = [
    "shell escape", "shell escape mid-line", "psql \\o to a file", "psql \\copy to a file", "COPY TO PROGRAM",
    "COPY TO PROGRAM mid-line", "COPY TO PROGRAM over two lines",
    "COPY TO a server file", "COPY FROM a server file",
]


@pytest.mark.parametrize("kind", MARKER_CASES)
def test_uploads_that_try_to_run_commands_or_touch_files_are_refused(lab, kind):
    """Nothing the upload asks for happens: no marker file appears (written by psql as the worker's
    user, or by the server as `postgres`), the restore fails, the target is unchanged."""
    marker = lab["markers"] / f"pwned-{uuid.uuid4().hex[:8]}"
    upload = f"hostile-{uuid.uuid4().hex[:8]}.sql"
    (lab["uploads"] / upload).write_bytes(b"CREATE TABLE public.pwned (id int);\n" + _marker_sql(kind, marker))
    before = world(lab)
    failed = None
    with healing(lab):
        try:
            operations.restore_upload(lab["settings"], path=upload, target="victim")
        except errors.BackupError as exc:
            failed = str(exc)
        time.sleep(0.2)
        assert not marker.exists(), f"{kind}: the upload created {marker}"
        assert failed, f"{kind}: the upload was restored"
        assert errors.UPLOAD_REFUSED in failed, failed  # the gate refuses it before anything runs
        assert world(lab) == before


def _transaction_escape(lab) -> bytes:
    return b"CREATE TABLE public.pwned (id int);\nCOMMIT;\nSELECT 1/0;\n"


HOSTILE_FILES = [
    ("empty", lambda lab: b"", "empty"),
    ("truncated dump", _truncated_dump, "ends inside COPY data"),
    ("gzip of binary junk named .sql", lambda lab: gzip.compress(os.urandom(2000) + b"\x00"), "binary"),
    ("binary junk", lambda lab: os.urandom(2000) + b"\x00" + os.urandom(2000), "binary"),
    ("CSV zip", lambda lab: _csv_zip(), "export only"),
    ("SQLite file into PostgreSQL", lambda lab: lab["lite"].read_bytes(), "restores only into SQLite"),
    ("JSON", lambda lab: json.dumps({"tables": {"x; DROP TABLE customers; --": []}}).encode(),
     errors.JSON_CONVERSION_FAILED),
    ("JSON bomb: huge string", lambda lab: b'{"a": "' + b"x" * 20_000_000 + b'"}', errors.JSON_CONVERSION_FAILED),
    ("JSON bomb: deep nesting", lambda lab: b"[" * 200_000 + b"]" * 200_000, errors.UPLOAD_REFUSED),
    ("psql \\c to another database", lambda lab: f"\\c {lab['urls']['other'].rsplit('/', 1)[1]}\n"
                                                 "DROP TABLE keep_me;\n".encode(), "meta-command"),
    ("psql \\c mid-line", lambda lab: f"SELECT 1; \\c {lab['urls']['other'].rsplit('/', 1)[1]}\n"
                                      "DROP TABLE keep_me;\n".encode(), errors.UPLOAD_REFUSED),
    ("psql \\set ON_ERROR_STOP off", lambda lab: b"SELECT 1 \\set ON_ERROR_STOP 0\nSELECT 1/0;\n",
     "meta-command"),
    ("COMMIT inside the upload", _transaction_escape, "Refused upload statement at line 2: COMMIT"),
]


@pytest.mark.parametrize(("kind", "build", "reason"), HOSTILE_FILES,
                         ids=[(c.values[0] if hasattr(c, "values") else c[0]) for c in HOSTILE_FILES])
def test_hostile_upload_files_fail_clearly_and_change_nothing(lab, kind, build, reason):
    upload = f"hostile-{uuid.uuid4().hex[:8]}.sql"
    (lab["uploads"] / upload).write_bytes(build(lab))
    before = world(lab)
    with healing(lab):
        with pytest.raises(errors.BackupError) as caught:
            operations.restore_upload(lab["settings"], path=upload, target="victim")
        assert reason in str(caught.value), str(caught.value)
        assert world(lab) == before


@contextlib.contextmanager
def app_role_database(pg_server, make_pg_database):
    """A database owned by a login role that is not a superuser (how uploads are meant to be
    restored); yields its URL; the role and database are dropped afterwards."""
    role, password = f"rel_app_{uuid.uuid4().hex[:6]}", "app-" + uuid.uuid4().hex
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    conn.close()
    name = make_pg_database("rel_app", owner=role).rsplit("/", 1)[1]
    try:
        yield pg_server.url(name, user=role, password=password)
    finally:
        conn = pg_server.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.close()


def test_a_genuine_pg_dump_upload_is_accepted(lab, pg_server, make_pg_database):
    """The control case: the gate lets a real dump through, restored as a role that is not a superuser,
    so the refusals above are not blanket."""
    with app_role_database(pg_server, make_pg_database) as url:
        settings = load_settings({"BACKUP_TARGETS": json.dumps({"scratch": url}),
                                  "BACKUP_DIR": str(lab["backups"]), "BACKUP_UPLOAD_DIR": str(lab["uploads"])},
                                 dotenv_path=None)
        shutil.copy(lab["seeds"]["victim"]["path"], lab["uploads"] / "genuine.sql")
        result = operations.restore_upload(settings, path=str(lab["uploads"] / "genuine.sql"), target="scratch")
        assert result["uploaded_path"] == "genuine.sql"
        assert richdb_pg.database_state(settings.targets["scratch"].url) == richdb_pg.database_state(
            lab["urls"]["victim"])


def test_an_upload_with_a_superuser_role_is_refused_unless_allowed(lab, make_pg_database):
    """The lab's target role is a superuser: an upload is refused before anything runs, with the way out."""
    url = make_pg_database("rel_super")
    config = {"BACKUP_TARGETS": json.dumps({"scratch": url}), "BACKUP_DIR": str(lab["backups"]),
              "BACKUP_UPLOAD_DIR": str(lab["uploads"])}
    settings = load_settings(config, dotenv_path=None)
    shutil.copy(lab["seeds"]["victim"]["path"], lab["uploads"] / "as-superuser.sql")
    with pytest.raises(errors.InvalidRequest, match="BACKUP_UPLOAD_ALLOW_SUPERUSER") as caught:
        operations.restore_upload(settings, path="as-superuser.sql", target="scratch")
    assert errors.UPLOAD_ROLE_REFUSED in str(caught.value)
    assert richdb_pg.table_row_counts(url) == {}
    allowed = load_settings({**config, "BACKUP_UPLOAD_ALLOW_SUPERUSER": "true"}, dotenv_path=None)
    operations.restore_upload(allowed, path="as-superuser.sql", target="scratch")
    assert richdb_pg.database_state(url) == richdb_pg.database_state(lab["urls"]["victim"])


def test_a_non_superuser_target_role_stops_dynamic_copy_to_program(lab, pg_server, make_pg_database):
    """No gate can see SQL built inside a function at run time (README, known limits); the documented
    defence is a target role that is not a superuser: the server itself then refuses COPY ... TO PROGRAM.
    The function runs from a trigger on an INSERT the gate allows."""
    with app_role_database(pg_server, make_pg_database) as url:
        settings = load_settings({"BACKUP_TARGETS": json.dumps({"app": url}), "BACKUP_DIR": str(lab["backups"]),
                                  "BACKUP_UPLOAD_DIR": str(lab["uploads"])}, dotenv_path=None)
        marker = lab["markers"] / f"dynamic-{uuid.uuid4().hex[:8]}"
        body = f"EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}'''; RETURN NEW;"
        (lab["uploads"] / "dynamic.sql").write_text(
            "CREATE TABLE public.t (id int);\n"
            f"CREATE FUNCTION public.sneaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$;\n"
            "CREATE TRIGGER sneaky BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.sneaky();\n"
            "INSERT INTO public.t VALUES (1);\n")
        with pytest.raises(errors.RestoreError, match="permission denied|must be superuser|pg_execute_server_program"):
            operations.restore_upload(settings, path="dynamic.sql", target="app")
        assert not marker.exists()


# --- arguments through a real worker -----------------------------------------------------------------------
ARGUMENT_CASES = [
    ("backups.create", {"target": "nowhere"}, errors.UNKNOWN_TARGET),
    ("backups.create", {"target": 1}, errors.UNKNOWN_TARGET),
    ("backups.create", {"target": ["victim"]}, errors.UNKNOWN_TARGET),
    ("backups.create", {"target": None}, errors.UNKNOWN_TARGET),
    ("backups.create", {"target": "postgresql://evil:pw@203.0.113.1/db"}, errors.UNKNOWN_TARGET),
    ("backups.create", {"target": "victim\x00"}, errors.UNKNOWN_TARGET),
    ("backups.create", {"target": "victim", "format": "xml"}, errors.UNKNOWN_FORMAT),
    ("backups.create", {"target": "victim", "format": ["sql"]}, errors.UNKNOWN_FORMAT),
    ("backups.create", {"target": "victim", "format": "sqlite"}, errors.UNKNOWN_FORMAT),
    ("backups.create", {"target": "victim", "method": "magic"}, errors.UNKNOWN_METHOD),
    ("backups.create", {"target": "victim", "include_data": "everything"}, errors.UNKNOWN_INCLUDE_DATA),
    ("backups.create", {"target": "victim", "include_data": 0}, errors.UNKNOWN_INCLUDE_DATA),
    ("backups.create", {"target": "victim", "url": "postgresql://elsewhere/db"}, "unexpected keyword argument"),
    ("backups.restore", {"target": "victim"}, "backup_filename"),
    ("backups.restore", {"target": "victim", "backup_filename": 123}, errors.BAD_FILENAME),
    ("backups.restore", {"target": "victim", "backup_filename": {"path": "/etc/passwd"}}, errors.BAD_FILENAME),
    ("backups.restore", {"target": "victim", "backup_filename": "../../etc/passwd"}, errors.UNSAFE_PATH),
    ("backups.restore_upload", {"target": "victim", "path": "/etc/passwd"}, errors.UNSAFE_PATH),
    ("backups.restore_upload", {"target": "victim", "path": None}, errors.BAD_FILENAME),
    ("backups.verify", {"backup_filename": "/etc/shadow"}, errors.UNSAFE_PATH),
    ("backups.verify", {"backup_filename": "x.sql", "target": "victim"}, "unexpected keyword argument"),
    ("backups.list", {"target": 5}, errors.UNKNOWN_TARGET),
    ("backups.prune", {"target": "nowhere"}, errors.UNKNOWN_TARGET),
]


@pytest.mark.slow
def test_wrong_arguments_through_a_real_worker_fail_with_a_stated_reason(lab, broker, processes, tmp_path):
    env = worker_env(tmp_path, broker, {"victim": lab["urls"]["victim"]})
    start_worker(processes, env, tmp_path, "arguments", concurrency=2)
    before = world(lab)
    sent = [(name, kwargs, reason, send(broker, name, **kwargs)) for name, kwargs, reason in ARGUMENT_CASES]
    for name, kwargs, reason, task_id in sent:
        meta = wait_result(broker, task_id, timeout=60)
        assert meta["status"] == "FAILURE", (name, kwargs, meta)
        assert reason in failure_text(meta), (name, kwargs, failure_text(meta))
        assert not meta.get("retries"), (name, kwargs, "a bad argument is not worth a retry")
    assert world(lab) == before
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").glob("*.sql"))
    # The worker is still healthy.
    meta = wait_result(broker, send(broker, "backups.list", target="victim"), timeout=60)
    assert meta["status"] == "SUCCESS"


# --- secrets -----------------------------------------------------------------------------------------------
def secret_forms(*secrets: str) -> set[str]:
    forms = set()
    for secret in secrets:
        forms |= {secret, quote(secret, safe=""), quote_plus(secret), secret.replace(":", "\\:")}
    return forms


class ProcessWatcher(threading.Thread):
    """Reads every process's argv and environment every few milliseconds, looking for the secrets."""

    def __init__(self, forms: set[str]) -> None:
        super().__init__(daemon=True)
        self.forms = forms
        self.stop = threading.Event()
        self.hits: set[str] = set()
        self.snapshots = 0

    def run(self) -> None:
        while not self.stop.is_set():
            text = snapshot_processes()
            self.snapshots += 1
            self.hits |= {line[:200] for line in text.splitlines() if any(form in line for form in self.forms)}
            time.sleep(0.01)


FLOWER_AUTH = ("admin", "flower-" + uuid.uuid4().hex[:8])


def flower_get(url: str) -> str:
    token = base64.b64encode(":".join(FLOWER_AUTH).encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode(errors="replace")


@pytest.mark.slow
def test_no_password_anywhere_after_backups_restores_and_failures(lab, pg_server, broker, processes, tmp_path):
    role, app_password = f"rel_sec_{uuid.uuid4().hex[:6]}", "sec-" + uuid.uuid4().hex + "@:/%"
    wrong_password, down_password = "wrong-" + uuid.uuid4().hex, "down-" + uuid.uuid4().hex
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN CREATEDB PASSWORD %s', (app_password,))
    conn.close()
    db = f"rel_sec_{uuid.uuid4().hex[:6]}"
    pg_server.create_database(db, owner=role)
    app_url = pg_server.url(db, user=role, password=app_password)
    app = richdb_pg.connect(app_url)
    with app.cursor() as cur:
        cur.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text);"
                    "INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, 500) g")
    app.commit()
    app.close()
    targets = {
        "app": app_url,
        "admin": lab["urls"]["victim"],  # the superuser's password, with URL-quoted punctuation
        "wrongpw": pg_server.url(db, user=role, password=wrong_password),
        "down": f"postgresql://{role}:{quote(down_password)}@127.0.0.1:{free_port()}/{db}",
        "missing": pg_server.url("no_such_database"),
    }
    forms = secret_forms(app_password, pg_server.password, wrong_password, down_password)
    env = worker_env(tmp_path, broker, targets, BACKUP_TASK_MAX_RETRIES="1")
    canary = "canary-" + uuid.uuid4().hex  # proves the watcher sees environments: it must be found
    watcher = ProcessWatcher(forms | {canary})
    watcher.start()
    subprocess.run(["sleep", "0.3"], env={"PGPASSWORD": canary}, check=True)
    flower_port = free_port()
    flower = ManagedProcess([sys.executable, "-m", "celery", "-A", "worker.app", "flower", f"--port={flower_port}",
                             "--address=127.0.0.1", "--persistent=False"],
                            {**env, "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}, tmp_path,
                            tmp_path / "flower.log").start()
    processes.append(flower)
    worker = start_worker(processes, env, tmp_path, "secrets", concurrency=2)
    try:
        created = wait_result(broker, send(broker, "backups.create", target="app"), timeout=90)
        assert created["status"] == "SUCCESS", failure_text(created)
        name = created["result"]["backup_filename"]
        (tmp_path / "uploads").mkdir(exist_ok=True)
        shutil.copy(created["result"]["path"], tmp_path / "uploads" / "again.sql")
        (tmp_path / "uploads" / "broken.sql").write_text("CREATE TABLE x (id int);\nSELECT 1/0;\n")
        outcomes = {key: wait_result(broker, task_id, timeout=120) for key, task_id in [
            ("admin", send(broker, "backups.create", target="admin")),
            ("restore", send(broker, "backups.restore", backup_filename=name, target="app")),
            ("verify", send(broker, "backups.verify", backup_filename=name)),
            ("upload", send(broker, "backups.restore_upload", path="again.sql", target="app")),
            ("broken upload", send(broker, "backups.restore_upload", path="broken.sql", target="app")),
            ("wrongpw", send(broker, "backups.create", target="wrongpw")),
            ("down", send(broker, "backups.create", target="down")),
            ("missing", send(broker, "backups.create", target="missing")),
            ("list", send(broker, "backups.list")),
        ]}
        for key in ("admin", "restore", "verify", "upload", "list"):
            assert outcomes[key]["status"] == "SUCCESS", (key, failure_text(outcomes[key]))
        assert outcomes["verify"]["result"]["drill_ok"] is True
        for key in ("broken upload", "wrongpw", "down", "missing"):
            assert outcomes[key]["status"] == "FAILURE", key
        assert errors.TARGET_UNREACHABLE in failure_text(outcomes["down"])
        assert "password authentication failed" in failure_text(outcomes["wrongpw"])

        cli = subprocess.run([sys.executable, "-m", "worker", "backup", "--local", "--target", "wrongpw"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 1 and "password authentication failed" in cli.stderr

        flower_text = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                flower_text = flower_get(f"http://127.0.0.1:{flower_port}/api/tasks")
            except OSError:
                flower_text = ""
            if flower_text.count('"state"') >= len(outcomes):
                break
            time.sleep(0.5)
        assert flower_text.count('"state"') >= len(outcomes), flower_text[:500]
        flower_text += flower_get(f"http://127.0.0.1:{flower_port}/api/workers")
    finally:
        watcher.stop.set()
        watcher.join()

    connection = redis.Redis.from_url(broker)
    stored = []
    for key in connection.scan_iter("*"):
        kind = connection.type(key).decode()
        readers = {"string": connection.get, "hash": connection.hgetall, "set": connection.smembers,
                   "list": lambda k: connection.lrange(k, 0, -1), "zset": lambda k: connection.zrange(k, 0, -1)}
        value = readers.get(kind, lambda k: b"")(key)
        stored.append(f"{key!r} {value!r}")
    connection.close()
    assert any("celery-task-meta-" in item for item in stored)
    places = {
        "process list (argv and environment)": "\n".join(watcher.hits),
        "worker log": worker.output(),
        "flower log and API": flower.output() + flower_text,
        "result backend and broker (all Redis keys)": "\n".join(stored),
        "task results": json.dumps(outcomes),
        "CLI output": cli.stdout + cli.stderr,
    }
    assert watcher.snapshots > 20 and any(canary in hit for hit in watcher.hits)
    watcher.hits = {hit for hit in watcher.hits if canary not in hit}
    leaks = {place: sorted(form for form in forms if form in text) for place, text in places.items()}
    leaks["files (backups, manifests, uploads)"] = [hit for form in forms for hit in grep_files(
        [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".log"], form)]
    assert not any(leaks.values()), leaks
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()


def test_the_passwords_under_test_are_real(pg_server):
    """Guard for the sweep above: the server really has a password, and it needs URL-quoting."""
    assert pg_server.password and quote(pg_server.password, safe="") != pg_server.password
    env = clean_environment()
    assert not any(pg_server.password in value for value in env.values())
