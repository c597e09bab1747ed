"""The throwaway servers are real, private and can be broken on purpose."""

from __future__ import annotations

import os
import pwd
import signal
import time
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pymysql
import pytest
import redis
from amqp.exceptions import AccessRefused
from kombu import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.reliability_helpers import snapshot_processes, wait_until
from tests.servers import (
    ThrowawayMariaDB,
    ThrowawayRabbitMQ,
    amqp_answers,
    epmd_names,
    mariadb_answers,
    port_open,
)


def test_postgres_needs_the_password_and_restarts(pg_server):
    conn = pg_server.connect()
    with conn.cursor() as cur:
        cur.execute("select current_user")
        assert cur.fetchone()[0] == pg_server.superuser
    conn.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.superuser,
                         password="wrong", dbname="postgres")
    assert pg_server.port != 5432
    pg_server.restart()
    pg_server.connect().close()


def test_redis_is_on_its_own_port(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping()
    assert redis_server.port != 6379


# --- helpers -----------------------------------------------------------------------------------------------
def system_services() -> dict[str, object]:
    """What the machine's own MariaDB, RabbitMQ and epmd answer, asked without any login.

    The broker is only asked whether it listens (an AMQP probe would leave a warning in its log); that
    its node is still alive shows in the system epmd, which lists `rabbit` for as long as it runs.
    """
    return {"mariadb:3306": mariadb_answers(3306), "amqp:5672": port_open(5672), "epmd:4369": epmd_names(4369)}


def assert_system_services_untouched(before: dict[str, object]) -> None:
    after = system_services()
    for name, answer in before.items():
        if not answer:  # only what answered before can be asked to still answer
            continue
        if isinstance(answer, set):  # epmd: every node registered before (the system's `rabbit`) still is
            assert answer <= (after[name] or set()), f"the system's {name} changed: {answer!r} -> {after[name]!r}"
        else:
            assert after[name] == answer, f"the system's {name} changed: {answer!r} -> {after[name]!r}"


def assert_no_password(text: str, password: str, where: str) -> None:
    for form in (password, quote(password, safe=""), password[3:19]):
        assert form not in text, f"password leaked in {where}"


def processes_mentioning(needle: str) -> list[int]:
    """Live processes whose argv or environment names `needle` (a server's temp folder)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes() + Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if needle.encode() in raw:
                found.append(int(entry))
    return found


def files_containing(folder: Path, needle: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def owner_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


# --- MariaDB -----------------------------------------------------------------------------------------------
def test_mariadb_needs_the_password_and_is_private(mariadb_server):
    conn = mariadb_server.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION(), CURRENT_USER(), @@port, @@socket, @@event_scheduler, @@log_bin")
        version, user, port, sock, scheduler, log_bin = cur.fetchone()
        cur.execute("SELECT user, host FROM mysql.user WHERE user <> 'mariadb.sys'")
        accounts = cur.fetchall()
    conn.close()
    assert "MariaDB" in version
    assert user == f"{mariadb_server.superuser}@%"
    assert port == mariadb_server.port != 3306
    assert Path(sock).parent == mariadb_server.base
    assert (scheduler, log_bin) == ("ON", 0)
    assert accounts == ((mariadb_server.superuser, "%"),), "no passwordless root or socket account is left"
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb_server.connect(password="wrong")
    assert refused.value.args[0] == 1045
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=mariadb_server.host, port=mariadb_server.port, user="root", password="")
    if os.geteuid() == 0:
        assert owner_of(mariadb_server.pid) == pwd.getpwnam("mysql").pw_uid
    processes = snapshot_processes()
    assert_no_password(processes, mariadb_server.password, "the process list")
    assert not files_containing(mariadb_server.base, mariadb_server.password)


def test_mariadb_url_quotes_the_password(mariadb_server, make_mariadb_database):
    url = make_mariadb_database("shop")
    parsed = make_url(url)
    assert url.startswith(f"mysql://{mariadb_server.superuser}:") and "@:/%" not in url
    assert (parsed.password, parsed.port, parsed.host) == (mariadb_server.password, mariadb_server.port, "127.0.0.1")
    engine = create_engine(parsed.set(drivername="mysql+pymysql"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT DATABASE()")).scalar() == parsed.database
    finally:
        engine.dispose()
    assert mariadb_server.url(parsed.database, drivername="mysql+pymysql").startswith("mysql+pymysql://")


def test_mariadb_tables_and_events_survive_restart_and_kill(mariadb_server, make_mariadb_database):
    dbname = make_url(make_mariadb_database("rw")).database
    conn = mariadb_server.connect(dbname)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB")
        cur.executemany("INSERT INTO item VALUES (%s, %s)", [(1, "één"), (2, "two 🐘")])
        cur.execute("CREATE TABLE tick (at DATETIME)")
        cur.execute("CREATE EVENT fire_once ON SCHEDULE AT CURRENT_TIMESTAMP DO INSERT INTO tick VALUES (NOW())")
    conn.close()

    def ticked() -> bool:
        conn = mariadb_server.connect(dbname)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM tick")
            count = cur.fetchone()[0]
        conn.close()
        return count > 0

    wait_until(ticked, timeout=15, interval=0.1, what="the event scheduler runs the event")

    def rows() -> list:
        conn = mariadb_server.connect(dbname)
        with conn.cursor() as cur:
            cur.execute("SELECT id, name FROM item ORDER BY id")
            found = list(cur.fetchall())
        conn.close()
        return found

    expected = [(1, "één"), (2, "two 🐘")]
    assert rows() == expected
    started = time.monotonic()
    mariadb_server.restart()
    assert time.monotonic() - started < 30
    assert rows() == expected
    old_pid = mariadb_server.pid
    mariadb_server.stop("kill")
    assert not Path(f"/proc/{old_pid}").exists()
    mariadb_server.start()  # crash recovery: committed rows are still there
    assert rows() == expected


def test_mariadb_user_helper_makes_a_limited_account(mariadb_server, make_mariadb_database):
    mine = make_url(make_mariadb_database("mine")).database
    other = make_url(make_mariadb_database("other")).database
    name, password = f"reader_{os.getpid()}", "rd-" + mariadb_server.password[3:11] + "'\\@:"
    mariadb_server.create_user(name, password, grants=[f"SELECT, SHOW VIEW, LOCK TABLES ON `{mine}`.*"])
    try:
        mariadb_server.execute("CREATE TABLE t (x INT)", "INSERT INTO t VALUES (7)", dbname=mine)
        conn = mariadb_server.connect(mine, user=name, password=password)
        with conn.cursor() as cur:
            cur.execute("SELECT x FROM t")
            assert cur.fetchone() == (7,)
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute("INSERT INTO t VALUES (8)")
        conn.close()
        with pytest.raises(pymysql.err.OperationalError):
            mariadb_server.connect(other, user=name, password=password)
        assert make_url(mariadb_server.url(mine, user=name, password=password)).password == password
    finally:
        mariadb_server.drop_user(name)


def test_mariadb_destroy_leaves_nothing_and_the_system_server_is_untouched():
    before = system_services()
    server = ThrowawayMariaDB()
    started = time.monotonic()
    server.init().start()
    assert time.monotonic() - started < 30
    pid, base, port = server.pid, server.base, server.port
    assert processes_mentioning(str(base)) == [pid]
    assert_system_services_untouched(before)
    server.stop("kill")
    server.start()
    server.destroy()
    assert not base.exists()
    assert not processes_mentioning(str(base))
    assert not port_open(port)
    assert_system_services_untouched(before)


# --- RabbitMQ ----------------------------------------------------------------------------------------------
def kombu_round_trip(url: str, payload: dict) -> dict:
    with Connection(url, connect_timeout=5) as conn:
        queue = conn.SimpleQueue(f"bw-test-{os.getpid()}")
        try:
            queue.put(payload)
            message = queue.get(timeout=10)
            message.ack()
            return message.payload
        finally:
            queue.close()


def test_rabbitmq_carries_messages_and_needs_the_password(rabbitmq_server):
    assert rabbitmq_server.port != 5672
    assert rabbitmq_server.url == (f"amqp://{rabbitmq_server.user}:{quote(rabbitmq_server.password, safe='')}"
                                   f"@127.0.0.1:{rabbitmq_server.port}//")
    assert kombu_round_trip(rabbitmq_server.url, {"n": 1, "text": "héllo"}) == {"n": 1, "text": "héllo"}
    wrong = f"amqp://{rabbitmq_server.user}:wrong@127.0.0.1:{rabbitmq_server.port}//"
    with pytest.raises(AccessRefused), Connection(wrong) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)
    users = rabbitmq_server.ctl("list_users", "--quiet", "--no-table-headers")
    assert [line.split()[0] for line in users.splitlines() if line.strip()] == [rabbitmq_server.user]
    assert_no_password(snapshot_processes(), rabbitmq_server.password, "the process list")
    assert not files_containing(rabbitmq_server.base, rabbitmq_server.password)
    names = epmd_names(4369) or set()
    assert not any(rabbitmq_server.node.split("@")[0] in line for line in names), "registered with the system epmd"


@pytest.mark.slow
def test_celery_round_trip_through_rabbitmq_and_a_restart(rabbitmq_server):
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    # Results come back through the broker too (rpc://). Heartbeats wake the worker's event loop, so it
    # notices the end of the block at once instead of after the AMQP poll's 10 s.
    app = Celery("bw-rabbit-check", broker=rabbitmq_server.url, backend="rpc://")
    app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False, broker_heartbeat=2)

    @app.task(name="bw.add")
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30, without_heartbeat=False):
        assert add.delay(2, 3).get(timeout=30) == 5
    app.close()
    rabbitmq_server.restart()
    assert kombu_round_trip(rabbitmq_server.url, {"after": "restart"}) == {"after": "restart"}


@pytest.mark.slow
def test_rabbitmq_kill_restart_destroy_leaves_nothing_and_the_system_node_is_untouched():
    before = system_services()
    server = ThrowawayRabbitMQ()
    base, port, node = server.base, server.port, server.node
    try:
        server.start()
        assert processes_mentioning(str(base)), "our node and our epmd run"
        assert not any(node.split("@")[0] in line for line in (epmd_names(4369) or ()))
        assert any(node.split("@")[0] in line for line in (epmd_names(server.epmd_port) or ()))
        assert_system_services_untouched(before)
        os.kill(server.pid, signal.SIGKILL)  # only the start script: beam lives on, orphaned ...
        assert amqp_answers(port)
        server.stop("kill")  # ... and still goes with the rest of its session
        assert not amqp_answers(port)
        assert not processes_mentioning(str(base / "mnesia"))
        server.start()  # after kill -9 the node boots again from its own data
        assert kombu_round_trip(server.url, {"k": 9}) == {"k": 9}
    finally:
        server.destroy()
    assert not base.exists()
    # an orphaned beam or epmd exits a moment after its session is killed: wait for it, briefly
    assert wait_until(lambda: not processes_mentioning(str(base)), timeout=10, interval=0.2)
    assert not port_open(port)
    assert wait_until(lambda: epmd_names(server.epmd_port) is None, timeout=10, interval=0.2)
    assert_system_services_untouched(before)
