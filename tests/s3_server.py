"""A throwaway S3 server for the test session: moto's server mode as a real process.

Started from the venv's own `moto_server` on a free loopback port, like the PostgreSQL and
Redis of tests/servers.py, so tests talk HTTP to a separate process that they can kill. Its
objects live in memory, spilling large ones to a temp folder of its own. Parts as small as one
byte are accepted (`S3_UPLOAD_PART_MIN_SIZE=1`) so tests can stream thousands of tiny parts;
real S3 wants 5 MiB, which the store's default 16 MiB parts respect.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3

from tests.servers import free_port

ACCESS_KEY = "moto-test-key"
SECRET_KEY = "moto-test-secret-" + uuid.uuid4().hex  # a secret tests can look for in logs
REGION = "us-east-1"


class ThrowawayS3:
    host = "127.0.0.1"

    def __init__(self, bucket: str = "backups") -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bw-s3-"))
        self.port = free_port()
        self.bucket = bucket
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The AWS_* variables a client (our store, a child process) needs for this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
                "AWS_MAX_ATTEMPTS": "3"}

    def start(self) -> ThrowawayS3:
        binary = Path(sys.executable).parent / "moto_server"
        env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": "1", "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(1 << 20),
               "TMPDIR": str(self.base)}
        self.process = subprocess.Popen([str(binary), "-H", self.host, "-p", str(self.port)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=open(self.base / "log", "ab"))  # noqa: SIM115
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(self.base / 'log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("throwaway S3 server did not start")
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name=REGION)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=20)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class CuttingProxy:
    """A TCP proxy in front of the S3 server that, once armed, drops the connection in the middle
    of a response after `cut_after` bytes: a real broken download, no mock."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = free_port()
        self.cut_after: int | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        self._sent_since_armed = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, cut_after: int) -> None:
        with self._lock:
            self.cut_after, self._sent_since_armed = cut_after, 0

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if downstream and self._should_cut(len(data)):
                    target.sendall(data[: len(data) // 2])
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _should_cut(self, size: int) -> bool:
        with self._lock:
            if self.cut_after is None:
                return False
            self._sent_since_armed += size
            if self._sent_since_armed < self.cut_after:
                return False
            self.cut_after = None
            self.cuts += 1
            return True
