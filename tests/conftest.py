"""Session-wide throwaway servers and per-test databases and folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.reliability_helpers import Transport, isolated_broker, managed_processes, rabbitmq_vhost
from tests.servers import ThrowawayMariaDB, ThrowawayPostgres, ThrowawayRabbitMQ, ThrowawayRedis, server_root

OWN_BASETEMP = "_bw_own_basetemp"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Tests' own files (`tmp_path`: stores, SQLite files, scratch) go where the servers' data does,
    in /dev/shm when it has room (`servers.server_root`), unless --basetemp says otherwise: the
    disk's slowed file creation (see servers.py) slowed the tests that write thousands of files.
    The folder is this run's own (runs side by side never share one) and is removed at its end;
    xdist's workers get folders inside it."""
    root = server_root()
    if config.option.basetemp or hasattr(config, "workerinput") or root is None:
        return
    config.option.basetemp = tempfile.mkdtemp(prefix="bw-pytest-", dir=root)
    setattr(config, OWN_BASETEMP, config.option.basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    if getattr(config, OWN_BASETEMP, None):
        shutil.rmtree(getattr(config, OWN_BASETEMP), ignore_errors=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 2 MB tmpfs of its own (root only), unmounted at teardown: a store that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "small-disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def disk_path() -> Iterator[Path]:
    """A folder in the system's temp folder (on disk, where `tmp_path` may be in /dev/shm), for
    the tests whose subject is timed by a disk: a writer's commits and a backup's fsync take time
    there, as in production, and on tmpfs none (a kill aimed at "while the file is fsynced"
    comes too late; an unthrottled writer grows its file several times faster)."""
    folder = Path(tempfile.mkdtemp(prefix="bw-disk-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres().init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[ThrowawayMariaDB]:
    server = ThrowawayMariaDB()
    try:
        server.init().start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[ThrowawayRabbitMQ]:
    """Started once per session: a RabbitMQ node takes several seconds to boot."""
    server = ThrowawayRabbitMQ()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def make_pg_database(pg_server: ThrowawayPostgres) -> Iterator:
    """Factory: a fresh, empty database on the throwaway server; returns its URL."""
    created: list[str] = []

    def make(prefix: str = "db", owner: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return pg_server.create_database(name, owner=owner)

    yield make
    for name in created:
        pg_server.drop_database(name)


@pytest.fixture
def make_app_database(pg_server: ThrowawayPostgres) -> Iterator:
    """Factory: a database owned by a new login role without CREATEDB (a typical application
    account); returns its URL as that role, and drops both afterwards."""
    made: list[tuple[str, str]] = []

    def make(prefix: str = "app", setup: str | None = None) -> str:
        role, password = f"{prefix}_{uuid.uuid4().hex[:6]}", f"{prefix}-" + uuid.uuid4().hex
        name = f"{prefix}_{uuid.uuid4().hex[:6]}"
        pg_server.execute("postgres", f'CREATE ROLE "{role}" LOGIN NOCREATEDB PASSWORD \'{password}\'')
        made.append((name, role))
        pg_server.create_database(name, owner=role)
        url = pg_server.url(name, user=role, password=password)
        if setup:
            conn = psycopg2.connect(url)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(setup)
            conn.close()
        return url

    yield make
    for name, role in made:
        pg_server.execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_server.execute("postgres", f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def make_mariadb_database(mariadb_server: ThrowawayMariaDB) -> Iterator:
    """Factory: a fresh, empty database on the throwaway MariaDB; returns its URL (`mysql://...`)."""
    created: list[str] = []

    def make(prefix: str = "db", owner: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return mariadb_server.create_database(name, owner=owner)

    yield make
    for name in created:
        mariadb_server.drop_database(name)


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "backups"
    folder.mkdir()
    return folder


@pytest.fixture
def broker(redis_server) -> Iterator[str]:
    """A Redis database of its own on the throwaway server, for one test's broker and results."""
    yield from isolated_broker(redis_server)


@pytest.fixture
def transport(request, redis_server) -> Iterator[Transport]:
    """A broker of the test's own and a Redis result backend of its own. Redis unless the test
    parametrises it: `@pytest.mark.parametrize("transport", ["redis", "rabbitmq"], indirect=True)`;
    RabbitMQ is the session's throwaway node, with a vhost of this test's own."""
    kind = getattr(request, "param", "redis")
    backends = isolated_broker(redis_server)
    backend = next(backends)
    if kind == "redis":
        yield Transport(kind, backend, backend)
    elif kind == "rabbitmq":
        vhosts = rabbitmq_vhost(request.getfixturevalue("rabbitmq_server"))
        yield Transport(kind, next(vhosts), backend)
        next(vhosts, None)
    else:
        raise ValueError(f"unknown broker {kind!r}")
    next(backends, None)


@pytest.fixture
def processes() -> Iterator[list]:
    """Worker, beat and Flower processes a test starts; all stopped at its end."""
    yield from managed_processes()
