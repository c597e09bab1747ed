"""A trusted script fed to a database's command-line client, with the end of input held back.

psql and mariadb both commit what they were given when their input ends. So nothing ends the
input until the whole content has been read and `before_end(tail)` accepted it (the checksum
matches the manifest, the dump's end marker is there); if anything is wrong the client is killed
first, before it ever sees the end of its input, and the server rolls the open transaction back.
The client never decides success by itself: its exit code, and whether it read everything.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from backup_engine.dumpinfo import dies_with_worker

BLOCK = 1 << 20
TAIL_BYTES = 4096


@dataclass(frozen=True)
class ClientExit:
    """How the client ended: its exit code, its standard error, and whether it stopped reading early."""

    returncode: int
    stderr: str
    stopped_reading: bool


def feed_client(argv: list[str], env: dict[str, str], pass_fds: Sequence[int], content: BinaryIO,
                before_end: Callable[[bytes], None], *, first_block: Callable[[bytes], bytes] = lambda block: block,
                progress: Callable[[int], None] = lambda _size: None) -> ClientExit:
    """Run the client with `content` on its standard input (see the module doc); `first_block`
    may rewrite the first block it is given (a MySQL client and MariaDB's sandbox line)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(dies_with_worker(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=stderr, env=env, pass_fds=tuple(pass_fds))
        assert process.stdin is not None
        tail, size, first, stopped = b"", 0, True, False
        try:
            try:
                while chunk := content.read(BLOCK):
                    size += len(chunk)
                    tail = (tail + chunk)[-TAIL_BYTES:]
                    if first:
                        chunk, first = first_block(chunk), False
                    process.stdin.write(chunk)
                    progress(size)
                before_end(tail)
            except BrokenPipeError:
                stopped = True  # the client stopped on an error: its exit code and message say which
            except BaseException:
                process.send_signal(signal.SIGKILL)
                process.wait()
                raise
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        return ClientExit(returncode, stderr.read().decode("utf-8", "replace"), stopped)
