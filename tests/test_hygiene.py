"""Store hygiene (issue 17): neighbours, junk and clocks never break the catalogue or cost a good backup.

One test (or a few) per item of the issue, against real processes: the `python -m worker` CLI
(`--local` runs the contract in its own process), real Celery workers on the throwaway Redis or
the embedded broker, the throwaway PostgreSQL, a real shared folder and the S3 store (moto).
Forged files (future dates, bad manifests) are written into the store as a neighbour or a
wrong clock would leave them; nothing of the product is mocked.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backup_engine.trust.manifest import MANIFEST_SUFFIX, Manifest, Signer
from tests.processes import ManagedProcess, celery_worker, clean_environment
from tests.reliability_helpers import failure_text, send, task_meta, wait_result, wait_until
from tests.servers import free_port

pytest_plugins = ["tests.conftest_s3"]

SIGNING_KEY = "hygiene-signing-key-" + "0" * 16
CARD = "4111111111111111"
NO_RETENTION_SLOTS = {"BACKUP_KEEP_DAILY": "0", "BACKUP_KEEP_WEEKLY": "0", "BACKUP_KEEP_MONTHLY": "0"}


# --- helpers -----------------------------------------------------------------------------------------------
def cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m worker ...` as its own process."""
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ok(done: subprocess.CompletedProcess):
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


OPERATION = """
import json, sys
from config.settings import load_settings
from tasks import operations
print(json.dumps(getattr(operations, sys.argv[1])(load_settings(), **json.loads(sys.argv[2])), default=str))
"""


def operation(env: dict[str, str], cwd: Path, name: str, **kwargs):
    """A contract operation the CLI has no command for (`verify_latest`), in a process of its own."""
    done = subprocess.run([sys.executable, "-c", OPERATION, name, json.dumps(kwargs)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)
    return ok(done)


def pg_exec(pg_server, url: str, *statements: str, fetch: bool = False):
    conn = pg_server.connect(url.rsplit("/", 1)[1])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


def site_env(tmp_path: Path, name: str, **overrides: str) -> dict[str, str]:
    folder = tmp_path / name
    return clean_environment(BACKUP_DIR=str(folder / "backups"), BACKUP_UPLOAD_DIR=str(folder / "uploads"),
                             BACKUP_SIGNING_KEY=SIGNING_KEY, BACKUP_TASK_MAX_RETRIES="0", **overrides)


def names(records: list[dict]) -> list[str]:
    return [record["backup_filename"] for record in records]


class StoreFiles:
    """Raw access to the store under test, as a neighbour or anyone who can write into it has:
    the shared folder, or the bucket's prefix (through a plain S3 client)."""

    def __init__(self, storage_url: str, s3_server=None) -> None:
        self.url = storage_url
        self.s3 = s3_server
        if s3_server is None:
            self.folder = Path(urlsplit(storage_url).path)
        else:
            self.bucket, _, self.prefix = urlsplit(storage_url).netloc, None, urlsplit(storage_url).path.strip("/")
            self.client = s3_server.client()

    def location(self, name: str) -> str:
        return (self.folder / name).as_uri() if self.s3 is None else f"{self.url}/{name}"

    def put(self, name: str, data: bytes) -> None:
        if self.s3 is None:
            (self.folder / name).write_bytes(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}", Body=data)

    def get(self, name: str) -> bytes:
        if self.s3 is None:
            return (self.folder / name).read_bytes()
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")["Body"].read()

    def exists(self, name: str) -> bool:
        if self.s3 is None:
            return (self.folder / name).is_file()
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/{name}")
        return any(item["Key"] == f"{self.prefix}/{name}" for item in listed.get("Contents", []))


def forge_copy(store: StoreFiles, record: dict, new_name: str, **changes) -> str:
    """A copy of a backup under `new_name` with a manifest changed as given and signed with our key
    (what a worker with a wrong clock would have written)."""
    store.put(new_name, store.get(record["backup_filename"]))
    manifest = Manifest.from_dict(json.loads(store.get(record["backup_filename"] + MANIFEST_SUFFIX)))
    changed = dataclasses.replace(manifest, backup_filename=new_name, location=store.location(new_name),
                                  path=store.location(new_name), **changes)
    store.put(new_name + MANIFEST_SUFFIX, changed.signed(Signer(SIGNING_KEY.encode())).to_json())
    return new_name


def run_measured(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> tuple[int, str, int]:
    """(exit status, output, peak RSS in KiB) of a child process, read from the kernel's rusage."""
    log = cwd / f"measured-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode, log.read_text(errors="replace"), usage.ru_maxrss
        if time.monotonic() > deadline:
            child.kill()
            raise TimeoutError(f"{argv} still running after {timeout}s")
        time.sleep(0.05)


# --- 1. neighbours -------------------------------------------------------------------------------------------
@pytest.fixture(params=["file", "s3"])
def shared_store(request, tmp_path) -> dict[str, str]:
    """The storage settings of the test's deployments: one local folder, or one prefix of the S3 bucket."""
    if request.param == "file":
        folder = tmp_path / "shared"
        folder.mkdir()
        return {"BACKUP_STORAGE_URL": folder.as_uri()}
    s3_server = request.getfixturevalue("s3_server")
    return {**s3_server.env(), "BACKUP_STORAGE_URL": f"s3://{s3_server.bucket}/shared-{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def store_files(shared_store, request) -> StoreFiles:
    s3_server = request.getfixturevalue("s3_server") if shared_store["BACKUP_STORAGE_URL"].startswith("s3:") else None
    return StoreFiles(shared_store["BACKUP_STORAGE_URL"], s3_server)


def test_neighbours_sharing_a_store_see_only_their_own_backups(shared_store, pg_server, make_pg_database, tmp_path):
    databases = {"appA": make_pg_database("hyg_a"), "appB": make_pg_database("hyg_b")}
    envs = {}
    for app, url in databases.items():
        pg_exec(pg_server, url, "CREATE TABLE who (name text)", f"INSERT INTO who VALUES ('{app}')")
        envs[app] = site_env(tmp_path, app, BACKUP_DATABASE_URL=url, BACKUP_FILE_PREFIX=app, BACKUP_KEEP_LAST="1",
                             **NO_RETENTION_SLOTS, **shared_store)
    made = {app: [ok(cli(envs[app], tmp_path, "backup", "--local"))["backup_filename"] for _ in range(2)]
            for app in ("appB", "appA")}
    assert all(name.startswith("appA_") for name in made["appA"])

    for app in ("appA", "appB"):
        assert sorted(names(ok(cli(envs[app], tmp_path, "list", "--local")))) == sorted(made[app]), app
    pruned = ok(cli(envs["appA"], tmp_path, "prune", "--local"))
    assert pruned["deleted"] == [made["appA"][0]] and pruned["kept"] == [made["appA"][1]]
    assert not set(made["appB"]) & set(pruned["deleted"] + pruned["kept"] + pruned["corrupt"] + pruned["orphans"])
    assert sorted(names(ok(cli(envs["appB"], tmp_path, "list", "--local")))) == sorted(made["appB"])
    drilled = operation(envs["appA"], tmp_path, "verify_latest")
    assert [result["backup_filename"] for result in drilled] == [made["appA"][1]]
    assert drilled[0]["checksum_ok"] and drilled[0]["drill_ok"]

    foreign = made["appB"][1]
    refused = cli(envs["appA"], tmp_path, "restore", foreign, "--local")
    assert refused.returncode == 1 and "Backup belongs to another target or deployment" in refused.stderr
    assert pg_exec(pg_server, databases["appA"], "SELECT name FROM who", fetch=True) == [("appA",)]

    restored = ok(cli(envs["appA"], tmp_path, "restore", foreign, "--from", "default", "--local"))
    assert restored["restored_from"] == {"target": "default", "prefix": "appB"}
    assert restored["backup_filename"] == foreign
    assert pg_exec(pg_server, databases["appA"], "SELECT name FROM who", fetch=True) == [("appB",)]
    assert pg_exec(pg_server, databases["appB"], "SELECT name FROM who", fetch=True) == [("appB",)]


# --- 2. future dates -----------------------------------------------------------------------------------------
def test_future_dated_backups_never_fill_a_slot_nor_count_as_newest(shared_store, store_files, pg_server,
                                                                    make_pg_database, tmp_path):
    url = make_pg_database("hyg_future")
    pg_exec(pg_server, url, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 20)")
    env = site_env(tmp_path, "site", BACKUP_DATABASE_URL=url, BACKUP_KEEP_LAST="1", **NO_RETENTION_SLOTS,
                   **shared_store)
    old, new = (ok(cli(env, tmp_path, "backup", "--local")) for _ in range(2))
    future = [forge_copy(store_files, new, f"default_db_backup_2099010{day}_000000.sql",
                         created_at=f"2099-01-0{day}T00:00:00+00:00") for day in (1, 2)]

    assert names(ok(cli(env, tmp_path, "list", "--local")))[:2] == future[::-1]  # listed, as they are
    pruned = ok(cli(env, tmp_path, "prune", "--local"))
    assert pruned["suspect"] == future
    assert pruned["kept"] == [new["backup_filename"]] and pruned["deleted"] == [old["backup_filename"]]
    assert all(store_files.exists(name) for name in [*future, new["backup_filename"]])
    assert not store_files.exists(old["backup_filename"])

    drilled = operation(env, tmp_path, "verify_latest")
    assert [result["backup_filename"] for result in drilled] == [new["backup_filename"]]
    status = ok(cli(env, tmp_path, "status", "--json"))
    assert status["default"]["newest_backup"] == new["backup_filename"]


# --- 3. bad manifests ----------------------------------------------------------------------------------------
def test_bad_manifests_are_listed_corrupt_with_a_reason_and_never_crash(shared_store, store_files, pg_server,
                                                                        make_pg_database, tmp_path):
    url = make_pg_database("hyg_bad")
    pg_exec(pg_server, url, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 20)")
    env = site_env(tmp_path, "site", BACKUP_DATABASE_URL=url, **shared_store)
    good = ok(cli(env, tmp_path, "backup", "--local"))
    record = json.loads(store_files.get(good["backup_filename"] + MANIFEST_SUFFIX))

    def plant(day: str, text: str | None = None, **changes) -> str:
        name = f"default_db_backup_2024{day}_000000.sql"
        store_files.put(name, b"SELECT 1;\n")
        body = text if text is not None else json.dumps({**record, "backup_filename": name, **changes})
        store_files.put(name + MANIFEST_SUFFIX, body.encode())
        return name + MANIFEST_SUFFIX

    bad = {
        plant("0101", created_at=None): "created_at",
        plant("0102", created_at=1700000000): "created_at",
        plant("0103", text=json.dumps({**record, "backup_filename": "default_db_backup_20240103_000000.sql"})
              .replace(json.dumps(record["created_at"]), "NaN")): "created_at",
        plant("0104", created_at="2024-13-45T99:00:00+00:00"): "",
        plant("0105", target=["default"]): "target",
        plant("0106", text='{"backup_filename": "default_db_backup_20240106_000000.sql", "x": '
              + "[" * 200_000 + "]" * 200_000 + "}"): "",
    }
    # Over the 1 MiB cap: 200 MB of real JSON text in the folder (not a sparse file); 3 MB in the bucket.
    huge = "default_db_backup_20240107_000000.sql"
    store_files.put(huge, b"SELECT 1;\n")
    head, pad, tail = b'{"backup_filename": "' + huge.encode() + b'", "pad": "', b"a" * (1 << 20), b'"}'
    if store_files.s3 is None:
        with (store_files.folder / (huge + MANIFEST_SUFFIX)).open("wb") as out:
            out.write(head)
            for _ in range(200):
                out.write(pad)
            out.write(tail)
    else:
        store_files.put(huge + MANIFEST_SUFFIX, head + pad * 3 + tail)
    bad[huge + MANIFEST_SUFFIX] = "larger than allowed"

    assert names(ok(cli(env, tmp_path, "list", "--local"))) == [good["backup_filename"]]
    pruned = ok(cli(env, tmp_path, "prune", "--local"))
    assert pruned["kept"] == [good["backup_filename"]] and pruned["deleted"] == []
    assert sorted(pruned["corrupt"]) == sorted(bad)
    for name, why in bad.items():
        reason = pruned["corrupt_reasons"][name]
        assert "Backup manifest is unreadable" in reason or "Object is larger than allowed" in reason, reason
        assert why in reason, (name, reason)
        assert store_files.exists(name), "a corrupt manifest is evidence: never deleted"
    drilled = operation(env, tmp_path, "verify_latest")
    assert [result["backup_filename"] for result in drilled] == [good["backup_filename"]]
    assert drilled[0]["drill_ok"]
    restored = ok(cli(env, tmp_path, "restore", good["backup_filename"], "--local"))
    assert restored["rows"] == 20

    if store_files.s3 is None:
        status, output, peak_kib = run_measured([sys.executable, "-m", "worker", "list", "--local"], env, tmp_path)
        assert status == 0, output
        empty = tmp_path / "empty"
        empty.mkdir()
        baseline_status, _, baseline_kib = run_measured([sys.executable, "-m", "worker", "list", "--local"],
                                                        {**env, "BACKUP_STORAGE_URL": empty.as_uri()}, tmp_path)
        assert baseline_status == 0
        assert peak_kib < baseline_kib + 64 * 1024, (peak_kib, baseline_kib)  # the 200 MB one is never read


# --- 4. FIFOs and folders under temp names -------------------------------------------------------------------
def plant_junk(folder: Path) -> list[Path]:
    """A FIFO and a folder under temp names, a FIFO under a manifest's name, and temp files of dead
    writers (which the sweep removes) on both sides of them; returns the dead writers' files."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / ".partial.fifo.x")
    os.mkfifo(folder / ("default_db_backup_20240101_000000.sql" + MANIFEST_SUFFIX))
    (folder / ".partial.dir.x").mkdir()
    (folder / ".partial.dir.x" / "inside").write_text("a folder's content")
    dead = [folder / f".partial.host.{n}.{uuid.uuid4().hex}.sql" for n in range(6)]
    for path in dead:
        path.write_text("left by a writer killed with -9")
    return dead


def test_a_fifo_or_folder_under_a_temp_name_never_hangs_nor_stops_the_sweep(tmp_path, broker, processes):
    env = site_env(tmp_path, "site", CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=broker)
    folder = tmp_path / "site" / "backups"
    dead = plant_junk(folder)
    swept = ok(cli(env, tmp_path, "sweep", timeout=60))
    assert sorted(swept["store"]) == sorted(path.name for path in dead)
    assert stat.S_ISFIFO((folder / ".partial.fifo.x").lstat().st_mode)
    assert (folder / ".partial.dir.x" / "inside").is_file()
    assert ok(cli(env, tmp_path, "list", "--local", timeout=60)) == []

    dead = plant_junk(tmp_path / "site2" / "backups")
    worker = celery_worker({**env, "BACKUP_DIR": str(tmp_path / "site2" / "backups")}, tmp_path, name="junk")
    processes.append(worker)
    worker.wait_for("ready.", timeout=60)
    assert not any(path.exists() for path in dead), "the start's sweep went past the FIFO and the folder"
    assert stat.S_ISFIFO((tmp_path / "site2" / "backups" / ".partial.fifo.x").lstat().st_mode)
    assert wait_result(broker, send(broker, "backups.list"), timeout=60)["result"] == []


# --- 5. names ending in a newline ----------------------------------------------------------------------------
def test_names_ending_in_a_newline_are_refused(tmp_path):
    base = site_env(tmp_path, "site")
    assert ok(cli({**base, "BACKUP_FILE_PREFIX": "abc"}, tmp_path, "list", "--local")) == []
    for command in (("list", "--local"), ("status",)):
        done = cli({**base, "BACKUP_FILE_PREFIX": "abc\n"}, tmp_path, *command)
        assert done.returncode != 0 and "BACKUP_FILE_PREFIX" in done.stderr, done.stderr
    database = tmp_path / "b.db"
    sqlite3.connect(database).close()
    targets = {**base, "BACKUP_TARGETS": json.dumps({"b\n": f"sqlite:///{database}"})}
    done = cli(targets, tmp_path, "list", "--local")
    assert done.returncode != 0 and "target name" in done.stderr and "Invalid configuration" in done.stderr
    started = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--concurrency=1"],
                             cwd=tmp_path, env=targets, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0 and "target name" in started.stderr
    assert ok(cli({**base, "BACKUP_TARGETS": json.dumps({"b": f"sqlite:///{database}"})}, tmp_path, "list",
                  "--local")) == []
    done = cli(base, tmp_path, "restore", "default_db_backup_20240101_000000.sql\n", "--local")
    assert done.returncode == 1 and "Invalid backup file name" in done.stderr


# --- 6. retention counts primary backups ---------------------------------------------------------------------
def test_retention_counts_primaries_twins_follow_their_json_and_safety_backups_count_apart(
        pg_server, make_pg_database, tmp_path):
    url = make_pg_database("hyg_keep")
    pg_exec(pg_server, url, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 20)")
    env = site_env(tmp_path, "site", BACKUP_DATABASE_URL=url, BACKUP_KEEP_LAST="1", BACKUP_KEEP_SIDE="1",
                   **NO_RETENTION_SLOTS)
    folder = tmp_path / "site" / "backups"
    first_sql = ok(cli(env, tmp_path, "backup", "--format", "sql", "--local"))["backup_filename"]
    document = ok(cli(env, tmp_path, "backup", "--format", "json", "--local"))
    json_name, (twin,) = document["backup_filename"], document["companions"]

    pruned = ok(cli(env, tmp_path, "prune", "--local"))
    assert pruned["deleted"] == []
    assert sorted(pruned["kept"]) == sorted([first_sql, json_name, twin])

    safety = [ok(cli(env, tmp_path, "restore", first_sql, "--local"))["safety_backup"]["backup_filename"]
              for _ in range(2)]
    second_sql = ok(cli(env, tmp_path, "backup", "--format", "sql", "--local"))["backup_filename"]
    pruned = ok(cli(env, tmp_path, "prune", "--local"))
    assert sorted(pruned["deleted"]) == sorted([first_sql, safety[0]])
    assert sorted(pruned["kept"]) == sorted([second_sql, json_name, twin, safety[1]])
    assert sorted(names(ok(cli(env, tmp_path, "list", "--local")))) == sorted(pruned["kept"])
    assert not (folder / first_sql).exists() and (folder / twin).is_file()


# --- 7. no row data in failure messages ----------------------------------------------------------------------
def test_a_failed_data_only_restore_names_the_constraint_not_the_row(pg_server, make_pg_database, tmp_path, broker,
                                                                     processes):
    url = make_pg_database("hyg_rows")
    pg_exec(pg_server, url, "CREATE TABLE cards (id int PRIMARY KEY, number text NOT NULL)",
            f"INSERT INTO cards VALUES (1, '{CARD}')")
    env = site_env(tmp_path, "site", BACKUP_TARGETS=json.dumps({"cards": url}), CELERY_BROKER_URL=broker,
                   CELERY_RESULT_BACKEND=broker)
    made = ok(cli(env, tmp_path, "backup", "--target", "cards", "--include-data", "data", "--local"))
    pg_exec(pg_server, url, "ALTER TABLE cards ADD CONSTRAINT no_test_cards CHECK (number NOT LIKE '4111%') NOT VALID")

    local = cli(env, tmp_path, "restore", made["backup_filename"], "--target", "cards", "--local")
    assert local.returncode == 1 and "no_test_cards" in local.stderr, local.stderr
    assert CARD not in local.stderr + local.stdout

    worker = celery_worker(env, tmp_path, name="rows", concurrency=1)
    processes.append(worker)
    worker.wait_for("ready.", timeout=60)
    meta = wait_result(broker, send(broker, "backups.restore", backup_filename=made["backup_filename"],
                                    target="cards"), timeout=120)
    shown = failure_text(meta)
    assert meta["status"] == "FAILURE" and "Restore failed" in shown and "no_test_cards" in shown, shown
    assert CARD not in json.dumps(meta) and CARD not in worker.output()
    records = list((tmp_path / "site" / "backups").glob("*_db_status_*"))
    assert records and not any(CARD.encode() in path.read_bytes() for path in records)
    assert CARD not in cli(env, tmp_path, "status").stdout
    assert pg_exec(pg_server, url, "SELECT number FROM cards", fetch=True) == [(CARD,)]  # the target unchanged


# --- 8. credentials and target names -------------------------------------------------------------------------
def test_a_password_in_the_url_query_is_refused_and_never_shown(tmp_path):
    secret = "Q-SECRET-" + uuid.uuid4().hex[:8]
    url = f"postgresql://app@127.0.0.1:{free_port()}/app?password={secret}&sslmode=disable"
    for variable, value in (("BACKUP_DATABASE_URL", url), ("BACKUP_TARGETS", json.dumps({"orders": url}))):
        env = site_env(tmp_path, "site", **{variable: value})
        for command in (("list", "--local"), ("status",), ("backup", "--local"), ("run",)):
            done = cli(env, tmp_path, *command, timeout=60)
            shown = done.stdout + done.stderr
            assert done.returncode != 0 and "password" in shown and variable in shown, (command, shown[-2000:])
            assert secret not in shown, command


def test_a_userinfo_password_is_masked_in_the_start_log_status_and_errors_and_unknown_targets_list_nothing(
        tmp_path, broker, processes):
    secret = "U-SECRET-" + uuid.uuid4().hex[:8]
    database = tmp_path / "alpha.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE t (id integer primary key)")
    env = site_env(tmp_path, "site", CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=broker,
                   BACKUP_TARGETS=json.dumps({"alpha-quux": f"sqlite:///{database}",
                                              "down-zeta": f"postgresql://app:{secret}@127.0.0.1:{free_port()}/x"}))
    worker = ManagedProcess([sys.executable, "-m", "worker", "run"], env, tmp_path, tmp_path / "run.log").start()
    processes.append(worker)
    worker.wait_for("ready.", timeout=90)
    assert "postgresql://app:***@127.0.0.1" in worker.output()

    failed = cli(env, tmp_path, "backup", "--target", "down-zeta", "--timeout", "90")
    assert failed.returncode == 1 and "Target database unreachable" in failed.stderr, failed.stderr
    local = cli(env, tmp_path, "backup", "--target", "down-zeta", "--local")
    assert local.returncode == 1 and "Target database unreachable" in local.stderr
    status = cli(env, tmp_path, "status", "--json")
    assert json.loads(status.stdout)["down-zeta"]["last_failure"]
    for shown in (worker.output(), failed.stderr, local.stderr, status.stdout, cli(env, tmp_path, "status").stdout):
        assert secret not in shown

    for name in ("backups.create", "backups.list", "backups.verify_latest", "backups.prune"):
        meta = wait_result(broker, send(broker, name, target="nope"), timeout=60)
        shown = failure_text(meta)
        assert meta["status"] == "FAILURE" and "Unknown target" in shown and "'nope'" in shown, (name, shown)
        assert "alpha-quux" not in shown and "down-zeta" not in shown, shown
    done = cli(env, tmp_path, "list", "--target", "nope", "--local")
    assert done.returncode == 1 and "Unknown target" in done.stderr and "alpha-quux" not in done.stderr


def test_a_target_named_twice_is_refused_at_start(tmp_path):
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    raw = f'{{"dup": "sqlite:///{one}", "other": "sqlite:///{two}", "dup": "sqlite:///{two}"}}'
    env = site_env(tmp_path, "site", BACKUP_TARGETS=raw)
    for command in (("run",), ("list", "--local"), ("status",)):
        done = cli(env, tmp_path, *command, timeout=60)
        assert done.returncode != 0 and "'dup' is named twice" in done.stderr, (command, done.stderr[-2000:])
    started = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--concurrency=1"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0 and "named twice" in started.stderr


# --- 9. locks and slots --------------------------------------------------------------------------------------
def hold_target_lock(env: dict[str, str], target: str):
    """The target's lock as the deployment configured by `env` takes it (in this test process)."""
    from config.settings import load_settings
    from tasks.locks import target_lock
    from tasks.operations import engine_of

    settings = load_settings(env, dotenv_path=None)
    return target_lock(settings, engine_of(settings, settings.target(target)), wait_s=0)


def test_lock_keys_carry_the_deployment_namespace(pg_server, make_pg_database, tmp_path):
    url = make_pg_database("hyg_ns")
    pg_exec(pg_server, url, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    shared = tmp_path / "shared"
    envs = {app: site_env(tmp_path, app, BACKUP_DATABASE_URL=url, BACKUP_FILE_PREFIX=app,
                          BACKUP_STORAGE_URL=shared.as_uri(), BACKUP_LOCK_WAIT_S="0") for app in ("appA", "appB")}
    with hold_target_lock(envs["appA"], "default"):
        busy = cli(envs["appA"], tmp_path, "backup", "--local")
        assert busy.returncode == 1 and "Target busy" in busy.stderr, busy.stderr
        other = ok(cli(envs["appB"], tmp_path, "backup", "--local"))
        assert other["backup_filename"].startswith("appB_") and other["rows"] == 1
    assert ok(cli(envs["appA"], tmp_path, "backup", "--local"))["backup_filename"].startswith("appA_")


def test_a_task_for_a_busy_target_gives_its_slot_back_and_runs_later(pg_server, make_pg_database, tmp_path,
                                                                       broker, processes):
    urls = {name: make_pg_database(f"hyg_{name}") for name in ("busy", "free")}
    for url in urls.values():
        pg_exec(pg_server, url, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    env = site_env(tmp_path, "site", BACKUP_TARGETS=json.dumps(urls), CELERY_BROKER_URL=broker,
                   CELERY_RESULT_BACKEND=broker)
    worker = celery_worker(env, tmp_path, name="slots", concurrency=1)
    processes.append(worker)
    worker.wait_for("ready.", timeout=60)
    with hold_target_lock(env, "busy"):
        waiting = send(broker, "backups.create", target="busy")
        worker.wait_for("Retry in 5s", timeout=60)
        other = wait_result(broker, send(broker, "backups.create", target="free"), timeout=60)
        assert other["status"] == "SUCCESS" and other["result"]["target"] == "free"
        assert (task_meta(broker, waiting) or {}).get("status") != "SUCCESS"
    done = wait_result(broker, waiting, timeout=90)
    assert done["status"] == "SUCCESS" and done["result"]["target"] == "busy", failure_text(done)
    assert "Target busy" in worker.output()


# --- 10. shutdown, 11. embedded broker folders ---------------------------------------------------------------
def sqlite_site(tmp_path: Path, **overrides: str) -> tuple[dict[str, str], Path]:
    """A worker's settings with its database and backups outside the folder it runs in (which holds
    nothing: no `var/`), and that empty folder."""
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "app.db") as conn:
        conn.execute("CREATE TABLE t (id integer primary key, body text)")
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(f"row {n}",) for n in range(50)])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = clean_environment(BACKUP_DATABASE_URL=f"sqlite:///{data / 'app.db'}",
                            BACKUP_DIR=str(tmp_path / "elsewhere" / "backups"),
                            BACKUP_UPLOAD_DIR=str(tmp_path / "elsewhere" / "uploads"), **overrides)
    return env, run_dir


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("broker_kind", ["embedded", "redis"])
def test_the_worker_ends_within_10s_of_a_group_signal(broker_kind, sig, tmp_path, request, processes):
    extra = {}
    if broker_kind == "redis":
        url = request.getfixturevalue("broker")
        extra = {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}
    env, run_dir = sqlite_site(tmp_path, **extra)
    worker = ManagedProcess([sys.executable, "-m", "worker", "run"], env, run_dir, tmp_path / "run.log").start()
    processes.append(worker)
    worker.wait_for("ready.", timeout=90)
    assert ok(cli(env, run_dir, "backup", "--timeout", "90"))["rows"] == 50  # a task has run
    if broker_kind == "embedded":  # nothing configured: the default folder was made (item 11)
        assert (run_dir / "var" / "celery-broker.sqlite3").is_file()
        assert (run_dir / "var" / "celery-results.sqlite3").is_file()
    pgid = worker.process.pid  # its own session and process group
    sent = time.monotonic()
    os.killpg(pgid, sig)
    try:
        worker.process.wait(timeout=10)
        wait_until(lambda: not group_alive(pgid), max(0.1, 10 - (time.monotonic() - sent)), interval=0.05,
                   what="every process of the group gone")
    except (subprocess.TimeoutExpired, TimeoutError):
        pytest.fail(f"still running 10 s after {signal.Signals(sig).name}:\n{worker.output()[-3000:]}")


def test_embedded_broker_and_result_folders_are_created_where_configured(tmp_path, processes):
    """With nothing configured the folder is `var/` of the working directory (checked by the embedded
    cases above); here the broker and results are configured into folders that do not exist yet."""
    queue_dir, results_dir = tmp_path / "q" / "broker", tmp_path / "q" / "results"
    env, run_dir = sqlite_site(tmp_path, CELERY_BROKER_URL=f"sqla+sqlite:///{queue_dir / 'b.sqlite3'}",
                               CELERY_RESULT_BACKEND=f"db+sqlite:///{results_dir / 'r.sqlite3'}")
    worker = ManagedProcess([sys.executable, "-m", "worker", "run"], env, run_dir, tmp_path / "run.log").start()
    processes.append(worker)
    worker.wait_for("ready.", timeout=90)
    assert ok(cli(env, run_dir, "backup", "--timeout", "90"))["rows"] == 50
    assert (queue_dir / "b.sqlite3").is_file() and (results_dir / "r.sqlite3").is_file()
    assert not (run_dir / "var").exists()


# --- 12. CSV -------------------------------------------------------------------------------------------------
FORMULAS = {1: "=1+2", 2: "+SUM(A1:A9)", 3: "-cmd|' /C calc'!A0", 4: "@import", 5: "-5", 6: "+3.5e2", 7: "plain",
            8: "\tTAB", 9: "\rCR", 10: 'say "=hi"'}
NEUTRALISED = {**FORMULAS, 1: "'=1+2", 2: "'+SUM(A1:A9)", 3: "'-cmd|' /C calc'!A0", 4: "'@import", 8: "'\tTAB",
               9: "'\rCR"}


def csv_member(path: str) -> tuple[bytes, dict]:
    with zipfile.ZipFile(path) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".csv"))
        return archive.read(member), json.loads(archive.read("manifest.json"))


def test_csv_header_is_quoted_and_formulas_are_exact_unless_csv_safe(pg_server, make_pg_database, tmp_path):
    url = make_pg_database("hyg_csv")
    pg_exec(pg_server, url, 'CREATE TABLE sheet (id int PRIMARY KEY, "Cell ""A""" text)')
    conn = pg_server.connect(url.rsplit("/", 1)[1])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.executemany('INSERT INTO sheet VALUES (%s, %s)', sorted(FORMULAS.items()))
    conn.close()
    env = site_env(tmp_path, "site", BACKUP_DATABASE_URL=url)
    from backup_engine.formats.csv_zip import parse_records

    for flags, expected, safe in (((), FORMULAS, False), (("--csv-safe",), NEUTRALISED, True)):
        made = ok(cli(env, tmp_path, "backup", "--format", "csv", *flags, "--local"))
        raw, manifest = csv_member(made["path"])
        assert raw.split(b"\n", 1)[0] == b'"id","Cell ""A"""'  # quoted like every other field
        assert manifest["csv_safe"] is safe
        header, *rows = parse_records(iter(io.StringIO(raw.decode("utf-8"), newline="\n")))
        assert header == ["id", 'Cell "A"']
        assert {int(row[0]): row[1] for row in rows} == expected
