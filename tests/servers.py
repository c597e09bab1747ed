"""Throwaway PostgreSQL and Redis servers for the test session.

Each is started from the machine's own binaries on a free loopback port with its data in a
temp folder, so tests may stop, restart and break it without touching a real server.
PostgreSQL refuses to run as root, so under root its processes run as the `postgres` user.
The superuser has a password (TCP with scram), so that tests can prove it never leaks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL server binary {name!r} not found")
    return found


def _demote_to(user: str):
    """preexec_fn that switches the child to `user` when we are root."""
    if os.geteuid() != 0:
        return None
    record = pwd.getpwnam(user)

    def demote() -> None:
        os.setgid(record.pw_gid)
        os.setuid(record.pw_uid)

    return demote


class ThrowawayPostgres:
    superuser = "backup_admin"
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bw-pg-"))
        self.datadir = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.port = free_port()
        # Punctuation that needs URL-quoting: proves masking works on awkward passwords too.
        self.password = "pw-" + secrets.token_hex(8) + "@:/%"
        self._owner = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        demote = _demote_to(self._owner) if self._owner else None
        subprocess.run(args, check=True, capture_output=True, preexec_fn=demote, cwd=self.base)

    def init(self) -> ThrowawayPostgres:
        self.socket_dir.mkdir()
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._owner:
            record = pwd.getpwnam(self._owner)
            for path in (self.base, self.socket_dir, pwfile):
                os.chown(path, record.pw_uid, record.pw_gid)
        self._run(_pg_bin("initdb"), "-D", str(self.datadir), "-U", self.superuser, "--pwfile", str(pwfile),
                  "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c full_page_writes=off")
        log = str(self.base / "log")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # --- clients -------------------------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        from sqlalchemy.engine import URL

        return URL.create("postgresql", username=user or self.superuser,
                          password=password if password is not None else self.password,
                          host=self.host, port=self.port, database=dbname).render_as_string(hide_password=False)

    def connect(self, dbname: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=self.superuser, password=self.password,
                                dbname=dbname)

    def create_database(self, name: str, owner: str | None = None) -> str:
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if owner:
                statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(owner))
            cur.execute(statement)
        conn.close()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.close()


class ThrowawayRedis:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bw-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.base),
             "--save", "", "--appendonly", "yes", "--logfile", str(self.base / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("throwaway redis did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
