"""Scratch space: private folders for work that needs real files, removed whatever happens.

Each user gets its own folder under `{base}/.scratch/`, holds an flock on a file inside it while
it works, and removes the folder when done; the parent goes when it is empty. A worker killed
with -9 leaves its folder behind, but the kernel drops its lock, so `sweep` can tell an orphan
from a folder in use (pids and host names are no evidence: containers reuse both).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = ".scratch"
LOCK = ".lock"


@contextmanager
def private_folder(base: Path) -> Iterator[Path]:
    """A new 0700 folder in the scratch space under `base`, removed with everything in it."""
    root = Path(base) / ROOT
    for _ in range(5):  # another user may remove the empty parent between our mkdir calls
        os.makedirs(root, mode=0o700, exist_ok=True)
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"{socket.gethostname()}.{os.getpid()}.", dir=root))
            break
        except FileNotFoundError:
            continue
    else:
        raise OSError(f"cannot create a scratch folder in {root}")
    fd = os.open(folder / LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
        with contextlib.suppress(OSError):
            root.rmdir()


def sweep(base: Path) -> list[str]:
    """Remove the scratch folders of users that are gone; returns their names."""
    root = Path(base) / ROOT
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(Path(entry.path) / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            fd = -1  # a folder without its lock file: its user died before taking the lock
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # in use
        finally:
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.name)
    with contextlib.suppress(OSError):
        root.rmdir()
    return removed
