"""Backup files and their manifests: names, atomic writes, checksums, safe paths.

The first promise of the project lives here: a file under a backup's name is always complete.
Data goes to a hidden temp file in the same folder, is fsynced, and is published with a hard
link (which never replaces an existing file, so a name clash moves on to `_2`, `_3`, ...);
the manifest is written the same way last. A file without a manifest is not a backup.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine import errors

FORMAT_EXTENSIONS = {"sql": "sql", "json": "json", "csv": "zip", "sqlite": "sqlite3"}
MANIFEST_SUFFIX = ".meta.json"
MANIFEST_VERSION = 1
TEMP_PREFIX = ".partial."
FILE_MODE = 0o600
CHUNK_SIZE = 1 << 20
MAX_NAME_LENGTH = 200
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_safe_name(name: object, what: str = "file name") -> str:
    """A plain file name with no folder part, NUL, dot-dot or odd characters, else refused."""
    if not isinstance(name, str) or not name:
        raise errors.InvalidRequest(errors.BAD_FILENAME, f"{what} must be a non-empty string")
    if "\x00" in name:
        raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{what} contains a NUL byte")
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{what} {name!r} is not a plain file name")
    if len(name) > MAX_NAME_LENGTH or not SAFE_NAME.match(name):
        raise errors.InvalidRequest(errors.BAD_FILENAME, f"{what} {name[:80]!r} has characters outside [A-Za-z0-9._-]")
    return name


def resolve_inside(folder: Path, name: str) -> Path:
    """`folder/name`, refused unless it really is a regular file directly inside `folder`.

    Symlinks are refused outright: a link planted in the folder must not lead a restore to
    read (or a backup to write) anywhere else.
    """
    check_safe_name(name)
    root = folder.resolve()
    path = root / name
    if path.is_symlink():
        raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{name!r} is a symbolic link")
    if path.resolve().parent != root:
        raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{name!r} leaves {root}")
    return path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tail_of(path: Path, size: int = 4096) -> bytes:
    """The last `size` bytes of a file (where dumps keep their end marker)."""
    with path.open("rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - size))
        return handle.read()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


class HashingWriter:
    """A binary file that keeps the sha256 and size of everything written through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


@dataclass
class PendingArtifact:
    """A backup being written: a temp file that becomes a backup only when published.

    Writers either stream through `stream()` (hashed on the way) or let a tool write to
    `temp_path` directly (hashed once at publish time).
    """

    folder: Path
    temp_path: Path
    extension: str
    lock_fd: int = -1  # holds an flock while the file is being written: the sweep skips it
    _writer: HashingWriter | None = field(default=None, repr=False)
    _handle: BinaryIO | None = field(default=None, repr=False)

    def stream(self) -> HashingWriter:
        if self._writer is None:
            self._handle = open(self.temp_path, "wb", buffering=CHUNK_SIZE)  # noqa: SIM115 - closed in finish()
            self._writer = HashingWriter(self._handle)
        return self._writer

    def finish(self) -> tuple[int, str]:
        """Make the temp file durable; returns its size and sha256."""
        if self._handle is not None and self._writer is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
            return self._writer.size, self._writer.sha256
        fd = os.open(self.temp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.temp_path.stat().st_size, sha256_of(self.temp_path)

    def restart(self) -> None:
        """Throw away what was written so far and start the file again (used before a fallback)."""
        if self._handle is not None:
            with suppress(OSError):
                self._handle.close()
        self._handle = None
        self._writer = None
        os.truncate(self.temp_path, 0)

    def discard(self) -> None:
        if self._handle is not None:
            with suppress(OSError):  # closing flushes, which fails again when the disk is full
                self._handle.close()
            self._handle = None
        self.temp_path.unlink(missing_ok=True)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


class BackupStore:
    """The folder of backups: the only code that creates, names, finds or lists them."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    # --- writing -------------------------------------------------------------------------
    @contextmanager
    def pending(self, extension: str) -> Iterator[PendingArtifact]:
        """A temp file in the backup folder, removed unless it is published inside the block."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temp_path = self.folder / f"{TEMP_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}.{extension}"
        artifact = PendingArtifact(folder=self.folder, temp_path=temp_path, extension=extension,
                                   lock_fd=_create_locked(temp_path))
        try:
            yield artifact
        finally:
            artifact.discard()

    def publish(self, artifact: PendingArtifact, prefix: str, manifest: dict[str, Any],
                created_at: datetime | None = None) -> dict[str, Any]:
        """Give the finished temp file its backup name, then write its manifest last.

        Returns the manifest, completed with name, path, size and checksum.
        """
        check_safe_name(prefix, "file prefix")
        created_at = created_at or utc_now()
        size, digest = artifact.finish()
        final = self._link_unique(artifact.temp_path, prefix, created_at, artifact.extension)
        artifact.temp_path.unlink(missing_ok=True)
        record = {
            "manifest_version": MANIFEST_VERSION,
            "backup_filename": final.name,
            "path": str(final),
            "size_bytes": size,
            "sha256": digest,
            "created_at": created_at.isoformat(),
            **manifest,
        }
        try:
            write_json_atomic(self.manifest_path(final), record)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        fsync_dir(self.folder)
        return record

    def _link_unique(self, temp_path: Path, prefix: str, created_at: datetime, extension: str) -> Path:
        stamp = created_at.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
        base = f"{prefix}_db_backup_{stamp}"
        for attempt in range(1, 10_000):
            name = f"{base}.{extension}" if attempt == 1 else f"{base}_{attempt}.{extension}"
            final = self.folder / name
            if self.manifest_path(final).exists():
                continue
            try:
                os.link(temp_path, final)  # never replaces an existing file, unlike rename
            except FileExistsError:
                continue
            return final
        raise errors.DumpError(errors.WRITE_FAILED, f"no free name for {base}")

    def sweep_temp_files(self) -> list[str]:
        """Remove temp files whose writer is gone (called when a worker starts).

        A writer holds an flock on its temp file until it is done, and the kernel drops the
        lock when the writer dies, however it dies: a file we can lock is an orphan. (Pids and
        host names are no evidence: a restarted container reuses both.)
        """
        removed: list[str] = []
        if not self.folder.is_dir():
            return removed
        for path in self.folder.glob(f"{TEMP_PREFIX}*"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # still being written
            else:
                path.unlink(missing_ok=True)
                removed.append(path.name)
            finally:
                os.close(fd)
        return removed

    # --- reading -------------------------------------------------------------------------
    def manifest_path(self, artifact: Path) -> Path:
        return artifact.with_name(artifact.name + MANIFEST_SUFFIX)

    def locate(self, backup_filename: object) -> Path:
        """The backup's path inside the folder, refused if unsafe or missing."""
        if isinstance(backup_filename, str) and backup_filename.endswith(MANIFEST_SUFFIX):
            raise errors.InvalidRequest(errors.BAD_FILENAME, "name the backup file, not its manifest")
        path = resolve_inside(self.folder, backup_filename)  # type: ignore[arg-type]
        if not path.is_file():
            raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, str(backup_filename))
        return path

    def read_manifest(self, backup_filename: object) -> dict[str, Any]:
        path = self.locate(backup_filename)
        manifest_path = self.manifest_path(path)
        if not manifest_path.is_file() or manifest_path.is_symlink():
            raise errors.ArtifactError(errors.MANIFEST_MISSING, path.name)
        try:
            record = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise errors.ArtifactError(errors.MANIFEST_INVALID, f"{manifest_path.name}: {exc}") from exc
        if not isinstance(record, dict) or record.get("backup_filename") != path.name:
            raise errors.ArtifactError(errors.MANIFEST_INVALID, f"{manifest_path.name} describes another file")
        record["path"] = str(path)
        return record

    def verified(self, backup_filename: object) -> tuple[Path, dict[str, Any]]:
        """The backup's path and manifest, after checking size and sha256 against the manifest."""
        manifest = self.read_manifest(backup_filename)
        path = Path(manifest["path"])
        size = path.stat().st_size
        if size != manifest.get("size_bytes") or sha256_of(path) != manifest.get("sha256"):
            raise errors.ArtifactError(errors.CHECKSUM_MISMATCH, path.name)
        return path, manifest

    def list(self, target: str | None = None) -> list[dict[str, Any]]:
        """Manifests of the backups in the folder, newest first."""
        if not self.folder.is_dir():
            return []
        records = []
        for manifest_path in self.folder.glob(f"*{MANIFEST_SUFFIX}"):
            name = manifest_path.name[: -len(MANIFEST_SUFFIX)]
            try:
                record = self.read_manifest(name)
            except errors.BackupError:
                continue
            if target is None or record.get("target") == target:
                records.append(record)
        records.sort(key=lambda r: (r.get("created_at", ""), r["backup_filename"]), reverse=True)
        return records


def _create_locked(path: Path) -> int:
    """Create `path` (0600, must not exist) and hold an exclusive flock on it; returns the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to `path` through a temp file, fsync and rename: never a half manifest."""
    temp = path.with_name(f"{TEMP_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}.json")
    fd = _create_locked(temp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(temp, path)  # while still locked: a sweep never takes it mid-rename
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
