"""The SQLite native path against real database files: exact round trips, consistency under
concurrent writers, all-or-nothing restores and a SQL file that may not reach outside."""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backup_engine import errors
from backup_engine.engines.sqlite import files as sqlite_files
from backup_engine.engines.sqlite import literals as sqlite_literals
from backup_engine.targets import Target
from tests.engine_api import BackupStore, create_backup, sha256_of, sqlite

# Doubles that SQLite 3.40 reads back wrong from their shortest repr() (found by experiment).
HARD_FLOATS = [-2.2606631148481385e-299, -1.576209342660012e-294, 1.829402849984213e-298,
               -3.394825485491527e-306, -9.297494192001171e-302]

ODD_VALUES: list[Any] = [
    None, 0, 1, -1, 2**63 - 1, -(2**63), 0.0, -0.0, 0.1, 1 / 3, 123.0, 1e16, 1e308, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, float("inf"), float("-inf"), *HARD_FLOATS,
    "", "plain", "it's", 'say "hi"', "line1\nline2\r\nline3\r", "ü € 𝄞 \u2028 \t end", "-- not a comment;",
    "x;\n", "NULL", "X''", "'; DROP TABLE vals; --", "a\x00b", b"", b"\x00\x01\xff", bytes(range(256)),
]

RICH_SCHEMA = """
PRAGMA user_version = 42;
CREATE TABLE parent(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
CREATE TABLE child(
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE,
    qty INTEGER, price REAL,
    total REAL GENERATED ALWAYS AS (qty * price) STORED,
    note TEXT,
    label TEXT GENERATED ALWAYS AS (upper(note)) VIRTUAL
);
CREATE TABLE vals(k INTEGER PRIMARY KEY, v);
CREATE TABLE floats(x REAL);
CREATE TABLE "odd ""name"" table"("select" TEXT, "col with space" INTEGER, "ünï" BLOB, "rowid" TEXT);
CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
CREATE TABLE "order"(id INTEGER PRIMARY KEY AUTOINCREMENT, "group" TEXT);
CREATE TABLE strict_t(a INTEGER, b TEXT, c ANY) STRICT;
CREATE TABLE log(id INTEGER PRIMARY KEY, msg TEXT);
CREATE VIRTUAL TABLE docs USING fts5(title, body);
CREATE INDEX "idx child parent" ON child(parent_id);
CREATE UNIQUE INDEX kv_v ON kv(v) WHERE v IS NOT NULL;
CREATE VIEW "child view" AS SELECT c.id, p.name, c.total FROM child c JOIN parent p ON p.id = c.parent_id;
CREATE VIEW big_children AS SELECT * FROM "child view" WHERE total > 10;
CREATE TRIGGER child_log AFTER INSERT ON child BEGIN
    INSERT INTO log(msg) VALUES ('child ' || NEW.id || '; added');
END;
"""


def make_rich_db(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(RICH_SCHEMA)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO parent(name) VALUES (?)", [("alpha",), ("beta",), ("gone",), ("Ω",)])
    conn.execute("DELETE FROM parent WHERE name = 'Ω'")  # the AUTOINCREMENT position stays at 4
    conn.executemany("INSERT INTO child(parent_id, qty, price, note) VALUES (?, ?, ?, ?)",
                     [(1, 3, 2.5, "first"), (1, 10, 1.1, None), (2, 7, 0.3, "it's; odd")])
    conn.executemany("INSERT INTO vals(v) VALUES (?)", [(v,) for v in ODD_VALUES])
    conn.execute("INSERT INTO vals(v) VALUES (CAST(X'ff00fe' AS TEXT))")  # TEXT that is not UTF-8
    rnd = random.Random(7)
    doubles = [struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(3000)]
    conn.executemany("INSERT INTO floats(x) VALUES (?)", [(d,) for d in doubles if d == d])
    conn.execute("DELETE FROM floats WHERE rowid % 7 = 0")  # rowids with gaps must survive
    conn.executemany('INSERT INTO "odd ""name"" table" VALUES (?, ?, ?, ?)',
                     [("from", 1, b"\x00", "not the rowid"), (None, None, None, None), ("", 0, b"", "")])
    conn.execute('DELETE FROM "odd ""name"" table" WHERE "col with space" IS NULL')
    conn.executemany("INSERT INTO kv VALUES (?, ?)", [("b", b"2"), ("a", b"1"), ("c", None), ("é", b"")])
    conn.executemany('INSERT INTO "order"("group") VALUES (?)', [(f"g{i}",) for i in range(10)])
    conn.execute('DELETE FROM "order" WHERE id > 5')
    conn.executemany("INSERT INTO strict_t VALUES (?, ?, ?)", [(1, "a", 1.5), (2, "b", b"x"), (None, None, "t")])
    conn.executemany("INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)",
                     [(10, "hello", "world of backups"), (20, "bye", "restore the world")])
    conn.execute("COMMIT")
    conn.close()


def norm(value: Any) -> Any:
    return ("real", value.hex()) if isinstance(value, float) else value


def db_state(path: Path) -> dict[str, Any]:
    """Everything a restore must reproduce: DDL, every row with its storage class, sequences."""
    conn = sqlite3.connect(path)
    try:
        kinds = dict(conn.execute("SELECT name, type FROM pragma_table_list WHERE schema = 'main'").fetchall())
        wr = dict(conn.execute("SELECT name, wr FROM pragma_table_list WHERE schema = 'main'").fetchall())
        master = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        state: dict[str, Any] = {"master": master, "user_version": conn.execute("PRAGMA user_version").fetchone()}
        for _, name, _, _ in [m for m in master if m[0] == "table"]:
            if kinds.get(name) == "shadow" or (name.startswith("sqlite_") and name != "sqlite_sequence"):
                continue
            cols = [c for c, hidden in conn.execute("SELECT name, hidden FROM pragma_table_xinfo(?)", (name,))
                    if hidden != 1]
            exprs = [e for c in cols for e in (f'typeof("{c.replace(chr(34), 2 * chr(34))}")',
                                                 f'"{c.replace(chr(34), 2 * chr(34))}"')]
            if not wr.get(name):
                exprs.append(next(r for r in ("rowid", "_rowid_", "oid") if r not in {c.lower() for c in cols}))
            conn.text_factory = bytes
            rows = conn.execute(f'SELECT {", ".join(exprs)} FROM "{name.replace(chr(34), 2 * chr(34))}"').fetchall()
            conn.text_factory = str
            state[name] = sorted((tuple(norm(v) for v in row) for row in rows), key=repr)
        return state
    finally:
        conn.close()


def target_for(path: Path) -> Target:
    return Target.from_url("t", f"sqlite:///{path}")


def dump_to_file(path: Path, dump_path: Path, include_data: str = "full") -> Any:
    with dump_path.open("wb") as out:
        return sqlite.dump_sql(target_for(path), out, include_data)


def make_other_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE other(x); INSERT INTO other VALUES (1), (2);
        CREATE TABLE vals(k INTEGER PRIMARY KEY, v); INSERT INTO vals VALUES (1, 'old');
        PRAGMA user_version = 7;
    """)
    conn.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "rich.db"
    path.parent.mkdir()
    make_rich_db(path)
    return path


# --- round trips -----------------------------------------------------------------------------
def test_sql_dump_round_trips_exactly_into_a_new_file(rich: Path, tmp_path: Path) -> None:
    result = dump_to_file(rich, tmp_path / "dump.sql")
    assert result.method == sqlite.SQL_METHOD and result.server_version == sqlite3.sqlite_version
    assert result.table_rows["vals"] == len(ODD_VALUES) + 1 and result.table_rows["docs"] == 2
    assert "docs_data" not in result.table_rows and "sqlite_sequence" not in result.table_rows
    text = (tmp_path / "dump.sql").read_text(encoding="utf-8")
    assert text.rstrip().endswith(sqlite.END_MARKER) and "PRAGMA foreign_keys=OFF;" in text
    # Exact REAL forms were needed and used: the infinities and a float decimal text would not round-trip.
    assert "1e999" in text and "-1e999" in text
    assert all(sqlite_literals.sqlite_exact_real(value) in text for value in HARD_FLOATS)

    restored = tmp_path / "new" / "restored.db"
    restored.parent.mkdir()
    sqlite.restore_sql(target_for(restored), tmp_path / "dump.sql", "full")
    assert db_state(restored) == db_state(rich)
    assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    assert folder_listing(restored.parent) == ["restored.db"]  # no temp file left beside it
    conn = sqlite3.connect(restored)
    assert conn.execute("SELECT rowid FROM docs WHERE docs MATCH 'restore'").fetchall() == [(20,)]
    assert conn.execute("SELECT count(*) FROM log").fetchone() == (3,)  # the trigger did not fire again
    conn.close()


def test_sql_restore_replaces_an_existing_different_database(rich: Path, tmp_path: Path) -> None:
    dump_to_file(rich, tmp_path / "dump.sql")
    target = tmp_path / "existing.db"
    make_other_db(target)
    reader = sqlite3.connect(target)  # a connection open across the swap sees the new database
    assert reader.execute("SELECT count(*) FROM other").fetchone() == (2,)
    sqlite.restore_sql(target_for(target), tmp_path / "dump.sql", "full")
    assert db_state(target) == db_state(rich)
    assert reader.execute("SELECT count(*) FROM sqlite_master WHERE name = 'other'").fetchone() == (0,)
    reader.close()


def test_snapshot_round_trips_and_leaves_the_source_untouched(rich: Path, tmp_path: Path) -> None:
    before = (sha(rich), folder_listing(rich.parent))
    snap = tmp_path / "snap.sqlite3"
    snap.touch(mode=0o600)
    result = sqlite.snapshot(target_for(rich), snap)
    assert (sha(rich), folder_listing(rich.parent)) == before
    assert result.method == sqlite.SNAPSHOT_METHOD and result.table_rows["floats"] > 2000
    assert db_state(snap) == db_state(rich)

    fresh, existing = tmp_path / "fresh.db", tmp_path / "existing.db"
    make_other_db(existing)
    for restored in (fresh, existing):
        sqlite.restore_snapshot(target_for(restored), snap)
        assert db_state(restored) == db_state(rich)


def test_snapshot_of_a_wal_database_is_a_standalone_file(rich: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(rich)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("INSERT INTO log(msg) VALUES ('only in the WAL')")
    conn.commit()  # kept open: the row lives in the -wal file only
    snap = tmp_path / "snap.sqlite3"
    snap.touch(mode=0o600)
    sqlite.snapshot(target_for(rich), snap)
    conn.close()
    assert snap.read_bytes()[18:20] == b"\x01\x01"  # rollback-journal format, no -wal needed
    assert sorted(p.name for p in tmp_path.glob("snap*")) == ["snap.sqlite3"]
    check = sqlite3.connect(f"file:{snap}?mode=ro", uri=True)
    assert check.execute("SELECT count(*) FROM log WHERE msg = 'only in the WAL'").fetchone() == (1,)
    check.close()


def test_restore_into_a_wal_target_keeps_it_in_wal_mode(rich: Path, tmp_path: Path) -> None:
    dump_to_file(rich, tmp_path / "dump.sql")
    target = tmp_path / "wal.db"
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE x(y)")
    conn.commit()
    sqlite.restore_sql(target_for(target), tmp_path / "dump.sql", "full")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    assert db_state(target) == db_state(rich)


def test_include_data_schema_restores_empty_tables(rich: Path, tmp_path: Path) -> None:
    result = dump_to_file(rich, tmp_path / "schema.sql", "schema")
    assert set(result.table_rows.values()) == {0}
    text = (tmp_path / "schema.sql").read_text(encoding="utf-8")
    assert 'INSERT INTO "' not in text and "CREATE TRIGGER child_log" in text
    restored = tmp_path / "schema.db"
    sqlite.restore_sql(target_for(restored), tmp_path / "schema.sql", "schema")
    state, source = db_state(restored), db_state(rich)
    assert [m for m in state["master"] if m[1] != "sqlite_sequence"] == \
           [m for m in source["master"] if m[1] != "sqlite_sequence"]
    assert state["user_version"] == (42,)
    assert all(state[name] == [] for name in result.table_rows)


def test_include_data_data_gives_exactly_the_backup_rows(rich: Path, tmp_path: Path) -> None:
    result = dump_to_file(rich, tmp_path / "data.sql", "data")
    assert result.table_rows["child"] == 3
    assert "CREATE " not in (tmp_path / "data.sql").read_text(encoding="utf-8")
    target = tmp_path / "target.db"
    make_rich_db(target)
    conn = sqlite3.connect(target)  # old rows that must disappear, and a moved sequence
    conn.execute("INSERT INTO parent(name) VALUES ('extra')")
    conn.execute("INSERT INTO child(parent_id, qty, price) VALUES (5, 1, 1.0)")
    conn.execute("UPDATE vals SET v = 'changed' WHERE k = 1")
    conn.execute("INSERT INTO docs(rowid, title, body) VALUES (99, 'stale', 'stale')")
    conn.commit()
    conn.close()
    sqlite.restore_sql(target_for(target), tmp_path / "data.sql", "data")
    assert db_state(target) == db_state(rich)  # also: log rows from triggers neither lost nor added


def test_data_restore_needs_an_existing_target(rich: Path, tmp_path: Path) -> None:
    dump_to_file(rich, tmp_path / "data.sql", "data")
    with pytest.raises(errors.RestoreError, match="data-only"):
        sqlite.restore_sql(target_for(tmp_path / "none.db"), tmp_path / "data.sql", "data")
    assert not (tmp_path / "none.db").exists()


# --- failures leave the target alone --------------------------------------------------------------
def test_failing_statement_leaves_target_unchanged(rich: Path, tmp_path: Path) -> None:
    dump_to_file(rich, tmp_path / "dump.sql")
    lines = (tmp_path / "dump.sql").read_text(encoding="utf-8").splitlines(keepends=True)
    middle = next(i for i, line in enumerate(lines) if line.startswith('INSERT INTO "kv"'))
    lines.insert(middle, "INSERT INTO no_such_table VALUES (1);\n")
    (tmp_path / "bad.sql").write_text("".join(lines), encoding="utf-8")
    target = tmp_path / "target.db"
    make_other_db(target)
    before = sha(target)
    with pytest.raises(errors.RestoreError) as caught:
        sqlite.restore_sql(target_for(target), tmp_path / "bad.sql", "full")
    assert caught.value.message == errors.RESTORE_FAILED
    assert "statement" in str(caught.value) and "no_such_table" in str(caught.value)
    assert sha(target) == before
    assert folder_listing(tmp_path) == sorted(["bad.sql", "dump.sql", "src", "target.db"])


@pytest.mark.parametrize("cut", ["before_marker", "mid_statement"])
def test_truncated_dump_is_refused(rich: Path, tmp_path: Path, cut: str) -> None:
    dump_to_file(rich, tmp_path / "dump.sql")
    data = (tmp_path / "dump.sql").read_bytes()
    end = data.rindex(sqlite.END_MARKER.encode()) if cut == "before_marker" else len(data) // 2
    data = data[:end]
    (tmp_path / "cut.sql").write_bytes(data)
    target = tmp_path / "target.db"
    make_other_db(target)
    before = sha(target)
    with pytest.raises(errors.RestoreError, match="incomplete"):
        sqlite.restore_sql(target_for(target), tmp_path / "cut.sql", "full")
    assert sha(target) == before


def test_file_with_marker_but_no_commit_is_refused(rich: Path, tmp_path: Path) -> None:
    dump_to_file(rich, tmp_path / "dump.sql")
    text = (tmp_path / "dump.sql").read_text(encoding="utf-8").replace("COMMIT;\n", "")
    (tmp_path / "nocommit.sql").write_text(text, encoding="utf-8")
    target = tmp_path / "target.db"
    with pytest.raises(errors.RestoreError, match="no COMMIT"):
        sqlite.restore_sql(target_for(target), tmp_path / "nocommit.sql", "full")
    assert not target.exists()


def test_foreign_key_violations_are_refused_unless_allowed(tmp_path: Path) -> None:
    sql = tmp_path / "fk.sql"
    sql.write_text("BEGIN;\nCREATE TABLE p(id INTEGER PRIMARY KEY);\n"
                   "CREATE TABLE c(p_id INTEGER REFERENCES p(id));\nINSERT INTO c VALUES (5);\nCOMMIT;\n"
                   f"{sqlite.END_MARKER}\n", encoding="utf-8")
    target = tmp_path / "t.db"
    with pytest.raises(errors.RestoreError, match="foreign key"):
        sqlite.restore_sql(target_for(target), sql, "full")
    assert not target.exists()
    sqlite.restore_sql(target_for(target), sql, "full", check_foreign_keys=False)
    assert sqlite3.connect(target).execute("SELECT p_id FROM c").fetchall() == [(5,)]


@pytest.mark.parametrize("statement", [
    "ATTACH DATABASE '{evil}' AS evil;",
    "VACUUM INTO '{evil}';",
    "PRAGMA writable_schema=ON;",
    "SELECT load_extension('{evil}');",
])
def test_sql_file_cannot_reach_outside_the_new_database(tmp_path: Path, statement: str) -> None:
    evil = tmp_path / "elsewhere" / "evil.db"
    evil.parent.mkdir()
    sql = tmp_path / "attack.sql"
    sql.write_text(f"CREATE TABLE t(x);\n{statement.format(evil=evil)}\n{sqlite.END_MARKER}\n", encoding="utf-8")
    target = tmp_path / "target.db"
    make_other_db(target)
    before = sha(target)
    with pytest.raises(errors.RestoreError, match="not authorized|authorization denied"):
        sqlite.restore_sql(target_for(target), sql, "full")
    assert sha(target) == before
    assert list(evil.parent.iterdir()) == []


def test_missing_target_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    snap = tmp_path / "snap.sqlite3"
    snap.touch(mode=0o600)
    with pytest.raises(errors.InvalidRequest) as caught:
        sqlite.snapshot(target_for(missing), snap)
    assert caught.value.message == errors.TARGET_MISSING
    with pytest.raises(errors.InvalidRequest):
        sqlite.dump_sql(target_for(missing), io.BytesIO(), "full")
    assert not missing.exists()


def test_snapshot_of_a_locked_database_reports_it_unavailable(rich: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_files, "READ_LOCK_WAIT_S", 0.2)
    holder = sqlite3.connect(rich, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    snap = tmp_path / "snap.sqlite3"
    snap.touch(mode=0o600)
    try:
        with pytest.raises(errors.TargetUnavailable):
            sqlite.snapshot(target_for(rich), snap)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_restore_into_a_locked_target_gives_up_and_changes_nothing(rich: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dump_to_file(rich, tmp_path / "dump.sql")
    target = tmp_path / "target.db"
    make_other_db(target)
    before = sha(target)
    monkeypatch.setattr(sqlite_files, "LOCK_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM other").fetchall()  # a reader holding its lock
    try:
        with pytest.raises(errors.TargetUnavailable):
            sqlite.restore_sql(target_for(target), tmp_path / "dump.sql", "full")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sha(target) == before
    assert folder_listing(tmp_path) == sorted(["dump.sql", "src", "target.db"])


# --- concurrent writers -------------------------------------------------------------------------
WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
batch = 0
while True:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t(v) VALUES (?)", [("row %d-%d " % (batch, i) * 8,) for i in range(100)])
    conn.execute("COMMIT")
    batch += 1
    if batch == 3:
        print("writing", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_backups_taken_while_another_process_writes_are_consistent(disk_path: Path, journal_mode: str) -> None:
    db = disk_path / "busy.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.commit()
    conn.close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    counts: list[int] = []
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        for i in range(4):
            snap = disk_path / f"snap{i}.sqlite3"
            snap.touch(mode=0o600)
            rows = sqlite.snapshot(target_for(db), snap).table_rows["t"]
            with sqlite3.connect(snap) as check:
                assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert check.execute("SELECT count(*) FROM t").fetchone() == (rows,)
            counts.append(rows)
            dump = disk_path / f"dump{i}.sql"
            rows = dump_to_file(db, dump).table_rows["t"]
            restored = disk_path / f"restored{i}.db"
            sqlite.restore_sql(target_for(restored), dump, "full")
            with sqlite3.connect(restored) as check:
                assert check.execute("SELECT count(*), max(id) FROM t").fetchone() == (rows, rows)
            counts.append(rows)
            time.sleep(0.05)
    finally:
        writer.kill()
        writer.wait()
    assert all(count > 0 and count % 100 == 0 for count in counts), counts
    assert counts == sorted(counts) and counts[-1] > counts[0]


# --- the facade --------------------------------------------------------------------------------
@pytest.mark.parametrize("format", ["sql", "sqlite"])
def test_create_backup_publishes_a_verified_artifact(rich: Path, tmp_path: Path, format: str) -> None:
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("t", f"sqlite:///{rich}"), store, format=format)
    path = Path(manifest["path"])
    assert path.name.startswith("t_db_backup_") and path.suffix == (".sql" if format == "sql" else ".sqlite3")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.manifest_path(path).stat().st_mode) == 0o600
    assert manifest["sha256"] == sha256_of(path) and manifest["size_bytes"] == path.stat().st_size
    assert manifest["method"] == (sqlite.SQL_METHOD if format == "sql" else sqlite.SNAPSHOT_METHOD)
    assert manifest["table_rows"]["child"] == 3 and manifest["rows"] == sum(manifest["table_rows"].values())
    assert store.verified(path.name)[1]["backup_filename"] == path.name
    assert folder_listing(store.folder) == sorted([path.name, store.manifest_path(path).name])
    restored = tmp_path / "restored.db"
    if format == "sql":
        sqlite.restore_sql(target_for(restored), path, "full")
    else:
        sqlite.restore_snapshot(target_for(restored), path)
    assert db_state(restored) == db_state(rich)


@pytest.mark.parametrize("format", ["sql", "sqlite"])
def test_a_corrupt_source_fails_the_snapshot_and_publishes_nothing(tmp_path: Path, format: str) -> None:
    """The snapshot is checked (`integrity_check`) while it streams out: a source whose index pages
    are garbage fails a snapshot backup, and the store holds no backup and no temp file afterwards.
    A `sql` backup (method auto) falls back to reading the tables, which are whole, and says why."""
    source = tmp_path / "corrupt.db"
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t(v) VALUES (?)", [(f"value {i:06d}",) for i in range(20000)])
    conn.execute("CREATE INDEX t_v ON t(v)")
    conn.commit()
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't_v'").fetchone()[0]
    conn.close()
    with source.open("r+b") as handle:  # the index's root page, overwritten: the file still opens
        handle.seek((root - 1) * 4096)
        handle.write(bytes(range(256)) * 16)
    store = BackupStore(tmp_path / "backups")
    if format == "sql":
        manifest = create_backup(Target.from_url("t", f"sqlite:///{source}"), store, format=format)
        assert manifest["method"] == "sqlalchemy" and "integrity_check" in manifest["fallback_reason"]
        assert manifest["table_rows"] == {"t": 20000}
        return
    with pytest.raises(errors.DumpError, match="integrity_check"):
        create_backup(Target.from_url("t", f"sqlite:///{source}"), store, format=format)
    assert store.list() == [] and folder_listing(store.folder) == []


def test_snapshot_restores_into_a_wal_target_with_another_page_size(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA page_size=8192")
    conn.execute("CREATE TABLE a(x)")
    conn.execute("INSERT INTO a VALUES (1)")
    conn.commit()
    conn.close()
    snap = tmp_path / "snap.sqlite3"
    snap.touch(mode=0o600)
    sqlite.snapshot(target_for(source), snap)
    target = tmp_path / "wal.db"
    live = sqlite3.connect(target)
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("CREATE TABLE b(y)")
    live.commit()
    sqlite.restore_snapshot(target_for(target), snap)  # the plain backup API refuses this case
    assert live.execute("SELECT x FROM a").fetchall() == [(1,)]
    assert live.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    live.close()
    assert not list(tmp_path.glob(".wal.db.restore-*"))


def test_snapshot_restore_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_bytes(b"not a database at all" * 100)
    target = tmp_path / "target.db"
    make_other_db(target)
    before = sha(target)
    with pytest.raises(errors.RestoreError):
        sqlite.restore_snapshot(target_for(target), bogus)
    assert sha(target) == before
