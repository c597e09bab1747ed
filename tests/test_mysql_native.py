"""mariadb-dump and the client as the MySQL engine runs them, against a throwaway mariadbd: the
password only ever in a memfd option file, `auto` falling back from a missing tool, a cut dump
and a trigger the tool would dump into the wrong database, MariaDB's sandbox line for a MySQL
client, untrusted SQL refused, two restores of one target never at once."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.engines.mysql.client import is_mariadb_client
from backup_engine.targets import Target
from tests import richdb_mysql
from tests.engine_api import BackupStore, create_backup, restore_backup
from tests.processes import clean_environment, imported_modules, run_local
from tests.test_mysql_roundtrip import TOOLS, leftovers

pytestmark = pytest.mark.skipif(not (TOOLS.mysql and TOOLS.mysqldump), reason="MariaDB client tools not installed")


def database_of(url: str) -> str:
    return make_url(url).database


def small_database(server, make_database) -> str:
    url = make_database("native")
    server.execute("CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))",
                   "INSERT INTO t (v) VALUES ('a'), ('b'), ('c')",
                   "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.v = LOWER(NEW.v)",
                   dbname=database_of(url))
    return url


def script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def child_processes() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.append(int(entry))
    return found


def test_the_password_reaches_the_tools_only_through_a_memory_file(tmp_path, mariadb_server, make_mariadb_database):
    url = small_database(mariadb_server, make_mariadb_database)
    mariadb_server.execute("CREATE TABLE bulk (id INT PRIMARY KEY, pad VARCHAR(255))",  # a dump of several reads
                           "INSERT INTO bulk SELECT seq, REPEAT('x', 250) FROM seq_1_to_30000", dbname=database_of(url))
    password = mariadb_server.password.encode()
    seen: list[bytes] = []

    def look(**info) -> None:
        for pid in child_processes():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if Path(argv.split(b"\x00")[0].decode()).name not in ("mariadb-dump", "mysqldump", "mariadb", "mysql"):
                continue  # the test's own mariadbd, and the like
            seen.append(argv)
            assert password not in argv and password not in environ
            assert b"MYSQL_PWD" not in environ
            assert b"--defaults-extra-file=/dev/fd/" in argv

    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("src", url), store, tools=TOOLS, method="native", progress=look)
    target_url = make_mariadb_database("native_dst")
    restore_backup(Target.from_url("dst", target_url), store, manifest["backup_filename"], tools=TOOLS, progress=look)
    assert any(b"mariadb-dump" in argv or b"mysqldump" in argv for argv in seen)
    assert any(b"--database=bw_restore_" in argv for argv in seen), "the client loads the scratch database"
    assert not list(tmp_path.rglob("*.cnf"))


def test_auto_falls_back_from_a_missing_or_cut_off_tool(tmp_path, mariadb_server, make_mariadb_database):
    url = small_database(mariadb_server, make_mariadb_database)
    target = Target.from_url("src", url)
    store = BackupStore(tmp_path / "b")
    missing = ClientTools(mysqldump=str(tmp_path / "no-such-dump"), mysql=TOOLS.mysql)
    with pytest.raises(errors.DumpError, match=errors.TOOL_NOT_FOUND):
        create_backup(target, store, tools=missing, method="native")
    fallback = create_backup(target, store, tools=missing)
    assert fallback["method"] == "sqlalchemy" and "Client tool not found" in fallback["fallback_reason"]

    cut = ClientTools(mysqldump=script(tmp_path / "cut-dump", f'#!/bin/sh\n"{TOOLS.mysqldump}" "$@" | head -n -1\n'),
                      mysql=TOOLS.mysql)
    with pytest.raises(errors.DumpError, match="no end marker"):
        create_backup(target, store, tools=cut, method="native")
    recovered = create_backup(target, store, tools=cut)
    assert recovered["method"] == "sqlalchemy" and errors.INCOMPLETE_DUMP in recovered["fallback_reason"]
    dest = make_mariadb_database("fallback_dst")
    restore_backup(Target.from_url("dst", dest), store, recovered["backup_filename"], tools=TOOLS)
    assert richdb_mysql.database_state(mariadb_server, database_of(dest))["tables"] == \
        richdb_mysql.database_state(mariadb_server, database_of(url))["tables"]


def test_a_trigger_that_names_its_database_is_dumped_by_the_fallback(tmp_path, mariadb_server, make_mariadb_database):
    url = small_database(mariadb_server, make_mariadb_database)
    source = database_of(url)
    mariadb_server.execute(f"CREATE TRIGGER `{source}`.t_au AFTER UPDATE ON `{source}`.t FOR EACH ROW SET @x = 1",
                           dbname=source)
    store = BackupStore(tmp_path / "b")
    with pytest.raises(errors.DumpError, match="names its database"):
        create_backup(Target.from_url("src", url), store, tools=TOOLS, method="native")
    manifest = create_backup(Target.from_url("src", url), store, tools=TOOLS)
    assert manifest["method"] == "sqlalchemy"
    before = richdb_mysql.definitions(mariadb_server, source)
    dest = make_mariadb_database("qualified_dst")
    restore_backup(Target.from_url("dst", dest), store, manifest["backup_filename"], tools=TOOLS)
    assert richdb_mysql.definitions(mariadb_server, source) == before  # the source was not touched
    triggers = [row[0] for row in richdb_mysql.definitions(mariadb_server, database_of(dest))["triggers"]]
    assert triggers == ["t_au", "t_bi"]


def test_a_mysql_client_gets_the_dump_without_mariadbs_sandbox_line(tmp_path, mariadb_server, make_mariadb_database):
    url = small_database(mariadb_server, make_mariadb_database)
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("src", url), store, tools=TOOLS, method="native")
    path, _ = store.verified(manifest["backup_filename"])
    assert path.read_bytes().startswith(b"/*M!999999\\- enable the sandbox mode */")
    # MySQL's client, as far as this matters: it says it is MySQL, and refuses the sandbox command.
    mysql_like = script(tmp_path / "mysql", f"""#!/bin/bash
if [ "$1" = "--version" ]; then echo "mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"; exit 0; fi
IFS= read -r first
case "$first" in *'999999\\-'*) echo "ERROR at line 1: Unknown command '\\-'." >&2; exit 1;; esac
{{ printf '%s\\n' "$first"; cat; }} | "{TOOLS.mysql}" "$@"
""")
    assert not is_mariadb_client(mysql_like) and is_mariadb_client(TOOLS.mysql)
    dest = make_mariadb_database("mysql_client_dst")
    restore_backup(Target.from_url("dst", dest), store, manifest["backup_filename"],
                   tools=ClientTools(mysqldump=TOOLS.mysqldump, mysql=mysql_like))
    assert richdb_mysql.database_state(mariadb_server, database_of(dest))["tables"]["t"][0] == 3


def test_untrusted_sql_is_never_run(tmp_path, mariadb_server, make_mariadb_database):
    url = small_database(mariadb_server, make_mariadb_database)
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("src", url), store, tools=TOOLS)
    record = store.read_manifest(manifest["backup_filename"])
    store.write_manifest(record, sign=False)  # a manifest that is not ours: its file is an upload
    dest = make_mariadb_database("untrusted_dst")
    with pytest.raises(errors.InvalidRequest, match="no parser gate for MySQL"):
        restore_backup(Target.from_url("dst", dest), store, manifest["backup_filename"], tools=TOOLS)
    assert richdb_mysql.database_state(mariadb_server, database_of(dest))["tables"] == {}
    assert leftovers(mariadb_server) == []


def test_target_urls_name_their_database():
    with pytest.raises(errors.ConfigError, match="names its database"):
        Target.from_url("x", "mysql://user:pw@localhost:3306")
    assert Target.from_url("x", "mariadb+pymysql://u:p@h/db").dialect == "mysql"
    assert shutil.which("mariadb") is None or is_mariadb_client(shutil.which("mariadb"))


def test_the_target_lock_lives_on_the_server(mariadb_server, make_mariadb_database):
    from backup_engine.registry import engine_for

    url = make_mariadb_database("lock")
    first, second = engine_for(Target.from_url("a", url)), engine_for(Target.from_url("a", url))
    with first.exclusive("deployment", 0):
        with pytest.raises(errors.TargetBusy), second.exclusive("deployment", 0.2):
            pass
        with second.exclusive("another deployment", 0):
            pass
    with second.exclusive("deployment", 0):
        pass


def test_the_client_tool_paths_start_without_sqlalchemy(tmp_path, mariadb_server, make_mariadb_database):
    """mariadb-dump and the client need none of SQLAlchemy (0.17 s and 16 MB of a start): a
    `--local` backup and its restore never import it; the fallback does (the control)."""
    source = small_database(mariadb_server, make_mariadb_database)
    env = clean_environment(BACKUP_TARGETS=json.dumps({"src": source, "dst": make_mariadb_database("into")}),
                            BACKUP_DATABASE_URL=source, BACKUP_DIR=str(tmp_path / "backups"),
                            BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"), PYTHONPROFILEIMPORTTIME="1")

    for method in ("native", "sqlalchemy"):
        made = run_local(env, tmp_path, "backup", "--target", "src", "--method", method)
        restored = run_local(env, tmp_path, "restore", json.loads(made.stdout)["backup_filename"],
                             "--target", "dst", "--from", "src")
        assert ("sqlalchemy" in imported_modules(made.stderr)) == (method == "sqlalchemy")
        assert "sqlalchemy" not in imported_modules(restored.stderr)
