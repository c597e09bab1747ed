"""JSON backups across engines with MariaDB (docs/FORMATS.md, MySQL section): a MariaDB document
restores into PostgreSQL and into SQLite with the same rows in every table, and PostgreSQL's and
SQLite's documents restore into MariaDB. Then uploads: untrusted SQL is refused for MySQL, a JSON
upload is converted and restored, with an account that is not the server's superuser."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import make_url

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from config.settings import load_settings
from tasks import operations
from tests import richdb_pg
from tests.engine_api import BackupStore, create_backup, restore_backup
from tests.test_json_cross_engine import AUTHORS, BOOKS, ODD, make_sqlite
from tests.test_mysql_roundtrip import leftovers

TOOLS = ClientTools(mysqldump=shutil.which("mariadb-dump"), mysql=shutil.which("mariadb"),
                    pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"))
pytestmark = pytest.mark.skipif(not (TOOLS.mysql and TOOLS.psql), reason="mariadb or psql not installed")

MARIADB_SCHEMA = [
    """CREATE TABLE kinds (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, i_tiny TINYINT, i_big BIGINT, u_big BIGINT UNSIGNED,
        flag BOOLEAN, price DECIMAL(12,3), f FLOAT, d DOUBLE, bits BIT(12), yr YEAR, day DATE, at DATETIME(6),
        stamp TIMESTAMP(3) NULL DEFAULT NULL, clock TIME(6), code CHAR(8), name VARCHAR(100) NOT NULL UNIQUE,
        body TEXT, blobby BLOB, bin VARBINARY(8), size ENUM('s', 'm', 'l') DEFAULT 'm', tags SET('x', 'y', 'z'),
        doc JSON, token UUID, spot POINT, addr INET6, note VARCHAR(50) DEFAULT 'n''a \\\\ b',
        KEY kinds_day (day, code))""",
    """CREATE TABLE parent (id INT PRIMARY KEY, label VARCHAR(30))""",
    """CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, CONSTRAINT fk_child_parent FOREIGN KEY (parent_id)
        REFERENCES parent (id) ON DELETE CASCADE)""",
    """CREATE TABLE empty_t (id INT PRIMARY KEY)""",
]
KINDS_ROWS = [
    (-128, -9223372036854775808, 9223372036854775807, 1, "123456789.125", 1.5, 0.1 + 0.2, 4095, 2155, "1000-01-01",
     "2024-02-29 23:59:59.999999", "2038-01-19 03:14:07.999", "23:59:59.999999", "abc", "emoji 😀 and 'quotes'",
     "line\nbreak\ttab \\ backslash", b"\x00\x01\xff", b"", "s", "x,z", '{"k": [1, 2.50, "ü", null]}',
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "POINT(1 2)", "2001:db8::1", "note"),
    (127, 0, 0, 0, "-0.001", -3.25, -1.5e-300, 0, 1901, "2000-01-01", "1970-01-01 00:00:00", "1970-01-01 00:00:01",
     "00:00:00", "", "漢字かな 한국어", "", None, b"\x7f" * 8, "l", "", "[]", None, None, None, None),
    (None,) * 13 + (None, "nulls", None, None, None, None, None, None, None, None, None, None),
]
KIND_OF = {"id": "integer", "i_tiny": "integer", "i_big": "integer", "u_big": "numeric", "flag": "integer",
           "price": "numeric", "f": "float", "d": "float", "bits": "integer", "yr": "integer", "day": "date",
           "at": "timestamp", "stamp": "timestamptz", "clock": "time", "code": "text", "name": "text",
           "body": "text", "blobby": "bytes", "bin": "bytes", "size": "text", "tags": "text", "doc": "json",
           "token": "uuid", "spot": "bytes", "addr": "text", "note": "text"}


def database_of(url: str) -> str:
    return make_url(url).database


def build_mariadb(server: Any, database: str) -> None:
    conn = server.connect(database)
    with conn.cursor() as cur:
        for statement in MARIADB_SCHEMA:
            cur.execute(statement)
        columns = [name for name in KIND_OF if name != "id"]
        marks = ", ".join("ST_GeomFromText(%s)" if name == "spot" else "%s" for name in columns)
        cur.executemany(f"INSERT INTO kinds ({', '.join(columns)}) VALUES ({marks})", KINDS_ROWS)
        cur.execute("INSERT INTO parent VALUES (1, 'one'), (2, 'two')")
        cur.execute("INSERT INTO child VALUES (10, 1), (20, 2), (30, NULL)")
    conn.close()


def normal(value: Any, kind: str) -> Any:
    """A value of any of the three engines in one comparable form, by its column's kind."""
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = bytes(value)
    if kind == "integer":
        return int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)
    if kind == "numeric":
        return Decimal(str(value)).normalize()
    if kind == "float":
        return float(value)
    if kind == "bytes":
        return bytes(value).hex() if isinstance(value, bytes) else value
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind in ("timestamp", "timestamptz"):
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment.isoformat()
    if kind == "date":
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if kind == "time":
        if isinstance(value, dt.timedelta):
            return (dt.datetime(2000, 1, 1) + value).time().isoformat()
        return value.isoformat() if isinstance(value, dt.time) else dt.time.fromisoformat(str(value)).isoformat()
    if kind == "uuid":
        return str(uuid.UUID(str(value)))
    return str(value)


def mariadb_rows(server: Any, database: str, query: str) -> list[tuple]:
    conn = server.connect(database)
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(query)
        rows = [tuple(row) for row in cur.fetchall()]
    conn.close()
    return rows


def pg_rows(url: str, query: str) -> list[tuple]:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(query)
            return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def normalised(rows: list[tuple], names: list[str]) -> list[tuple]:
    return [tuple(normal(value, KIND_OF.get(name, "text")) for value, name in zip(row, names, strict=True))
            for row in rows]


def test_mariadb_json_restores_into_postgresql_and_sqlite_with_the_same_rows(tmp_path, mariadb_server,
                                                                            make_mariadb_database, make_pg_database):
    source_url = make_mariadb_database("to_others")
    build_mariadb(mariadb_server, database_of(source_url))
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("maria", source_url), store, format="json")
    assert manifest["rows"] == len(KINDS_ROWS) + 2 + 3
    names = list(KIND_OF)
    listed = ", ".join(names)
    expected = normalised(mariadb_rows(mariadb_server, database_of(source_url),
                                       f"SELECT {listed} FROM kinds ORDER BY id"), names)
    assert expected[0][names.index("spot")].startswith("00000000")  # spatial values: SRID, then WKB

    pg_url = make_pg_database("from_maria")
    result = restore_backup(Target.from_url("pg", pg_url), store, manifest["backup_filename"], tools=TOOLS)
    assert result["rows"] == manifest["rows"]
    pg = normalised(pg_rows(pg_url, f"SELECT {listed} FROM public.kinds ORDER BY id"), names)
    assert pg == expected
    assert pg_rows(pg_url, "SELECT id, parent_id FROM public.child ORDER BY id") == [(10, 1), (20, 2), (30, None)]
    assert pg_rows(pg_url, "SELECT count(*) FROM public.empty_t") == [(0,)]
    assert pg_rows(pg_url, "INSERT INTO public.kinds (name) VALUES ('defaults') RETURNING note, size") == \
        [("n'a \\ b", "m")]
    fingerprint = richdb_pg.schema_fingerprint(pg_url)
    assert ("public.child", "f") in {(c[0], c[2]) for c in fingerprint["constraints"]}
    assert "kinds_day" in {i[2] for i in fingerprint["indexes"]}

    lite = tmp_path / "from_maria.db"
    restore_backup(Target.from_url("lite", f"sqlite:///{lite}"), store, manifest["backup_filename"])
    with sqlite3.connect(lite) as conn:
        rows = conn.execute(f"SELECT {listed} FROM kinds ORDER BY id").fetchall()
        children = conn.execute("SELECT id, parent_id FROM child ORDER BY id").fetchall()
    assert normalised(rows, names) == expected
    assert children == [(10, 1), (20, 2), (30, None)]


def test_postgresql_json_restores_into_mariadb(tmp_path, make_pg_database, mariadb_server, make_mariadb_database):
    url = make_pg_database("to_maria")
    conn = richdb_pg.connect(url)
    with conn.cursor() as cur:
        cur.execute("""
            CREATE SCHEMA sales;
            CREATE TYPE mood AS ENUM ('sad', 'ok');
            CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE,
                                 mood mood DEFAULT 'ok', born date, seen timestamptz, balance numeric(10,2) DEFAULT 0,
                                 score double precision, ok boolean DEFAULT true, photo bytea, tags text[],
                                 prefs jsonb, token uuid, nums int[], span interval, huge numeric,
                                 doubled bigint GENERATED ALWAYS AS (id * 2) STORED);
            CREATE INDEX people_born ON people (born);
            CREATE TABLE sales.orders (id serial PRIMARY KEY, person_id bigint REFERENCES people (id), note text);
            CREATE TABLE parted (id int, at date) PARTITION BY RANGE (at);
            CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM ('2000-01-01') TO ('2010-01-01');
            CREATE TABLE parted_b PARTITION OF parted DEFAULT;
            INSERT INTO parted VALUES (1, '2001-01-01'), (2, '2020-01-01');
            INSERT INTO people (name, mood, born, seen, balance, score, ok, photo, tags, prefs, token, nums, span, huge)
            VALUES ('Ann ✓ 😀', 'sad', '1990-05-06', '2024-01-02 03:04:05.678+02', 12.50, 1e300, false, '\\x00ff',
                    ARRAY['a', NULL, 'c"d'], '{"x": [1, 2.50]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                    '{{1,2},{3,NULL}}', '1 day 02:00:00', 12345678901234567890.123456789),
                   ('Bob', NULL, NULL, NULL, NULL, -1.5e-300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
            INSERT INTO sales.orders (person_id, note) VALUES (1, 'first'), (NULL, E'multi\\nline ''q'' \\\\');
        """)
    conn.commit()
    conn.close()
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("pg", url), store, format="json")
    target_url = make_mariadb_database("from_pg")
    target = database_of(target_url)
    restore_backup(Target.from_url("maria", target_url), store, manifest["backup_filename"], tools=TOOLS)
    people = mariadb_rows(mariadb_server, target, "SELECT id, name, mood, born, seen, balance, score, ok, photo, tags, "
                                                  "prefs, token, nums, span, huge, doubled FROM people ORDER BY id")
    ann, bob = people
    assert ann[:8] == (1, "Ann ✓ 😀", "sad", dt.date(1990, 5, 6), dt.datetime(2024, 1, 2, 1, 4, 5, 678000),
                       Decimal("12.50"), 1e300, 0)
    assert ann[8] == b"\x00\xff" and json.loads(ann[9]) == ["a", None, 'c"d'] and json.loads(ann[10]) == {"x": [1, 2.5]}
    assert ann[11] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and json.loads(ann[12]) == [[1, 2], [3, None]]
    assert ann[13] == "1 day 02:00:00" and ann[14] == Decimal("12345678901234567890.123456789") and ann[15] == 2
    assert bob[:8] == (2, "Bob", None, None, None, None, -1.5e-300, None)
    orders = mariadb_rows(mariadb_server, target, "SELECT id, person_id, note FROM `sales.orders` ORDER BY id")
    assert orders == [(1, 1, "first"), (2, None, "multi\nline 'q' \\")]
    assert mariadb_rows(mariadb_server, target, "SELECT id, at FROM parted ORDER BY id") == \
        [(1, dt.date(2001, 1, 1)), (2, dt.date(2020, 1, 1))]
    indexes = {row[0] for row in mariadb_rows(mariadb_server, target, "SELECT INDEX_NAME FROM information_schema."
                                              f"STATISTICS WHERE TABLE_SCHEMA = '{target}'")}
    assert {"people_born", "PRIMARY"} <= indexes
    server = mariadb_server.connect(target)
    with server.cursor() as cur:
        cur.execute("INSERT INTO people (id, name) VALUES (3, 'new')")
        cur.execute("SELECT mood, balance, ok FROM people WHERE name = 'new'")
        assert cur.fetchone() == ("ok", Decimal("0.00"), 1)
        with pytest.raises(pymysql.err.IntegrityError):  # the foreign key came along
            cur.execute("INSERT INTO `sales.orders` (id, person_id) VALUES (9, 999)")
    server.close()


def test_sqlite_json_restores_into_mariadb(tmp_path, mariadb_server, make_mariadb_database):
    source = tmp_path / "src.db"
    make_sqlite(source)
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("lite", f"sqlite:///{source}"), store, format="json")
    target_url = make_mariadb_database("from_sqlite")
    target = database_of(target_url)
    result = restore_backup(Target.from_url("maria", target_url), store, manifest["backup_filename"], tools=TOOLS)
    assert result["rows"] == len(AUTHORS) + len(BOOKS) + len(ODD)
    authors = mariadb_rows(mariadb_server, target, "SELECT id, name, born, rating, active FROM authors ORDER BY id")
    assert authors == [(i, n, dt.date.fromisoformat(b) if b else None, r, a) for i, n, b, r, a in AUTHORS]
    books = mariadb_rows(mariadb_server, target, "SELECT id, author_id, title, cover, price, meta, pages FROM books "
                                                 "ORDER BY id")
    assert books == [(i, a, t, c, None if p is None else Decimal(str(p)).quantize(Decimal("0.01")), m, n)
                     for i, a, t, c, p, m, n in BOOKS]
    odd = mariadb_rows(mariadb_server, target, 'SELECT `key ✓`, `select` FROM `odd "names" 表` ORDER BY `select`')
    assert sorted(odd, key=lambda row: (row[1] is not None, row[1] or 0)) == \
        sorted(ODD, key=lambda row: (row[1] is not None, row[1] or 0))
    conn = mariadb_server.connect(target)
    with conn.cursor() as cur:  # the rowid alias is AUTO_INCREMENT, after the AUTOINCREMENT position
        cur.execute("INSERT INTO authors (name) VALUES ('new')")
        cur.execute("SELECT id FROM authors WHERE name = 'new'")
        assert cur.fetchone() == (9,)
    conn.close()


# --- uploads ---------------------------------------------------------------------------------------------
@pytest.fixture
def app_account(mariadb_server, make_mariadb_database):
    """A target database and an account with every privilege on it and on the worker's scratch
    databases (`bw\\_%`), and none on the rest of the server."""
    url = make_mariadb_database("uploads")
    database = database_of(url)
    name, password = f"bw_app_{uuid.uuid4().hex[:6]}", "app-" + uuid.uuid4().hex
    mariadb_server.create_user(name, password, grants=[f"ALL PRIVILEGES ON `{database}`.*",
                                                       "ALL PRIVILEGES ON `bw\\_%`.*"])
    yield {"url": mariadb_server.url(database, user=name, password=password), "database": database,
           "superuser_url": url}
    mariadb_server.drop_user(name)


def settings_for(tmp_path: Path, urls: dict[str, str], allow_superuser: bool = False) -> Any:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    return load_settings({"BACKUP_TARGETS": json.dumps(urls), "BACKUP_DIR": str(tmp_path / "backups"),
                          "BACKUP_UPLOAD_DIR": str(uploads), "MYSQLDUMP_BIN": TOOLS.mysqldump or "",
                          "MYSQL_BIN": TOOLS.mysql or "",
                          "BACKUP_UPLOAD_ALLOW_SUPERUSER": "true" if allow_superuser else "false"},
                         dotenv_path=None)


def test_untrusted_sql_uploads_are_refused_for_mysql(tmp_path, mariadb_server, app_account):
    settings = settings_for(tmp_path, {"app": app_account["url"]})
    (settings.upload_dir / "dump.sql").write_text("CREATE TABLE evil (x INT);\n-- Dump completed\n")
    with pytest.raises(errors.InvalidRequest, match="no parser gate for MySQL"):
        operations.restore_upload(settings, path="dump.sql", target="app")
    assert mariadb_rows(mariadb_server, app_account["database"], "SHOW TABLES") == []


def test_json_uploads_are_converted_and_restored_with_a_plain_account(tmp_path, mariadb_server, app_account):
    source = tmp_path / "src.db"
    make_sqlite(source)
    made = BackupStore(tmp_path / "made")
    manifest = create_backup(Target.from_url("lite", f"sqlite:///{source}"), made, format="json")
    document, _ = made.verified(manifest["backup_filename"])
    settings = settings_for(tmp_path, {"app": app_account["url"], "su": app_account["superuser_url"]})
    shutil.copy(document, settings.upload_dir / "upload.json")
    result = operations.restore_upload(settings, path="upload.json", target="app")
    assert result["rows"] == len(AUTHORS) + len(BOOKS) + len(ODD)
    assert len(mariadb_rows(mariadb_server, app_account["database"], "SELECT * FROM books")) == len(BOOKS)
    with pytest.raises(errors.InvalidRequest, match=errors.UPLOAD_ROLE_REFUSED):
        operations.restore_upload(settings, path="upload.json", target="su")
    assert leftovers(mariadb_server) == []


def test_an_untrusted_mysql_document_restores_only_what_can_be_vetted(tmp_path, mariadb_server,
                                                                      make_mariadb_database, app_account):
    plain_url = make_mariadb_database("plain_src")
    build_mariadb(mariadb_server, database_of(plain_url))
    made = BackupStore(tmp_path / "made")
    plain = create_backup(Target.from_url("m", plain_url), made, format="json")
    settings = settings_for(tmp_path, {"app": app_account["url"]})
    path, _ = made.verified(plain["backup_filename"])
    shutil.copy(path, settings.upload_dir / "plain.json")
    result = operations.restore_upload(settings, path="plain.json", target="app")
    assert result["rows"] == plain["rows"]
    rows = mariadb_rows(mariadb_server, app_account["database"], "SELECT name, u_big, price FROM kinds ORDER BY id")
    assert rows[0] == ("emoji 😀 and 'quotes'", 9223372036854775807, Decimal("123456789.125"))

    mariadb_server.execute("CREATE VIEW v AS SELECT 1 AS one", dbname=database_of(plain_url))
    viewed = create_backup(Target.from_url("m", plain_url), made, format="json")
    path, _ = made.verified(viewed["backup_filename"])
    shutil.copy(path, settings.upload_dir / "viewed.json")
    before = mariadb_rows(mariadb_server, app_account["database"], "SELECT COUNT(*) FROM kinds")
    with pytest.raises(errors.InvalidRequest, match=errors.FRAGMENT_REFUSED):
        operations.restore_upload(settings, path="viewed.json", target="app")
    assert mariadb_rows(mariadb_server, app_account["database"], "SELECT COUNT(*) FROM kinds") == before
