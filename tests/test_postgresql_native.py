"""The native PostgreSQL path end to end: pg_dump backups and psql restores through the engine.

Real throwaway server, real pg_dump and psql, no mocks. A restore must leave the target
holding exactly what the backup holds (rows, schema, sequence positions), or exactly what it
held before; bad files and bad names must be refused before anything is touched; a failed
dump must leave no file; the server password must never show up anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, create_backup, restore_backup

PG_DUMP = shutil.which("pg_dump")
PSQL = shutil.which("psql")
TOOLS = ClientTools(pg_dump=PG_DUMP, psql=PSQL)
NAME_PATTERN = re.compile(r"^rich_db_backup_\d{8}_\d{6}(_\d+)?\.sql$")
END_MARKER = b"-- PostgreSQL database dump complete"

pytestmark = pytest.mark.skipif(not (PG_DUMP and PSQL), reason="pg_dump / psql not installed")


# --- helpers -------------------------------------------------------------------------------------------------
def snapshot(url: str) -> tuple[dict, dict]:
    """Everything a restore may change: contents (rows, sequences) and schema."""
    return richdb_pg.database_state(url), richdb_pg.schema_fingerprint(url)


def listing(folder: Path) -> list[str]:
    """Every entry of the folder, hidden temp files included."""
    return sorted(os.listdir(folder))


def execute(url: str, statement: str) -> None:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


def build_other_database(url: str) -> None:
    """A database with the rich schema but other rows, plus objects the backup does not have."""
    richdb_pg.build_rich_database(url, rows_per_table=40, seed=5)
    execute(url, """
        CREATE SCHEMA junk;
        CREATE TABLE junk.leftover (id int PRIMARY KEY, note text);
        INSERT INTO junk.leftover SELECT g, 'left ' || g FROM generate_series(1, 25) g;
        CREATE TABLE public.extra_table (x text);
        INSERT INTO public.extra_table VALUES ('extra'), (NULL);
        CREATE TYPE public.extra_enum AS ENUM ('x', 'y');
        CREATE SEQUENCE public.extra_seq;
        ALTER TABLE public.customers ADD COLUMN extra_col integer DEFAULT 7;
        CREATE VIEW public.extra_view AS SELECT 1 AS one;
        CREATE FUNCTION public.extra_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
    """)


def plant_backup(store: BackupStore, manifest: dict, data: bytes, name: str) -> str:
    """Write `data` as backup `name` with a manifest copied from `manifest`, checksum fixed up and
    signed with the folder's key, so that only the SQL inside can fail."""
    path = store.folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    digest = hashlib.sha256(data).hexdigest()
    store.write_manifest({**manifest, "backup_filename": name, "size_bytes": len(data), "sha256": digest,
                          "content_bytes": len(data), "content_sha256": digest})
    return name


def password_forms(password: str) -> list[str]:
    """The password as it could leak: raw, URL-quoted, and its random core."""
    core = password.removeprefix("pw-").split("@")[0]
    return [password, quote(password, safe=""), quote(password), core]


def assert_no_password(text: str, password: str, where: str) -> None:
    for form in password_forms(password):
        assert form not in text, f"password leaked in {where}"


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture
def store(backup_dir: Path) -> BackupStore:
    return BackupStore(backup_dir)


@pytest.fixture
def rich_url(make_pg_database) -> str:
    url = make_pg_database("rich")
    richdb_pg.build_rich_database(url, rows_per_table=200, seed=0)
    return url


@pytest.fixture
def rich(rich_url: str) -> Target:
    return Target.from_url("rich", rich_url)


@pytest.fixture
def full_backup(rich: Target, store: BackupStore) -> dict:
    return create_backup(rich, store, format="sql", include_data="full", method="native", tools=TOOLS)


@pytest.fixture
def other_role(pg_server):
    """A LOGIN role that is not a superuser; dropped (with databases it owns) afterwards."""
    role = f"app_owner_{uuid.uuid4().hex[:8]}"
    password = "ow-" + uuid.uuid4().hex + "'\"@:"
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    yield role, password
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = %s",
                    (role,))
        for (dbname,) in cur.fetchall():
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    conn.close()


# --- full round trips ----------------------------------------------------------------------------------------
def test_full_backup_restores_into_a_new_empty_database(rich_url, full_backup, store, make_pg_database):
    source_state, source_schema = snapshot(rich_url)
    target = Target.from_url("fresh", make_pg_database("fresh"))

    result = restore_backup(target, store, full_backup["backup_filename"], tools=TOOLS)

    state, schema = snapshot(target.url)
    assert schema == source_schema
    assert state["sequences"] == source_state["sequences"]
    assert state == source_state
    assert state["sequences"]["sales.never_called_seq"] == {"last_value": 1, "is_called": False}
    assert result["backup_filename"] == full_backup["backup_filename"]
    assert result["target"] == "fresh"
    assert result["rows"] == richdb_pg.total_rows(rich_url)
    assert result["duration_s"] >= 0
    safety = result["safety_backup"]
    if safety is not None:  # a safety backup of the (empty) target is allowed, and must be a real backup
        assert safety["target"] == "fresh"
        store.verified(safety["backup_filename"])


def test_restore_over_an_existing_database_replaces_everything(rich_url, full_backup, store, make_pg_database):
    source_state, source_schema = snapshot(rich_url)
    target_url = make_pg_database("existing")
    build_other_database(target_url)
    before_state, before_schema = snapshot(target_url)
    assert before_state != source_state and before_schema != source_schema
    target = Target.from_url("existing", target_url)

    result = restore_backup(target, store, full_backup["backup_filename"], tools=TOOLS)

    state, schema = snapshot(target_url)
    assert schema == source_schema
    assert state == source_state
    assert "junk" not in schema["schemas"]
    assert "public.extra_table" not in schema["relations"]
    assert "public.extra_enum" not in schema["enums"]
    assert "extra_col" not in [c["name"] for c in schema["relations"]["public.customers"]["columns"]]

    # the safety backup holds what the target held before, and restores to exactly that
    safety = result["safety_backup"]
    assert safety is not None and safety["target"] == "existing"
    assert safety["backup_filename"] != full_backup["backup_filename"]
    store.verified(safety["backup_filename"])
    undo = Target.from_url("undo", make_pg_database("undo"))
    restore_backup(undo, store, safety["backup_filename"], tools=TOOLS, safety_backup=False)
    assert snapshot(undo.url) == (before_state, before_schema)


def test_restoring_twice_gives_the_same_database(rich_url, full_backup, store, make_pg_database):
    target = Target.from_url("twice", make_pg_database("twice"))
    restore_backup(target, store, full_backup["backup_filename"], tools=TOOLS)
    first = snapshot(target.url)
    restore_backup(target, store, full_backup["backup_filename"], tools=TOOLS)
    assert snapshot(target.url) == first == snapshot(rich_url)


# --- manifests -----------------------------------------------------------------------------------------------
def test_manifest_describes_the_file(rich_url, full_backup, store, backup_dir):
    name = full_backup["backup_filename"]
    path = backup_dir / name
    manifest_path = backup_dir / (name + ".meta.json")
    assert NAME_PATTERN.match(name)
    assert listing(backup_dir) == sorted([name, manifest_path.name])  # no temp file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(manifest_path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert full_backup["size_bytes"] == len(data) == path.stat().st_size > 0
    assert full_backup["sha256"] == hashlib.sha256(data).hexdigest()
    assert END_MARKER in data[-200:]
    on_disk = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert on_disk == {**full_backup, "path": on_disk["path"]}
    assert Path(on_disk["path"]).resolve() == path.resolve()
    assert full_backup["method"] == "pg_dump"
    assert full_backup["format"] == "sql"
    assert full_backup["include_data"] == "full"
    assert full_backup["target"] == "rich"
    assert full_backup["dialect"] == "postgresql"
    assert full_backup["server_version"].split(".")[0].isdigit()
    assert full_backup["rows"] == richdb_pg.total_rows(rich_url) > 0
    assert full_backup["created_at"] and full_backup["duration_s"] >= 0
    assert [m["backup_filename"] for m in store.list()] == [name]


def test_manifest_counts_rows_per_table(rich_url, full_backup):
    counts = richdb_pg.table_row_counts(rich_url)  # count(*) FROM ONLY: a partitioned parent holds 0 itself
    assert full_backup["table_rows"] == counts
    assert full_backup["tables"] == len(counts)


# --- include_data ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("into", ["new", "existing"])
def test_schema_only_backup_restores_the_schema_with_no_rows(rich_url, rich, store, make_pg_database, into):
    manifest = create_backup(rich, store, include_data="schema", method="native", tools=TOOLS)
    assert manifest["include_data"] == "schema"
    assert manifest["rows"] == 0
    target_url = make_pg_database("schema")
    if into == "existing":
        build_other_database(target_url)
    target = Target.from_url("schema_target", target_url)

    restore_backup(target, store, manifest["backup_filename"], tools=TOOLS)

    assert richdb_pg.schema_fingerprint(target_url) == richdb_pg.schema_fingerprint(rich_url)
    state = richdb_pg.database_state(target_url)
    assert set(state["tables"]) == set(richdb_pg.user_tables(rich_url))
    assert all(table["rows"] == 0 for table in state["tables"].values())


def test_schema_only_manifest_counts_the_tables(rich_url, rich, store):
    manifest = create_backup(rich, store, include_data="schema", method="native", tools=TOOLS)
    assert manifest["tables"] == len(richdb_pg.user_tables(rich_url))
    assert set(manifest["table_rows"]) == set(richdb_pg.user_tables(rich_url))


def test_data_only_backup_replaces_the_rows_of_an_existing_schema(rich_url, rich, store, make_pg_database):
    source_state, source_schema = snapshot(rich_url)
    manifest = create_backup(rich, store, include_data="data", method="native", tools=TOOLS)
    assert manifest["include_data"] == "data"
    assert manifest["rows"] == richdb_pg.total_rows(rich_url)
    target_url = make_pg_database("data")
    conn = richdb_pg.connect(target_url)
    try:
        richdb_pg.create_rich_schema(conn)
        richdb_pg.populate(conn, rows_per_table=30, seed=7)
    finally:
        conn.close()
    assert richdb_pg.database_state(target_url) != source_state
    target = Target.from_url("data_target", target_url)

    restore_backup(target, store, manifest["backup_filename"], tools=TOOLS)

    state, schema = snapshot(target_url)
    assert schema == source_schema
    assert state == source_state


# --- failed restores leave the target as it was ---------------------------------------------------------------
def _broken_last_statement(data: bytes) -> bytes:
    """The dump with a broken statement just before its end marker (the marker stays)."""
    cut = data.rindex(END_MARKER)
    cut = data.rindex(b"\n--\n", 0, cut) + 1
    return data[:cut] + b"ALTER TABLE ONLY public.customers ADD CONSTRAINT broken FOREIGN KEY (nope) " \
                        b"REFERENCES public.nowhere(id);\n\n" + data[cut:]


def _cut_inside_copy(data: bytes) -> bytes:
    """The dump cut at a line boundary in the middle of a COPY block: the rest is missing."""
    start = data.index(b"COPY public.customers ")
    end = data.index(b"\n\\.\n", start)
    middle = data.index(b"\n", (start + end) // 2) + 1
    return data[:middle]


def _garbled_tail(data: bytes) -> bytes:
    """The last quarter of the file replaced by garbage bytes."""
    keep = len(data) * 3 // 4
    return data[:keep] + b"\x00\xff garbage \\. ;;; )))\n" * 50


@pytest.mark.parametrize("damage", [
    _broken_last_statement,
    _cut_inside_copy,
    _garbled_tail,
], ids=["broken-last-statement", "cut-inside-copy", "garbled-tail"])
def test_a_dump_that_fails_midway_changes_nothing(full_backup, store, make_pg_database, damage):
    target_url = make_pg_database("victim")
    build_other_database(target_url)
    before = snapshot(target_url)
    target = Target.from_url("victim", target_url)
    data = damage(Path(full_backup["path"]).read_bytes())
    name = plant_backup(store, full_backup, data, "rich_db_backup_20000101_000000.sql")

    with pytest.raises((errors.RestoreError, errors.ArtifactError)) as raised:
        restore_backup(target, store, name, tools=TOOLS)

    assert snapshot(target_url) == before
    if damage is _broken_last_statement:
        assert isinstance(raised.value, errors.RestoreError)
        assert raised.value.message == errors.RESTORE_FAILED
        assert "nowhere" in str(raised.value)


# --- failed backups leave no file -----------------------------------------------------------------------------
def _script(folder: Path, body: str) -> str:
    path = folder / "fake_pg_dump"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("fake", ["exit-1", "partial-then-exit-1", "empty-exit-0", "no-end-marker-exit-0",
                                  "missing", "directory"])
def test_a_failed_pg_dump_leaves_no_file(rich, store, backup_dir, tmp_path, pg_server, fake):
    real_dump_start = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"
    pg_dump = {
        "exit-1": lambda: _script(tmp_path, "echo 'pg_dump: error: boom' >&2\nexit 1\n"),
        "partial-then-exit-1": lambda: _script(
            tmp_path, f"printf '{real_dump_start}COPY public.t (a) FROM stdin;\\n1\\n'\necho 'died' >&2\nexit 1\n"),
        "empty-exit-0": lambda: _script(tmp_path, "exit 0\n"),
        "no-end-marker-exit-0": lambda: _script(tmp_path, f"printf '{real_dump_start}CREATE TABLE t (a int);\\n'\n"),
        "missing": lambda: str(tmp_path / "no" / "such" / "pg_dump"),
        "directory": lambda: str(tmp_path),
    }[fake]()

    with pytest.raises(errors.BackupError) as raised:
        create_backup(rich, store, method="native", tools=ClientTools(pg_dump=pg_dump, psql=PSQL))

    assert isinstance(raised.value, errors.DumpError)
    assert listing(backup_dir) == []
    assert store.list() == []
    assert_no_password(str(raised.value), pg_server.password, "the error")


# --- refused names and files: nothing touched ------------------------------------------------------------------
@pytest.mark.parametrize("bad_name", ["../../etc/passwd", "/etc/passwd", "ABSOLUTE", "rich\x00.sql",
                                      "..", "sub/dir.sql", "NAME\x00/../../etc/passwd"])
def test_unsafe_backup_names_are_refused(full_backup, store, backup_dir, make_pg_database, bad_name):
    target_url = make_pg_database("safe")
    build_other_database(target_url)
    before = snapshot(target_url)
    files_before = listing(backup_dir)
    if bad_name == "ABSOLUTE":  # even the absolute path of a real backup inside the folder
        bad_name = str(Path(full_backup["path"]).resolve())
    bad_name = bad_name.replace("NAME", full_backup["backup_filename"])

    with pytest.raises(errors.InvalidRequest):
        restore_backup(Target.from_url("safe", target_url), store, bad_name, tools=TOOLS)

    assert snapshot(target_url) == before
    assert listing(backup_dir) == files_before  # not even a safety backup


@pytest.mark.parametrize("link_to", ["outside-backup", "etc-passwd"])
def test_a_symlink_in_the_backup_folder_is_refused(rich, make_pg_database, backup_dir, tmp_path, link_to):
    outside = tmp_path / "outside"
    outside_store = BackupStore(outside)
    if link_to == "outside-backup":  # a genuine backup with a valid manifest, only reachable through the link
        manifest = create_backup(rich, outside_store, method="native", tools=TOOLS)
        name = manifest["backup_filename"]
        (backup_dir / name).symlink_to(outside / name)
        (backup_dir / (name + ".meta.json")).symlink_to(outside / (name + ".meta.json"))
    else:
        name = "rich_db_backup_20200101_000000.sql"
        (backup_dir / name).symlink_to("/etc/passwd")
    target_url = make_pg_database("linked")
    build_other_database(target_url)
    before = snapshot(target_url)
    files_before = listing(backup_dir)
    outside_before = listing(outside) if outside.exists() else []

    with pytest.raises(errors.InvalidRequest):
        restore_backup(Target.from_url("linked", target_url), BackupStore(backup_dir), name, tools=TOOLS)

    assert snapshot(target_url) == before
    assert listing(backup_dir) == files_before
    assert (listing(outside) if outside.exists() else []) == outside_before


@pytest.mark.parametrize("change", ["flip-a-byte", "append", "truncate", "replace-same-size"])
def test_a_file_altered_after_writing_is_refused(full_backup, store, backup_dir, make_pg_database, change):
    path = Path(full_backup["path"])
    data = path.read_bytes()
    middle = len(data) // 2
    altered = {
        "flip-a-byte": data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:],
        "append": data + b"DROP SCHEMA public CASCADE;\n",
        "truncate": data[:middle],
        "replace-same-size": b"-" * (len(data) - 1) + b"\n",
    }[change]
    path.write_bytes(altered)
    target_url = make_pg_database("altered")
    build_other_database(target_url)
    before = snapshot(target_url)
    files_before = listing(backup_dir)

    with pytest.raises(errors.ArtifactError) as raised:
        restore_backup(Target.from_url("altered", target_url), store, full_backup["backup_filename"], tools=TOOLS)

    assert raised.value.message == errors.CHECKSUM_MISMATCH
    assert snapshot(target_url) == before
    assert listing(backup_dir) == files_before


def test_a_backup_without_its_manifest_is_refused(full_backup, store, backup_dir, make_pg_database):
    Path(full_backup["path"] + ".meta.json").unlink()
    target_url = make_pg_database("nomanifest")
    build_other_database(target_url)
    before = snapshot(target_url)

    with pytest.raises(errors.ArtifactError):
        restore_backup(Target.from_url("nomanifest", target_url), store, full_backup["backup_filename"], tools=TOOLS)

    assert snapshot(target_url) == before
    assert listing(backup_dir) == [full_backup["backup_filename"]]


# --- ownership --------------------------------------------------------------------------------------------------
def test_restore_into_a_database_owned_by_another_role(rich_url, full_backup, store, pg_server, other_role,
                                                       make_pg_database):
    role, password = other_role
    dbname = make_url(make_pg_database("owned", owner=role)).database
    target_url = pg_server.url(dbname, user=role, password=password)
    execute(target_url, "CREATE TABLE public.mine (id int); INSERT INTO public.mine VALUES (1);")
    target = Target.from_url("owned", target_url)

    result = restore_backup(target, store, full_backup["backup_filename"], tools=TOOLS)

    assert snapshot(target_url) == snapshot(rich_url)
    conn = richdb_pg.connect(target_url)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
                           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'sales')""")
            assert [r[0] for r in cur.fetchall()] == [role]
    finally:
        conn.close()
    assert result["safety_backup"] is not None
    assert_no_password(json.dumps(result, default=str), password, "the restore result")


# --- secrets ------------------------------------------------------------------------------------------------------
def test_the_password_appears_in_no_manifest_result_or_error(rich, rich_url, full_backup, store, backup_dir,
                                                            make_pg_database, pg_server, tmp_path):
    password = pg_server.password
    target = Target.from_url("leak", make_pg_database("leak"))
    result = restore_backup(target, store, full_backup["backup_filename"], tools=TOOLS)
    texts = {"backup manifest dict": json.dumps(full_backup, default=str),
             "restore result": json.dumps(result, default=str),
             "repr of the target": repr(target) + str(target)}
    for path in backup_dir.iterdir():
        if path.name.endswith(".meta.json"):
            texts[f"manifest {path.name}"] = path.read_text(encoding="utf-8")

    # errors from several failure paths
    failures = []
    missing_db = Target.from_url("missing", pg_server.url("no_such_database_" + uuid.uuid4().hex[:6]))
    failures.append(lambda: create_backup(missing_db, store, method="native", tools=TOOLS))
    failures.append(lambda: restore_backup(missing_db, store, full_backup["backup_filename"], tools=TOOLS))
    wrong_password = Target.from_url("wrongpw", pg_server.url("postgres", password=password + "x"))
    failures.append(lambda: create_backup(wrong_password, store, method="native", tools=TOOLS))
    unreachable = Target.from_url("down", rich_url.replace(f":{pg_server.port}/", ":1/"))
    failures.append(lambda: create_backup(unreachable, store, method="native", tools=TOOLS))
    # a tool that echoes its whole command line and environment into its error message
    failing_dump = _script(tmp_path, "echo \"pg_dump: error: $0 $*\" >&2\nenv >&2\nexit 1\n")
    failures.append(lambda: create_backup(rich, store, method="native",
                                          tools=ClientTools(pg_dump=failing_dump, psql=PSQL)))
    broken = plant_backup(store, full_backup, _broken_last_statement(Path(full_backup["path"]).read_bytes()),
                          "rich_db_backup_20000101_000000.sql")
    failures.append(lambda: restore_backup(target, store, broken, tools=TOOLS))
    for number, failure in enumerate(failures):
        with pytest.raises(errors.BackupError) as raised:
            failure()
        texts[f"error {number}"] = f"{raised.value} {raised.value!r} {raised.value.detail}"
    for where, text in texts.items():
        assert_no_password(text, password, where)


@pytest.mark.slow
def test_the_password_never_shows_in_the_process_list(make_pg_database, store, pg_server):
    url = make_pg_database("big")
    execute(url, """CREATE TABLE big (id bigint PRIMARY KEY, payload text, n numeric);
                    INSERT INTO big SELECT g, repeat(md5(g::text), 4), g / 7.0 FROM generate_series(1, 400000) g""")
    source = Target.from_url("big", url)
    seen: list[str] = []
    environments: list[str] = []
    passfiles: set[str] = set()
    tool_seen = {"pg_dump": 0, "psql": 0}

    def watch(work) -> None:
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["result"] = work()
            except BaseException as exc:  # re-raised below in the test thread
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        while thread.is_alive():
            listing_text = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
            seen.append(listing_text)
            for line in listing_text.splitlines():
                pid, _, args = line.strip().partition(" ")
                tool = next((t for t in tool_seen if re.search(rf"(^|/){t}( |$)", args.split(" ")[0] + " ")), None)
                if not tool:
                    continue
                tool_seen[tool] += 1
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
                except OSError:
                    continue
                environments.append(environ)
                for entry in environ.split("\0"):
                    if entry.startswith("PGPASSFILE="):
                        passfiles.add(entry.split("=", 1)[1])
            time.sleep(0.01)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    manifest = watch(lambda: create_backup(source, store, method="native", tools=TOOLS))
    assert manifest["rows"] == 400000
    restored = Target.from_url("big_copy", make_pg_database("bigcopy"))
    watch(lambda: restore_backup(restored, store, manifest["backup_filename"], tools=TOOLS))
    assert richdb_pg.database_state(restored.url) == richdb_pg.database_state(url)

    assert len(seen) >= 5
    assert tool_seen["pg_dump"] > 0, "the sampling never caught pg_dump running"
    for text in seen + environments:
        assert_no_password(text, pg_server.password, "the process list or a tool's environment")
        assert "postgresql://" not in text
    assert passfiles and all(passfile.startswith("/dev/fd/") for passfile in passfiles)
    # the memory files made for the runs are closed after them (by what they are: fd numbers are reused)
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    assert not [link for link in links if "memfd:backup-worker" in link], links


def test_unknown_database_is_reported_without_touching_the_folder(store, backup_dir, pg_server):
    target = Target.from_url("ghost", pg_server.url("ghost_" + uuid.uuid4().hex[:8]))
    with pytest.raises(errors.BackupError) as raised:
        create_backup(target, store, method="native", tools=TOOLS)
    assert isinstance(raised.value, (errors.InvalidRequest, errors.TargetUnavailable))
    assert listing(backup_dir) == []
    with pytest.raises(psycopg2.OperationalError):
        richdb_pg.connect(target.url).close()
