"""A local folder as a store: atomic publishing by hard link, temp files swept by flock.

A new object is written to a hidden temp file in the same folder (`.partial.*`), which its
writer holds an flock on; `commit` fsyncs it and hard-links it to the first free name (a link,
unlike a rename, never replaces an existing file), then removes the temp name and fsyncs the
folder. The kernel drops the flock when the writer dies, however it dies, so a temp file that
can be locked is an orphan (pids and host names are no evidence: containers reuse both).

Only regular files are ever opened, with `O_NOFOLLOW | O_NONBLOCK`: a symlink, a FIFO or a
folder planted under an object's name is never followed, never blocks the worker, and never
stops a listing or a sweep.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from backup_engine import errors
from backup_engine.storage.base import NameTaken, ObjectInfo, ObjectWriter, Store, check_object_name

TEMP_PREFIX = ".partial."
FILE_MODE = 0o600
CHUNK_SIZE = 1 << 20
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(extension: str = "tmp") -> str:
    return f"{TEMP_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}.{extension}"


def create_locked(path: Path) -> int:
    """Create `path` (0600, must not exist) and hold an exclusive flock on it; returns the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def open_regular(path: Path) -> int:
    """A read descriptor of `path`, refused unless it is a regular file (never a link or FIFO)."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, path.name) from exc
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{path.name!r} is a symbolic link") from exc
        raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, f"{path.name}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise errors.ArtifactError(errors.NOT_A_FILE, path.name)
    os.set_blocking(fd, True)
    return fd


class LocalWriter(ObjectWriter):
    """A temp file in the store's folder that becomes an object at `commit`."""

    def __init__(self, folder: Path, names: Iterator[str]) -> None:
        self._folder = folder
        self._names = names
        self._temp = folder / temp_name()
        self._fd = create_locked(self._temp)
        self._file: BinaryIO | None = os.fdopen(os.dup(self._fd), "wb", buffering=CHUNK_SIZE)
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        assert self._file is not None, "write after commit or abort"
        self._file.write(data)
        self._size += len(data)
        return len(data)

    def commit(self) -> str:
        assert self._file is not None, "commit after commit or abort"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        for name in self._names:
            check_object_name(name)
            try:
                os.link(self._temp, self._folder / name)  # never replaces an existing file, unlike rename
            except FileExistsError:
                continue
            self._finish()
            fsync_dir(self._folder)
            return name
        raise errors.DumpError(errors.WRITE_FAILED, "no free name left for the new object")

    def abort(self) -> None:
        if self._file is not None:
            with suppress(OSError):  # closing flushes, which fails again when the disk is full
                self._file.close()
            self._file = None
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._temp.unlink(missing_ok=True)
            os.close(self._fd)


class LocalStore(Store):
    """Backups in one folder of the local file system."""

    schemes = ("file",)

    def __init__(self, folder: Path, scratch_dir: Path | None = None) -> None:
        self.folder = Path(folder).absolute()
        self._scratch = Path(scratch_dir) if scratch_dir is not None else self.folder

    @classmethod
    def from_url(cls, url: str, *, scratch_dir: Path) -> LocalStore:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise errors.ConfigError(errors.UNSUPPORTED_STORE, f"{url!r}: use file:///absolute/folder")
        return cls(Path(unquote(parts.path)), scratch_dir=scratch_dir)

    @property
    def url(self) -> str:
        return self.folder.as_uri()

    def location(self, name: str) -> str:
        return (self.folder / check_object_name(name)).as_uri()

    def display_path(self, name: str) -> str:
        return str(self._path(name))

    def _path(self, name: str) -> Path:
        return self.folder / check_object_name(name)

    def create(self, names: Iterator[str]) -> LocalWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return LocalWriter(self.folder, names)

    def put(self, name: str, data: bytes) -> None:
        with self.create(iter([name])) as writer:
            writer.write(data)
            try:
                writer.commit()
            except errors.DumpError as exc:
                raise NameTaken(name) from exc

    def replace(self, name: str, data: bytes) -> None:
        path = self._path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / temp_name("json")
        fd = create_locked(temp)
        try:
            with os.fdopen(os.dup(fd), "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)  # while still locked: a sweep never takes it mid-rename
        finally:
            temp.unlink(missing_ok=True)
            os.close(fd)
        fsync_dir(self.folder)

    def read(self, name: str, limit: int) -> bytes:
        fd = open_regular(self._path(name))
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > limit:
                raise errors.ArtifactError(errors.OBJECT_TOO_LARGE, f"{name}: over {limit} bytes")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise errors.ArtifactError(errors.OBJECT_TOO_LARGE, f"{name}: over {limit} bytes")
        return data

    def open(self, name: str) -> BinaryIO:
        return os.fdopen(open_regular(self._path(name)), "rb", buffering=CHUNK_SIZE)

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, name) from None
        if stat.S_ISLNK(info.st_mode):
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{name!r} is a symbolic link")
        if not stat.S_ISREG(info.st_mode):
            raise errors.ArtifactError(errors.NOT_A_FILE, name)
        return ObjectInfo(name=name, size=info.st_size, modified=datetime.fromtimestamp(info.st_mtime, UTC))

    def exists(self, name: str) -> bool:
        return os.path.lexists(self._path(name))

    def list(self) -> Iterator[ObjectInfo]:
        try:
            entries = os.scandir(self.folder)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    check_object_name(entry.name)
                    info = entry.stat(follow_symlinks=False)
                except (errors.BackupError, OSError):
                    continue
                yield ObjectInfo(name=entry.name, size=info.st_size,
                                 modified=datetime.fromtimestamp(info.st_mtime, UTC))

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def sweep(self, older_than: timedelta) -> list[str]:
        """Temp files whose writer is gone (it held an flock until it was done). `older_than`
        is not needed here: the lock says whether the writer lives."""
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return removed
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                continue  # a folder, FIFO or link under a temp name is not ours: left alone
            try:
                fd = os.open(entry.path, OPEN_FLAGS)
            except OSError:
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # still being written
            else:
                os.unlink(entry.path)
                removed.append(entry.name)
            finally:
                os.close(fd)
        return removed

    @property
    def scratch_dir(self) -> Path:
        return self._scratch
