"""docker-compose.yml cannot rot unseen, and Flower is the HTTP entry point.

CI has no Docker engine, so this test reads the compose file and runs each of its worker,
beat and Flower command lines here, with the service's own environment pointed at the
throwaway servers, and checks that each starts and answers. Beat runs every minute, so a
backup produced by beat alone shows up too.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.processes import ROOT, ManagedProcess, clean_environment
from tests.servers import free_port

pytest_plugins = ["tests.conftest_s3"]

INTERPOLATION = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")
FLOWER_USER, FLOWER_PASSWORD = "admin", "flower-pw-9c1e"
SIGNING_KEY = "compose-signing-key-5d0b7e"


def interpolate(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if name in variables:
            return variables[name]
        if kind == "-":
            return rest
        raise AssertionError(f"compose needs {name}: {rest}")

    return INTERPOLATION.sub(replace, value)


def service_process(service: dict, variables: dict[str, str], rewrite: dict[str, str], cwd: Path,
                    name: str) -> ManagedProcess:
    environment = {key: interpolate(str(value), variables) for key, value in service["environment"].items()}
    for old, new in rewrite.items():
        environment = {key: value.replace(old, new) for key, value in environment.items()}
    argv = [interpolate(part, variables) for part in service["command"]]
    for old, new in rewrite.items():
        argv = [part.replace(old, new) for part in argv]
    assert argv[0] == "python"
    log = cwd / f"{name}.log"
    return ManagedProcess([sys.executable, *argv[1:]], clean_environment(**environment), cwd, log).start()


def http(method: str, url: str, body: dict | None = None, auth: bool = True,
         password: str = FLOWER_PASSWORD) -> tuple[int, object]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if auth:
        token = base64.b64encode(f"{FLOWER_USER}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture
def compose_services(pg_server, broker, tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app_password = "app-pw-" + pg_server.password[3:11]
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS app WITH (FORCE)")
        cur.execute("DROP ROLE IF EXISTS app")
        cur.execute("CREATE ROLE app LOGIN PASSWORD %s", (app_password,))
        cur.execute("CREATE DATABASE app OWNER app")
    conn.close()
    conn = pg_server.connect("app")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET ROLE app; CREATE TABLE things (id int PRIMARY KEY); INSERT INTO things VALUES (1), (2), (3)")
    conn.close()

    flower_port = free_port()
    variables = {"POSTGRES_PASSWORD": app_password, "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
                 "BACKUP_SCHEDULE": "* * * * *", "BACKUP_SIGNING_KEY": SIGNING_KEY}
    rewrite = {"@postgres:5432/": f"@{pg_server.host}:{pg_server.port}/",
               "redis://redis:6379/0": broker, "redis://redis:6379/1": broker,  # a database of the test's own
               "/backups": str(tmp_path / "backups"), "/uploads": str(tmp_path / "uploads"),
               "/var/lib/beat": str(tmp_path), "--port=5555": f"--port={flower_port}"}
    started = {name: service_process(compose["services"][name], variables, rewrite, tmp_path, name)
               for name in ("worker", "beat", "flower")}
    yield {"flower": f"http://127.0.0.1:{flower_port}", "backups": tmp_path / "backups", "processes": started,
           "secrets": (app_password, pg_server.password)}
    for process in started.values():
        process.stop()


@pytest.mark.slow
def test_compose_services_start_answer_and_back_up(compose_services):
    processes = compose_services["processes"]
    processes["worker"].wait_for("ready.")
    processes["beat"].wait_for("beat: Starting")
    flower = compose_services["flower"]
    deadline = time.monotonic() + 60
    while http("GET", f"{flower}/api/workers")[0] != 200:
        assert time.monotonic() < deadline, processes["flower"].output()[-2000:]
        time.sleep(0.5)

    # The API is closed without the credentials, and with a wrong password.
    assert http("GET", f"{flower}/api/tasks", auth=False)[0] == 401
    assert http("POST", f"{flower}/api/task/async-apply/backups.create", {"kwargs": {}}, auth=False)[0] == 401
    assert http("GET", f"{flower}/api/tasks", password=FLOWER_PASSWORD + "x")[0] == 401
    assert http("GET", f"{flower}/api/workers", password="")[0] == 401
    assert http("POST", f"{flower}/api/task/async-apply/backups.create", {"kwargs": {}}, password="wrong")[0] == 401

    # Flower's async-apply is the HTTP entry point that POST /api/create-database-backup was.
    status, applied = http("POST", f"{flower}/api/task/async-apply/backups.create",
                           {"kwargs": {"format": "sql", "include_data": "full"}})
    assert status == 200, applied
    task_id = applied["task-id"]
    deadline = time.monotonic() + 90
    while True:
        status, result = http("GET", f"{flower}/api/task/result/{task_id}")
        if result and result.get("state") in ("SUCCESS", "FAILURE"):
            break
        assert time.monotonic() < deadline, result
        time.sleep(0.5)
    assert result["state"] == "SUCCESS", result
    manifest = result["result"]
    assert Path(manifest["path"]).is_file() and manifest["rows"] == 3 and manifest["target"] == "default"

    # Beat alone (schedule: every minute) produces a backup as well.
    deadline = time.monotonic() + 100
    while len(list(compose_services["backups"].glob("*.sql.meta.json"))) < 2:
        assert time.monotonic() < deadline, processes["beat"].output()[-2000:]
        time.sleep(1)
    assert "Scheduler: Sending due task backup-default-sql" in processes["beat"].output()

    # Flower lists the tasks with their results.
    deadline = time.monotonic() + 30
    while True:
        status, tasks = http("GET", f"{flower}/api/tasks")
        assert status == 200
        if task_id in tasks and tasks[task_id].get("state") == "SUCCESS":
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(0.5)
    assert tasks[task_id]["name"] == "backups.create"

    shown = json.dumps(tasks) + "".join(p.output() for p in processes.values())
    for secret in (*compose_services["secrets"], SIGNING_KEY):
        assert secret not in shown


def test_compose_refuses_to_start_without_a_shared_signing_key():
    """A key generated inside a container would die with it and leave every backup untrusted."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("worker", "beat", "flower"):
        with pytest.raises(AssertionError, match="compose needs BACKUP_SIGNING_KEY"):
            interpolate(str(compose["services"][name]["environment"]["BACKUP_SIGNING_KEY"]), {})


def test_the_s3_override_stores_the_workers_backups_in_the_bucket(s3_server, pg_server, make_pg_database, tmp_path):
    """docker-compose.s3.yml merged over the main file, as `docker compose -f … -f …` merges it, with
    MinIO's address pointed at the throwaway S3 server: the worker's backup lands in the bucket."""
    main = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    override = yaml.safe_load((ROOT / "docker-compose.s3.yml").read_text())
    assert {"minio", "make-bucket", "worker", "beat"} <= set(override["services"])
    environment = {**main["services"]["worker"]["environment"], **override["services"]["worker"]["environment"]}
    assert environment["BACKUP_STORAGE_URL"].startswith("s3://")
    source = make_pg_database("compose_s3")
    prefix = f"compose-{uuid.uuid4().hex[:8]}"
    variables = {"POSTGRES_PASSWORD": "unused", "BACKUP_SIGNING_KEY": SIGNING_KEY, "MINIO_ROOT_PASSWORD": "minio-pw"}
    env = {key: interpolate(str(value), variables) for key, value in environment.items()}
    env.update(BACKUP_DATABASE_URL=source, BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "up"),
               BACKUP_STORAGE_URL=env["BACKUP_STORAGE_URL"].replace("s3://backups/prod", f"s3://{s3_server.bucket}/{prefix}"),
               AWS_ENDPOINT_URL=s3_server.env()["AWS_ENDPOINT_URL"])
    done = subprocess.run([sys.executable, "-m", "worker", "backup", "--local"], cwd=ROOT, env=clean_environment(**env),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["backup_filename"]
    listing = s3_server.client().list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix + "/")
    assert sorted(item["Key"] for item in listing["Contents"]) == [f"{prefix}/{name}", f"{prefix}/{name}.meta.json"]
