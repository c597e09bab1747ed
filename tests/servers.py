"""Throwaway PostgreSQL, MariaDB, Redis and RabbitMQ servers for the test session.

Each is started from the machine's own binaries on a free loopback port with its data in a
temp folder, so tests may stop, restart and break it without touching a real server.
PostgreSQL refuses to run as root, so under root its processes run as the `postgres` user
(MariaDB's as `mysql`). The superusers have passwords (TCP only), so that tests can prove
they never leak; no password is ever put in a process's argv or environment.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg2
import pymysql
from psycopg2 import sql

# Where the servers keep their data: tmpfs when the machine has one with room. Creating and dropping
# thousands of relations on this project's ext4 disk slowed file creation itself (the kernel's
# inode allocator skipping recently deleted inodes) by up to 2.5x within one run, which made
# timings drift and tests slow; in memory the servers run the same code, steadily.
SERVER_ROOT_ENV = "BW_TEST_SERVER_DIR"
SHARED_MEMORY = Path("/dev/shm")
SHARED_MEMORY_ROOM = 4 << 30


def server_root() -> str | None:
    """The folder throwaway servers are made in: $BW_TEST_SERVER_DIR, else /dev/shm when it has
    room, else the system's temp folder (None)."""
    if os.environ.get(SERVER_ROOT_ENV):
        return os.environ[SERVER_ROOT_ENV]
    with contextlib.suppress(OSError):
        stat = os.statvfs(SHARED_MEMORY)
        if stat.f_bavail * stat.f_frsize >= SHARED_MEMORY_ROOM and os.access(SHARED_MEMORY, os.W_OK):
            return str(SHARED_MEMORY)
    return None


def server_folder(prefix: str) -> Path:
    """A new folder for one throwaway server's data (see `server_root`)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=server_root()))


def free_port(*taken: int) -> int:
    """A loopback port nobody listens on now (and not one of `taken`, which we mean to use)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port


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
        self.base = server_folder("bw-pg-")
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

    def execute(self, url_or_name: str, statements: str) -> None:
        """Run `statements` as the superuser in the database (a name, or a URL of this server), autocommit."""
        conn = self.connect(url_or_name.rsplit("/", 1)[-1].split("?", 1)[0])
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statements)
        finally:
            conn.close()

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
        self.base = server_folder("bw-redis-")
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


# --- shared plumbing of the servers started as plain child processes -------------------------------------
def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that run the child as `user` (when we are root), without its supplementary groups."""
    if not user or os.geteuid() != 0:
        return {}
    record = pwd.getpwnam(user)
    return {"user": record.pw_uid, "group": record.pw_gid, "extra_groups": []}


def _session_members(sid: int) -> list[int]:
    """Live processes of session `sid`: a child started with start_new_session and everything it forked."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry))
    return members


def _end_session(process: subprocess.Popen | None, sig: int, leader_only: bool = False, timeout: float = 60) -> None:
    """Send `sig` to the child (or its whole session), reap it, then kill -9 whatever is left of its session.

    The session (start_new_session) holds the helpers a server forks (Erlang's erl_child_setup,
    inet_gethost), and their id cannot be reused while any of them lives: what is found there is ours.
    """
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if leader_only:
                process.send_signal(sig)
            else:
                os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while (left := _session_members(process.pid)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _wait_until_up(check, process: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    """Poll `check()` until it returns without raising; fail early, with the log, if the server died."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"throwaway {what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            check()
            return
        except Exception as exc:  # any failure means "not up yet"
            error = exc
            time.sleep(0.05)
    raise RuntimeError(f"throwaway {what} did not accept a login in {timeout}s ({error!r}):\n{_tail(log)}")


def _sql_string(value: str) -> str:
    """A MariaDB string literal (default sql_mode: backslash escapes are on)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _sql_name(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


# --- probes of servers we do not own: they answer without any login --------------------------------------
def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP on host:port. The quietest probe: RabbitMQ logs nothing for it."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def mariadb_answers(port: int = 3306, host: str = "127.0.0.1") -> bool:
    """True when a MySQL-protocol server on host:port sends its greeting (protocol 10)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            greeting = sock.recv(5)
    except OSError:
        return False
    return len(greeting) == 5 and greeting[4] == 10


def amqp_answers(port: int = 5672, host: str = "127.0.0.1") -> bool:
    """True when an AMQP 0-9-1 broker on host:port answers the protocol header with Connection.Start.

    The broker logs a warning for each such probe (a client that went away): use it on our own nodes.
    """
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            frame = sock.recv(7)
    except OSError:
        return False
    return len(frame) == 7 and frame[0] == 1  # a method frame


def epmd_names(port: int = 4369, host: str = "127.0.0.1") -> set[str] | None:
    """The 'name X at port N' lines an Erlang port mapper lists, or None when nothing listens there."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"\x00\x01n")  # NAMES_REQ
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except OSError:
        return None
    reply = b"".join(chunks)
    return {line for line in reply[4:].decode(errors="replace").splitlines() if line}


class ThrowawayMariaDB:
    """A private `mariadbd`: own data folder, socket, pid file and loopback port; never reads /etc/mysql.

    The superuser `backup_admin`@`%` has a password with URL-awkward punctuation. It is set by SQL
    from a 0600 file given to mariadb-install-db (`--extra-file`), never by argv. The install's own
    root and socket accounts are dropped, so every login needs a password.
    """

    superuser = "backup_admin"
    host = "127.0.0.1"
    # No fsync at commit and little memory: a test server. Commit level 2 still writes the log at each commit, so a
    # kill -9 of mariadbd loses nothing committed (0 would lose up to a second); only an OS crash could.
    tuning = ("--skip-log-bin", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=2",
              "--innodb-doublewrite=0", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=32M",
              "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci")

    def __init__(self) -> None:
        self.base = server_folder("bw-mariadb-")
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.pid_file = self.base / "mysqld.pid"
        self.log = self.base / "error.log"
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(8) + "@:/%"
        self._owner = "mysql" if os.geteuid() == 0 else None
        self.process: subprocess.Popen | None = None

    def _chown(self, *paths: Path) -> None:
        if self._owner:
            record = pwd.getpwnam(self._owner)
            for path in paths:
                os.chown(path, record.pw_uid, record.pw_gid)

    def init(self) -> ThrowawayMariaDB:
        """mariadb-install-db into the data folder, creating the superuser from a file of SQL."""
        socket_user = self._owner or pwd.getpwuid(os.geteuid()).pw_name
        setup = self.base / "setup.sql"
        setup.touch(mode=0o600)
        # Bootstrap runs without grant tables; FLUSH PRIVILEGES loads them so account statements work.
        setup.write_text(
            "FLUSH PRIVILEGES;\n"
            f"CREATE USER {_sql_string(self.superuser)}@'%' IDENTIFIED BY {_sql_string(self.password)};\n"
            f"GRANT ALL PRIVILEGES ON *.* TO {_sql_string(self.superuser)}@'%' WITH GRANT OPTION;\n"
            f"DROP USER IF EXISTS 'root'@'localhost', {_sql_string(socket_user)}@'localhost';\n")
        self._chown(self.base, setup)
        owner = ("--user=" + self._owner,) if self._owner else ()
        try:
            subprocess.run([shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db", "--no-defaults",
                            f"--datadir={self.datadir}", *owner, "--auth-root-authentication-method=socket",
                            f"--auth-root-socket-user={socket_user}", "--skip-test-db", f"--extra-file={setup}",
                            # its own temp folder: a starting mariadbd deletes every `#sql*` file in its
                            # tmpdir, so servers sharing /tmp break each other's bootstrap
                            f"--tmpdir={self.base}", *self.tuning],
                           check=True, capture_output=True, cwd=self.base, stdin=subprocess.DEVNULL)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"mariadb-install-db failed:\n{exc.stdout.decode(errors='replace')[-3000:]}"
                               f"{exc.stderr.decode(errors='replace')[-3000:]}") from exc
        finally:
            setup.unlink(missing_ok=True)
        return self

    def start(self, timeout: float = 60) -> None:
        """Start mariadbd and return once the superuser can log in over TCP."""
        binary = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
        argv = [binary or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}",
                f"--port={self.port}", f"--bind-address={self.host}", f"--socket={self.socket}",
                f"--pid-file={self.pid_file}", f"--log-error={self.log}", f"--tmpdir={self.base}",
                "--event-scheduler=ON", *self.tuning]
        self.process = subprocess.Popen(argv, cwd=self.base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True, **_as_user(self._owner))
        _wait_until_up(lambda: self.connect(connect_timeout=1).close(), self.process, self.log, "mariadb", timeout)

    def stop(self, mode: str = "fast") -> None:
        """'fast': SIGTERM, a clean shutdown; 'kill' (or 'immediate'): kill -9, InnoDB recovers at next start."""
        if mode not in ("fast", "kill", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        _end_session(self.process, signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        self.process = None

    def kill(self) -> None:
        self.stop("kill")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Kill the server (its data is thrown away, no need to be gentle) and remove every file."""
        self.stop("kill")
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    # --- clients -------------------------------------------------------------------------
    def url(self, dbname: str | None = None, user: str | None = None, password: str | None = None,
            drivername: str = "mysql") -> str:
        """`mysql://user:pw@127.0.0.1:port/db` with the password quoted (drivername='mysql+pymysql' for SQLAlchemy)."""
        from sqlalchemy.engine import URL

        return URL.create(drivername, username=user or self.superuser,
                          password=password if password is not None else self.password,
                          host=self.host, port=self.port, database=dbname or None).render_as_string(hide_password=False)

    def connect(self, dbname: str | None = None, user: str | None = None, password: str | None = None,
                **options: Any) -> pymysql.connections.Connection:
        """A PyMySQL connection over TCP (autocommit on unless asked otherwise)."""
        options.setdefault("autocommit", True)
        options.setdefault("charset", "utf8mb4")
        return pymysql.connect(host=self.host, port=self.port, user=user or self.superuser,
                               password=password if password is not None else self.password,
                               database=dbname, **options)

    def execute(self, *statements: str, dbname: str | None = None) -> None:
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def create_database(self, name: str, owner: str | None = None) -> str:
        """CREATE DATABASE (utf8mb4); `owner` gets ALL on it. Returns its URL for the superuser."""
        statements = [f"CREATE DATABASE {_sql_name(name)} CHARACTER SET utf8mb4"]
        if owner:
            statements.append(f"GRANT ALL PRIVILEGES ON {_sql_name(name)}.* TO {_sql_string(owner)}@'%'")
        self.execute(*statements)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {_sql_name(name)}")

    def create_user(self, name: str, password: str, grants: Iterable[str] = ()) -> None:
        """A non-superuser account `name`@'%'. Each grant is a GRANT's middle, e.g. 'SELECT, SHOW VIEW ON shop.*'.

        The password travels inside the SQL (escaped by PyMySQL), never through argv.
        """
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER {_sql_string(name)}@'%' IDENTIFIED BY {conn.escape(password)}")
                for grant in grants:
                    cur.execute(f"GRANT {grant} TO {_sql_string(name)}@'%'")
        finally:
            conn.close()

    def drop_user(self, name: str) -> None:
        self.execute(f"DROP USER IF EXISTS {_sql_string(name)}@'%'")


class ThrowawayRabbitMQ:
    """A private RabbitMQ node: own node name, AMQP, distribution and epmd ports, folders and Erlang cookie.

    Nothing is shared with the machine's broker: the node registers with an epmd of its own (not the
    system one on 4369), its cookie lives in its own HOME, and RABBITMQ_CONF_ENV_FILE / RABBITMQ_CONFIG_FILE(S)
    point into its folder, so /etc/rabbitmq is never read. The user and password come from the config
    file (default_user/default_pass), which is rewritten without them once the node has created the user.
    """

    host = "127.0.0.1"
    user = "bw_test"
    scripts = Path("/usr/lib/rabbitmq/bin")  # the real scripts: /usr/sbin's wrappers `su` to the system's user

    def __init__(self) -> None:
        self.base = server_folder("bw-rabbitmq-")
        self.port = free_port()
        self.dist_port = free_port(self.port)
        self.epmd_port = free_port(self.port, self.dist_port)
        self.node = f"bw-test-{secrets.token_hex(4)}@localhost"
        self.password = "pw-" + secrets.token_hex(8) + "@:/%"
        self.log = self.base / "server.log"
        self.process: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None
        for folder in ("mnesia", "log", "conf.d"):
            (self.base / folder).mkdir()
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[].\n")
        cookie = self.base / ".erlang.cookie"  # Erlang insists on 0400; the folder is 0700 anyway
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        self._write_config(with_credentials=True)

    def _write_config(self, with_credentials: bool) -> None:
        config = self.base / "rabbitmq.conf"
        config.touch(mode=0o600)
        lines = [f"listeners.tcp.1 = {self.host}:{self.port}", "loopback_users = none",
                 "log.console = false", "log.file.level = info", "disk_free_limit.absolute = 10MB"]
        if with_credentials:
            lines += [f"default_user = {self.user}", f"default_pass = {self.password}",
                      "default_permissions.configure = .*", "default_permissions.read = .*",
                      "default_permissions.write = .*", "default_user_tags.administrator = true"]
        config.write_text("\n".join(lines) + "\n")

    @property
    def env(self) -> dict[str, str]:
        """The environment of our server and of rabbitmqctl against it (no secret in it: the cookie is a file)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        env.update({
            "HOME": str(self.base),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONFIG_FILES": str(self.base / "conf.d" / "*.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_MOTD_FILE": str(self.base / "motd"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback_dist,
            "RABBITMQ_CTL_ERL_ARGS": loopback_dist,
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.host,
        })
        return env

    @property
    def url(self) -> str:
        """`amqp://user:pw@127.0.0.1:PORT//` (the default vhost '/', quoted), with the password quoted."""
        from urllib.parse import quote

        return f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}//"

    def _start_epmd(self) -> None:
        if self._epmd is not None and self._epmd.poll() is None:
            return
        binary = shutil.which("epmd") or "/usr/bin/epmd"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env["HOME"] = str(self.base)  # names our folder, so a leak check finds it; it needs nothing else
        self._epmd = subprocess.Popen([binary, "-port", str(self.epmd_port), "-address", self.host],
                                      env=env, cwd=self.base, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while epmd_names(self.epmd_port) is None:
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the throwaway epmd on port {self.epmd_port} did not start")
            time.sleep(0.02)

    def start(self, timeout: float = 90) -> None:
        """Start the node and return once AMQP accepts our user's login."""
        self._start_epmd()
        handle = self.log.open("ab")
        try:
            self.process = subprocess.Popen([str(self.scripts / "rabbitmq-server")], env=self.env, cwd=self.base,
                                            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        finally:
            handle.close()
        _wait_until_up(self._login, self.process, self.log, "rabbitmq", timeout)
        self._write_config(with_credentials=False)  # the user exists now; its password need not stay on disk

    def _login(self) -> None:
        """One real AMQP login; kombu's own retries (2 s apart) would only slow the start-up poll down."""
        from kombu import Connection

        if not amqp_answers(self.port, self.host):
            raise ConnectionRefusedError(f"no AMQP on port {self.port} yet")
        with Connection(self.url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=5)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl against our node only (its own cookie and epmd: it cannot reach the system node)."""
        done = subprocess.run([str(self.scripts / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                              cwd=self.base, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def stop(self, mode: str = "fast") -> None:
        """'fast': SIGTERM, which the start script turns into a clean node stop; 'kill' (or 'immediate'): kill -9."""
        if mode not in ("fast", "kill", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        if mode == "fast":
            # Only the start script: its TERM trap stops beam cleanly and waits for it. A TERM to the whole
            # session would also hit erl_child_setup, and beam would go down without its clean stop.
            _end_session(self.process, signal.SIGTERM, leader_only=True)
        else:
            _end_session(self.process, signal.SIGKILL)
        self.process = None

    def kill(self) -> None:
        self.stop("kill")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Kill the node and our epmd, and remove every file."""
        self.stop("kill")
        _end_session(self._epmd, signal.SIGKILL)
        self._epmd = None
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None
