"""The `pgdump` format (issue 18): pg_dump's directory archive dumped with -j, stored as one tar
object, restored with pg_restore -j into a database built beside the target and swapped in; a
database without big tables dumped as tar on pg_dump's output and restored by one pg_restore
fed as the object is read (issue 16: thousands of tiny tables).

Against the real server and tools: the catalog zoo round-trips identical (tests/pg_compare.py)
with the manifest's row counts taken from the archive; what cannot be all or nothing is refused
before anything is touched (no CREATEDB, data-only); an archive that does not check out (a
member named outside its folder, a flipped byte) restores nothing and writes nothing outside
its scratch folder; a tar upload is refused.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path

import psycopg2
import pytest

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.engines.postgresql import archive, archive_stream
from backup_engine.engines.postgresql.archive import PARALLEL_MIN_BYTES, PARALLEL_TABLE_BYTES, restore_jobs
from backup_engine.targets import Target
from config.settings import load_settings
from tasks import operations
from tests import catalog_zoo, pg_compare
from tests.engine_api import BackupStore, create_backup, restore_backup

PG_DUMP, PSQL, PG_RESTORE = shutil.which("pg_dump"), shutil.which("psql"), shutil.which("pg_restore")
TOOLS = ClientTools(pg_dump=PG_DUMP, psql=PSQL, pg_restore=PG_RESTORE)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (PG_DUMP and PSQL and PG_RESTORE), reason="PostgreSQL client tools not installed")]


def table_rows(url: str) -> dict[str, int]:
    conn = psycopg2.connect(url)
    counts = {}
    with conn.cursor() as cur:
        cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname, c.relname "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND n.nspname NOT LIKE 'pg\\_%'")
        for display, schema, name in cur.fetchall():
            cur.execute(psycopg2.sql.SQL("SELECT count(*) FROM ONLY {}").format(psycopg2.sql.Identifier(schema, name)))
            counts[display] = cur.fetchone()[0]
    conn.close()
    return counts


@pytest.fixture(scope="module")
def zoo(pg_server):
    name = f"pgd_zoo_{uuid.uuid4().hex[:6]}"
    url = pg_server.create_database(name)
    catalog_zoo.build_zoo(url, seed=5, rows=200)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def zoo_without_large_objects(pg_server, zoo):
    """The zoo less its large objects: an archive restored in one pass holds none."""
    name = f"pgd_nolo_{uuid.uuid4().hex[:6]}"
    pg_server.execute("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{zoo.rsplit("/", 1)[1]}"')
    url = pg_server.url(name)
    pg_server.execute(url, "SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def fresh(pg_server):
    names = []

    def make() -> str:
        names.append(f"pgd_dst_{uuid.uuid4().hex[:6]}")
        return pg_server.create_database(names[-1])
    yield make
    for name in names:
        pg_server.drop_database(name)


def test_the_zoo_round_trips_identical_with_rows_counted_from_the_archive(zoo, fresh, tmp_path):
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", zoo), store, tools=TOOLS, format="pgdump")
    assert ".pgdump" in manifest["backup_filename"] and manifest["method"] == "pg_dump"
    expected = table_rows(zoo)
    assert manifest["table_rows"] == expected and sum(expected.values()) > 0
    restored = fresh()
    result = restore_backup(Target.from_url("dst", restored), store, manifest["backup_filename"], tools=TOOLS)
    assert result["built_beside"] is True
    assert pg_compare.compare(zoo, restored) == []


def test_a_schema_only_archive_restores_the_schema_and_no_rows(zoo, fresh, tmp_path):
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", zoo), store, tools=TOOLS, format="pgdump", include_data="schema")
    assert set(manifest["table_rows"].values()) == {0}
    restored = fresh()
    restore_backup(Target.from_url("dst", restored), store, manifest["backup_filename"], tools=TOOLS)
    assert table_rows(restored).keys() == table_rows(zoo).keys() and set(table_rows(restored).values()) == {0}


def test_a_data_only_archive_is_refused_and_leaves_no_file(zoo, tmp_path):
    store = BackupStore(tmp_path / "backups")
    with pytest.raises(errors.InvalidRequest, match="data-only"):
        create_backup(Target.from_url("src", zoo), store, tools=TOOLS, format="pgdump", include_data="data")
    assert list(store.folder.iterdir()) == []


def hostile_archive(tmp_path: Path, member: str) -> bytes:
    """A tar whose only member is named `member` (what a forged or damaged object might hold)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(member)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"owned"))
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["../escaped.dat", "/tmp/escaped.dat", "toc.dat/../../x", "notes.txt"])
def test_an_archive_with_a_foreign_member_restores_nothing_and_writes_nothing_outside(zoo, fresh, tmp_path, member):
    store = BackupStore(tmp_path / "backups")
    published = store.publish_bytes(hostile_archive(tmp_path, member), "dst",
                                    {"format": "pgdump", "target": "dst", "dialect": "postgresql", "origin": "worker",
                                     "table_rows": {}})
    target = fresh()
    conn = psycopg2.connect(target)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (42)")
    conn.close()
    with pytest.raises(errors.ArtifactError, match=errors.BAD_ARCHIVE):
        restore_backup(Target.from_url("dst", target), store, published["backup_filename"], tools=TOOLS,
                       safety_backup=False)
    assert table_rows(target) == {"public.keep": 1}
    assert not (tmp_path / "escaped.dat").exists() and not Path("/tmp/escaped.dat").exists()
    scratch = store.folder / ".scratch"
    assert not scratch.exists() or list(scratch.rglob("*.dat")) == []


def test_the_drill_restores_it_and_a_flipped_byte_fails_before_pg_restore_runs(zoo, fresh, tmp_path):
    config = {"BACKUP_TARGETS": json.dumps({"src": zoo, "dst": fresh()}), "BACKUP_DIR": str(tmp_path / "backups"),
              "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"), "BACKUP_COMPRESSION": "none"}
    settings = load_settings(config, dotenv_path=None)
    manifest = operations.create(settings, target="src", format="pgdump")
    drill = operations.verify(settings, backup_filename=manifest["backup_filename"])
    assert drill["drill_ok"] is True and drill["table_rows"] == table_rows(zoo)
    path = Path(manifest["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    before = table_rows(json.loads(config["BACKUP_TARGETS"])["dst"])
    with pytest.raises(errors.ArtifactError, match=errors.CHECKSUM_MISMATCH):
        operations.restore(settings, backup_filename=manifest["backup_filename"], target="dst", source_target="src")
    assert table_rows(json.loads(config["BACKUP_TARGETS"])["dst"]) == before


def test_without_createdb_a_pgdump_restore_is_refused_and_the_target_untouched(zoo, make_app_database, tmp_path):
    url = make_app_database("pgd_app", "CREATE TABLE keep (x int); INSERT INTO keep VALUES (7)")
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", zoo), store, tools=TOOLS, format="pgdump")
    with pytest.raises(errors.RestoreError, match="grant CREATEDB"):
        restore_backup(Target.from_url("app", url), store, manifest["backup_filename"], tools=TOOLS,
                       safety_backup=False)
    assert table_rows(url) == {"public.keep": 1}


def test_a_tar_upload_is_refused_by_name(zoo, tmp_path):
    config = {"BACKUP_TARGETS": json.dumps({"src": zoo}), "BACKUP_DIR": str(tmp_path / "backups"),
              "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"), "BACKUP_COMPRESSION": "none"}
    settings = load_settings(config, dotenv_path=None)
    manifest = operations.create(settings, target="src", format="pgdump")
    (tmp_path / "uploads").mkdir(exist_ok=True)
    upload = tmp_path / "uploads" / "archive.pgdump"
    upload.write_bytes(Path(manifest["path"]).read_bytes())
    before = table_rows(zoo)
    with pytest.raises(errors.InvalidRequest, match="tar archive"):
        operations.restore_upload(settings, path="archive.pgdump", target="src")
    assert table_rows(zoo) == before


def test_an_archive_with_little_table_data_is_restored_by_one_job(tmp_path):
    """Parallel jobs only where there is table data to load side by side: thousands of tiny
    tables restore faster by one job. The table of contents and blobs do not count as data."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "toc.dat").write_bytes(b"x" * 1000)
    for number in range(3000, 3100):
        (folder / f"{number}.dat").write_bytes(b"1\tone\n\\.\n\n\n")
    assert restore_jobs(folder, 2) == 1
    with (folder / "blob_1.dat").open("wb") as blob:  # sizes only: sparse files
        blob.truncate(PARALLEL_MIN_BYTES)
    assert restore_jobs(folder, 2) == 1
    with (folder / "4000.dat").open("wb") as data:
        data.truncate(PARALLEL_MIN_BYTES)
    assert restore_jobs(folder, 2) == 2 and restore_jobs(folder, 4) == 4
    for number in range(5000, 5000 + PARALLEL_MIN_BYTES // (PARALLEL_TABLE_BYTES // 2)):  # many small tables
        with (folder / f"{number}.dat").open("wb") as data:
            data.truncate(PARALLEL_TABLE_BYTES // 2)
    (folder / "4000.dat").unlink()
    assert restore_jobs(folder, 2) == 1


def stored_members(store: BackupStore, name: str) -> list[str]:
    path, _ = store.verified(name)
    with tarfile.open(path) as tar:
        return tar.getnames()


@pytest.mark.parametrize("dumped", ["streamed", "parallel"])
def test_either_dump_restores_in_one_pass_identical(zoo_without_large_objects, fresh, tmp_path, monkeypatch, dumped):
    """A dump streamed as tar and one made through a folder (its members in name order, not the
    table of contents') both restore by one pg_restore fed in one pass: members that come early
    wait in scratch for their turn."""
    source = zoo_without_large_objects
    store = BackupStore(tmp_path / "backups")
    events: list[dict] = []
    with monkeypatch.context() as patch:
        if dumped == "parallel":
            patch.setattr(archive, "PARALLEL_MIN_BYTES", 0)
        manifest = create_backup(Target.from_url("src", source), store, tools=TOOLS, format="pgdump",
                                 progress=lambda **event: events.append(event))
    assert {"phase": "dump", "jobs": 1 if dumped == "streamed" else archive.default_jobs()} in events
    assert manifest["table_rows"] == table_rows(source)
    members = stored_members(store, manifest["backup_filename"])
    assert members[0] == "toc.dat" and "restore.sql" not in members
    if dumped == "parallel":
        assert members[1:] == sorted(members[1:]) and len(members) > 3
    restored, events = fresh(), []
    restore_backup(Target.from_url("dst", restored), store, manifest["backup_filename"], tools=TOOLS,
                   progress=lambda **event: events.append(event))
    assert {"phase": "restore", "jobs": 1, "archive": "streamed"} in events
    assert pg_compare.compare(source, restored) == []


def test_an_archive_worth_parallel_jobs_is_dumped_through_a_folder_and_restored_unpacked(
        zoo_without_large_objects, fresh, tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "PARALLEL_MIN_BYTES", 0)
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", zoo_without_large_objects), store, tools=TOOLS, format="pgdump")
    restored, events = fresh(), []
    restore_backup(Target.from_url("dst", restored), store, manifest["backup_filename"], tools=TOOLS,
                   progress=lambda **event: events.append(event))
    assert {"phase": "restore", "jobs": 2, "archive": "unpacked"} in events
    assert pg_compare.compare(zoo_without_large_objects, restored) == []


def test_a_failing_streamed_dump_reports_pg_dumps_reason_and_publishes_nothing(make_app_database, pg_server, tmp_path):
    url = make_app_database("pgd_deny", "CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)")
    pg_server.execute(url.rsplit("/", 1)[1], "CREATE TABLE theirs (x int); INSERT INTO theirs VALUES (2)")
    store = BackupStore(tmp_path / "backups")
    with pytest.raises(errors.DumpError, match="permission denied"):
        create_backup(Target.from_url("app", url), store, tools=TOOLS, format="pgdump")
    assert list(store.folder.iterdir()) == []


def tar_members(*members: tuple[str, bytes]) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer, mode="r|")


def members_of(tar: tarfile.TarFile):
    while (member := tar.next()) is not None:
        yield member, tar.extractfile(member)


def ordered(tmp_path: Path, members: list[tuple[str, bytes]], order: list[str]) -> list[tuple[str, bytes]]:
    (tmp_path / "toc.dat").write_bytes(b"TOC")
    (tmp_path / "room").mkdir(exist_ok=True)
    drained = []
    feed = archive_stream.ordered_archive(members_of(tar_members(*members)), tmp_path / "toc.dat", order,
                                          tmp_path / "room", lambda: drained.append(True))
    with tarfile.open(fileobj=io.BytesIO(feed.read()), mode="r:") as tar:
        out = [(member.name, tar.extractfile(member).read()) for member in tar]
    assert drained == [True] and list((tmp_path / "room").iterdir()) == []
    return out


@pytest.mark.parametrize("arrival", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 0, 2, 3]])
def test_the_one_pass_feed_puts_members_in_the_table_of_contents_order(tmp_path, arrival):
    order = ["10.dat", "9.dat", "200.dat", "3.dat"]
    data = {name: name.encode() * (index * 300 + 1) for index, name in enumerate(order)}  # sizes across blocks
    members = [(order[index], data[order[index]]) for index in arrival]
    assert ordered(tmp_path, members, order) == [("toc.dat", b"TOC")] + [(name, data[name]) for name in order]


@pytest.mark.parametrize("members, order", [
    ([("1.dat", b"a"), ("1.dat", b"b")], ["1.dat", "2.dat"]),  # given twice
    ([("2.dat", b"a"), ("2.dat", b"b")], ["1.dat", "2.dat"]),  # given twice while it waits
    ([("7.dat", b"a")], ["1.dat"]),  # not in the table of contents
    ([("1.dat", b"a")], ["1.dat", "2.dat"]),  # missing
])
def test_the_one_pass_feed_refuses_a_member_given_twice_unknown_or_missing(tmp_path, members, order):
    with pytest.raises(errors.ArtifactError, match=errors.BAD_ARCHIVE):
        ordered(tmp_path, members, order)


def test_a_store_that_fills_up_fails_a_streamed_dump_with_the_stores_reason(pg_server, full_disk, tmp_path):
    """The store's failure is the reason given, not pg_dump's broken pipe once it is stopped."""
    name = f"pgd_fill_{uuid.uuid4().hex[:6]}"
    url = pg_server.create_database(name)
    pg_server.execute(url, "CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g")
    settings = load_settings({"BACKUP_TARGETS": json.dumps({"src": url}), "BACKUP_DIR": str(full_disk),
                              "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"), "BACKUP_COMPRESSION": "none"},
                             dotenv_path=None)
    events: list[dict] = []
    try:
        with pytest.raises(errors.BackupError) as caught:
            operations.create(settings, target="src", format="pgdump", progress=lambda **event: events.append(event))
    finally:
        pg_server.drop_database(name)
    assert {"phase": "dump", "jobs": 1} in events
    assert "No space left on device" in str(caught.value) or errors.WRITE_FAILED in str(caught.value)
    assert "pg_dump" not in str(caught.value)
    assert [path.name for path in full_disk.iterdir()] in ([], [".scratch"])


def test_a_flipped_byte_in_an_archive_restored_in_one_pass_fails_and_leaves_the_target(
        zoo_without_large_objects, fresh, tmp_path):
    target = fresh()
    config = {"BACKUP_TARGETS": json.dumps({"src": zoo_without_large_objects, "dst": target}),
              "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_UPLOAD_DIR": str(tmp_path / "uploads"),
              "BACKUP_COMPRESSION": "none"}
    settings = load_settings(config, dotenv_path=None)
    manifest = operations.create(settings, target="src", format="pgdump")
    path = Path(manifest["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    pg = psycopg2.connect(target)
    pg.autocommit = True
    with pg.cursor() as cur:
        cur.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (42)")
    pg.close()
    events: list[dict] = []
    with pytest.raises(errors.ArtifactError, match=errors.CHECKSUM_MISMATCH):
        operations.restore(settings, backup_filename=manifest["backup_filename"], target="dst", source_target="src",
                           progress=lambda **event: events.append(event))
    assert table_rows(target) == {"public.keep": 1}
    assert not any(event.get("archive") for event in events)  # refused before pg_restore was started


def test_an_archive_changed_after_its_check_fails_the_one_pass_restore(zoo_without_large_objects, pg_server,
                                                                        tmp_path):
    """The one-pass restore checks the checksum again as it reads (what was checked up front may
    be changed before it is read): a row's digit changed, which pg_restore would load as it is,
    fails the restore (the caller then drops the database beside, never swapped in)."""
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", zoo_without_large_objects), store, tools=TOOLS, format="pgdump")
    entry = store.catalogue.entry(manifest["backup_filename"])
    plain = tmp_path / "plain.tar"
    with store.catalogue.source(entry).open() as content:
        plain.write_bytes(content.read())
    with tarfile.open(plain) as tar:
        member = next(m for m in tar.getmembers() if m.name != "toc.dat" and tar.extractfile(m).read(1).isdigit())
    data = bytearray(plain.read_bytes())
    data[member.offset_data] = ord("1") if data[member.offset_data] != ord("1") else ord("2")
    forged = store.publish_bytes(bytes(data), "dst", {"format": "pgdump", "target": "dst", "dialect": "postgresql",
                                                      "table_rows": {}})
    path = Path(forged["path"])
    path.chmod(0o600)
    path.write_bytes(plain.read_bytes())  # the manifest describes the changed bytes; the object holds the old ones
    name = f"pgd_changed_{uuid.uuid4().hex[:6]}"
    database = Target.from_url("dst", pg_server.create_database(name))
    events: list[dict] = []
    try:
        with pytest.raises(errors.ArtifactError, match=errors.CHECKSUM_MISMATCH):
            archive.restore_archive(database, store.catalogue.source(store.catalogue.entry(forged["backup_filename"])),
                                    TOOLS, 2, store.folder, content_bytes=len(data),
                                    progress=lambda **event: events.append(event))
        assert {"phase": "restore", "jobs": 1, "archive": "streamed"} in events
    finally:
        pg_server.drop_database(name)
