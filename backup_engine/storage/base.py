"""The Store interface: a flat set of named objects, each written once and never overwritten.

A store knows nothing of backups, manifests or formats: it keeps bytes under plain file names
(`check_object_name`), the way Celery's result backends keep results under keys. The catalogue
above it decides names, writes the artifact first and its manifest last, and signs manifests.

Every store offers the same guarantees, whatever is underneath (a local folder, an S3 bucket):
- an object being written is invisible under its name until `ObjectWriter.commit`; a writer
  that dies leaves at most a temp file or an incomplete upload, which `sweep` removes later;
- nothing ever replaces an existing object (`commit` and `put` refuse with `NameTaken`), except
  `replace`, which is only for small status records;
- reading streams: no object is ever held whole in memory (`read` is for small objects only and
  takes a size cap).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from backup_engine import errors

OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME_LENGTH = 200


def check_object_name(name: object, what: str = "file name") -> str:
    """A plain file name (matched whole: no folder part, NUL, dot-dot, newline), else refused."""
    if not isinstance(name, str) or not name:
        raise errors.InvalidRequest(errors.BAD_FILENAME, f"{what} must be a non-empty string")
    if "\x00" in name:
        raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{what} contains a NUL byte")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{what} {name[:80]!r} is not a plain file name")
    if len(name) > MAX_NAME_LENGTH or not OBJECT_NAME.fullmatch(name):
        raise errors.InvalidRequest(errors.BAD_FILENAME, f"{what} {name[:80]!r} has characters outside [A-Za-z0-9._-]")
    return name


class NameTaken(errors.ArtifactError):
    """Publishing would replace an existing object: refused, the writer moves on or fails."""

    def __init__(self, name: str) -> None:
        super().__init__(errors.NAME_TAKEN, name)
        self.name = name


@dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing."""

    name: str
    size: int
    modified: datetime  # UTC, as the store reports it


class ObjectWriter(ABC):
    """A new object being streamed into a store; invisible under any name until `commit`.

    Used as a context manager: leaving the block without `commit` aborts the write.
    """

    @abstractmethod
    def write(self, data: bytes) -> int:
        """Append `data`; returns len(data)."""

    @abstractmethod
    def commit(self) -> str:
        """Make the object visible, never over an existing one; returns the name it got.

        A store that can choose the name at this point takes the first free one of the names
        the writer was opened with; one whose uploads are bound to a key raises `NameTaken`.
        """

    @abstractmethod
    def abort(self) -> None:
        """Throw away what was written (idempotent; called on any failure)."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes written so far."""

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()  # after a commit this is a no-op


class Store(ABC):
    """Where backups live. Subclasses are registered by URL scheme in `backup_engine.storage`."""

    #: URL schemes this store serves, e.g. ("file",) or ("s3",)
    schemes: tuple[str, ...] = ()

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, *, scratch_dir: Path) -> Store:
        """The store a `BACKUP_STORAGE_URL` names; `scratch_dir` is local working space."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The store's URL, safe to show (no credentials)."""

    @abstractmethod
    def location(self, name: str) -> str:
        """The URL of one object (`file:///abs/dir/name`, `s3://bucket/prefix/name`)."""

    def display_path(self, name: str) -> str:
        """Where an object is, as a task result shows it (`path`)."""
        return self.location(name)

    @abstractmethod
    def create(self, names: Iterator[str]) -> ObjectWriter:
        """A writer for a new object that will take the first of `names` still free."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store a small object (a manifest) whole, durably, never over an existing one."""

    @abstractmethod
    def replace(self, name: str, data: bytes) -> None:
        """Store a small object that may replace an older version of itself (a status record)."""

    @abstractmethod
    def read(self, name: str, limit: int) -> bytes:
        """A small object whole; refused (ArtifactError) past `limit` bytes or if it is not a
        plain object (a link, a FIFO, a folder)."""

    @abstractmethod
    def open(self, name: str) -> BinaryIO:
        """A streaming reader of the object's bytes (close it when done)."""

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo:
        """The object's size and time; refused unless it is a plain object (ArtifactError
        BACKUP_NOT_FOUND when missing, InvalidRequest UNSAFE_PATH for a link, ArtifactError
        NOT_A_FILE for anything else)."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether an object (or anything else) holds `name`."""

    @abstractmethod
    def list(self) -> Iterator[ObjectInfo]:
        """Every plain object of the store (temp files and incomplete uploads excluded)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove an object; a missing one is not an error."""

    @abstractmethod
    def sweep(self, older_than: timedelta) -> list[str]:
        """Remove what dead writers left behind (temp files, incomplete multipart uploads);
        returns what was removed. Work of a live writer is never touched."""

    @property
    @abstractmethod
    def scratch_dir(self) -> Path:
        """A local folder for work that needs a real file (a restore's staging), private to
        this worker and on the same machine; callers remove what they put there."""
