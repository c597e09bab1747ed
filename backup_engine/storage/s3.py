"""An S3 bucket (AWS or any S3-compatible service) as a store: `s3://bucket/prefix`.

Objects live at `{prefix}/{name}`. A new object is streamed as a multipart upload whose parts
are buffered one at a time (in memory up to `memory_limit`, in a scratch file past it) and grow
with the stream (`s3client.part_size`); it becomes visible only when `commit` completes the
upload with `If-None-Match: *`, so nothing is ever overwritten and a writer that dies leaves an
incomplete upload (invisible to readers and to `list`) for `sweep` to abort. An object that
fits in its first part is sent with one conditional `PutObject` instead.

A retried request can meet its own earlier success (the reply was lost, the retry finds the
key taken): every writer marks its object with a random token in its metadata, so a 412 on an
object carrying our own token is our success, not a clash.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.client import BaseClient

from backup_engine import errors
from backup_engine.storage import s3client
from backup_engine.storage.base import NameTaken, ObjectInfo, ObjectWriter, Store, check_object_name
from backup_engine.storage.s3client import s3_errors, store_error
from backup_engine.storage.s3read import S3Reader

log = logging.getLogger(__name__)

TOKEN = "bw-writer"  # metadata key: x-amz-meta-bw-writer
CHUNK_SIZE = 1 << 20
MEMORY_LIMIT = 64 << 20
BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
PREFIX_PART = re.compile(r"[A-Za-z0-9._=+-]+")


class _Part:
    """The part being filled: one preallocated bytearray, reused from part to part while the
    size stays (no reallocation as it fills, no second copy when sent), or an anonymous scratch
    file for parts past the memory limit."""

    def __init__(self, memory_limit: int, scratch: Path) -> None:
        self._memory_limit, self._scratch = memory_limit, scratch
        self._memory: bytearray | None = None
        self._file: BinaryIO | None = None
        self.size = self.length = 0

    def reset(self, size: int) -> None:
        """Start an empty part of `size` bytes."""
        self.length = 0
        if size <= self._memory_limit:
            self.close()  # a scratch file, or a buffer of another size
            if self._memory is None or len(self._memory) != size:
                self._memory = None
                self._memory = bytearray(size)  # pages are touched only as they fill
        else:
            self._memory = None
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._scratch)  # noqa: SIM115 - unlinked at once
            self._file.seek(0)
            self._file.truncate()
        self.size = size

    def add(self, data: memoryview) -> memoryview:
        """Take what fits; returns the rest."""
        take = data[: self.size - self.length]
        if self._memory is not None:
            self._memory[self.length:self.length + len(take)] = take
        else:
            self._file.write(take)
        self.length += len(take)
        return data[len(take):]

    @property
    def full(self) -> bool:
        return self.length >= self.size

    def body(self) -> bytearray | BinaryIO:
        """The part's bytes for `upload_part` (botocore takes a bytearray or a file, not a view)."""
        if self._memory is not None:
            if self.length < len(self._memory):
                del self._memory[self.length:]  # the last part: shrinks in place, never copied
            return self._memory
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def release(self) -> None:
        self.close()
        self._memory = None


class S3Writer(ObjectWriter):
    """A new object streamed as a multipart upload, visible only after `commit`."""

    def __init__(self, store: S3Store, name: str) -> None:
        self._store = store
        self.name = name
        self._key = store.key(name)
        self._token = uuid.uuid4().hex
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._part: _Part | None = _Part(store.memory_limit, store.scratch_dir)
        self._part.reset(s3client.part_size(1, store.part_size))
        self._size = 0
        self._state = "open"

    @property
    def size(self) -> int:
        return self._size

    @property
    def part_count(self) -> int:
        return len(self._parts)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._state != "open":
            raise ValueError(f"write after {self._state}")
        rest = memoryview(data).cast("B")
        while rest:
            rest = self._part.add(rest)
            if self._part.full:
                self._send_part()
        self._size += len(data)
        return len(data)

    def _send_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        number = len(self._parts) + 1
        if number > s3client.MAX_PARTS:
            raise errors.DumpError(errors.TOO_MANY_PARTS, f"{self.name}: over {s3client.MAX_PARTS} parts")
        with s3_errors(self.name):
            if self._upload_id is None:
                reply = client.create_multipart_upload(Bucket=bucket, Key=self._key, Metadata={TOKEN: self._token})
                self._upload_id = reply["UploadId"]
            reply = client.upload_part(Bucket=bucket, Key=self._key, UploadId=self._upload_id,
                                       PartNumber=number, Body=self._part.body())
        self._parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        self._part.reset(s3client.part_size(number + 1, self._store.part_size))

    def commit(self) -> str:
        if self._state != "open":
            raise ValueError(f"commit after {self._state}")
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._store.head_before_commit:  # for services that ignore If-None-Match; the condition decides
                head = self._store.head(self.name)
                if head is not None and head.get("Metadata", {}).get(TOKEN) != self._token:
                    raise NameTaken(self.name)
            if self._upload_id is None:
                with s3_errors(self.name):
                    client.put_object(Bucket=bucket, Key=self._key, Body=self._part.body(), IfNoneMatch="*",
                                      Metadata={TOKEN: self._token})
            else:
                if self._part.length:
                    self._send_part()
                with s3_errors(self.name):
                    client.complete_multipart_upload(Bucket=bucket, Key=self._key, UploadId=self._upload_id,
                                                     MultipartUpload={"Parts": self._parts}, IfNoneMatch="*")
        except errors.BackupError as exc:
            code = s3client.error_code(exc.__cause__) if exc.__cause__ else ""
            if code in s3client.NAME_TAKEN | s3client.NO_UPLOAD and self._store.has_token(self.name, self._token):
                self._abort_upload(expect_gone=True)  # a retry met our own earlier success: the object is ours
            else:
                self.abort()
                if code in s3client.NAME_TAKEN:
                    raise NameTaken(self.name) from exc
                raise
        self._state = "committed"
        self._release()
        return self.name

    def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._release()
            self._abort_upload(expect_gone=False)

    def _abort_upload(self, expect_gone: bool) -> None:
        """Abort our multipart upload, if we started one. Never raises: it runs on the way out of
        a failure, which it must not hide; an upload left behind is a later sweep's."""
        if self._upload_id is None:
            return
        try:
            with s3_errors(self.name):
                self._store.client.abort_multipart_upload(Bucket=self._store.bucket, Key=self._key,
                                                          UploadId=self._upload_id)
        except errors.BackupError as exc:
            if not expect_gone and exc.message != errors.UPLOAD_ABORTED:
                log.warning("could not abort the upload of %s (%s); a later sweep removes it", self.name, exc)

    def _release(self) -> None:
        if self._part is not None:
            self._part.release()
            self._part = None


class S3Store(Store):
    """Backups in one bucket, under one prefix."""

    schemes = ("s3",)

    def __init__(self, bucket: str, prefix: str = "", *, scratch_dir: Path, part_size: int = s3client.INITIAL_PART_SIZE,
                 memory_limit: int = MEMORY_LIMIT, head_before_commit: bool = True,
                 client: BaseClient | None = None) -> None:
        """`part_size` is the first parts' size (tests use tiny ones); parts past `memory_limit`
        are buffered in `scratch_dir`; `head_before_commit` checks the name with a HEAD before the
        conditional commit, for S3-compatible services that ignore `If-None-Match`."""
        if not BUCKET.fullmatch(bucket):
            raise errors.ConfigError(errors.UNSUPPORTED_STORE, f"invalid bucket name {bucket[:70]!r}")
        prefix = prefix.strip("/")
        if prefix and not all(PREFIX_PART.fullmatch(part) and part not in (".", "..") for part in prefix.split("/")):
            raise errors.ConfigError(errors.UNSUPPORTED_STORE, f"invalid prefix {prefix[:70]!r}")
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.memory_limit = memory_limit
        self.head_before_commit = head_before_commit
        self._scratch = Path(scratch_dir)
        self._client = client
        self._client_pid = os.getpid()

    @classmethod
    def from_url(cls, url: str, *, scratch_dir: Path) -> S3Store:
        parts = urlsplit(url)
        if "@" in parts.netloc:  # never echo it: it holds credentials
            raise errors.ConfigError(errors.UNSUPPORTED_STORE,
                                     "credentials do not belong in BACKUP_STORAGE_URL; use the AWS_* variables")
        options = parse_qs(parts.query, strict_parsing=False)
        if parts.scheme != "s3" or not parts.netloc or parts.fragment or set(options) - {"part_size"}:
            raise errors.ConfigError(errors.UNSUPPORTED_STORE, "use s3://bucket/prefix (optionally ?part_size=BYTES)")
        extra = {}
        if "part_size" in options:
            size = options["part_size"][-1]
            if not size.isdigit() or int(size) < 1:
                raise errors.ConfigError(errors.UNSUPPORTED_STORE, "part_size is a number of bytes")
            extra["part_size"] = int(size)
        return cls(parts.netloc, unquote(parts.path), scratch_dir=scratch_dir, **extra)

    @property
    def client(self) -> BaseClient:
        """One client per process: a client's connection pool must not cross a fork (Celery prefork)."""
        if self._client is None or self._client_pid != os.getpid():
            self._client = s3client.make_client()
            self._client_pid = os.getpid()
        return self._client

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str) -> str:
        check_object_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def _list_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def create(self, names: Iterator[str]) -> S3Writer:
        for name in names:
            if not self.exists(name):
                return S3Writer(self, name)
        raise errors.DumpError(errors.WRITE_FAILED, "no free name left for the new object")

    def put(self, name: str, data: bytes) -> None:
        with S3Writer(self, name) as writer:
            writer.write(data)
            writer.commit()

    def replace(self, name: str, data: bytes) -> None:
        with s3_errors(name):
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)

    def read(self, name: str, limit: int) -> bytes:
        with s3_errors(name):
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            body = reply["Body"]
            try:
                if reply["ContentLength"] > limit:
                    raise errors.ArtifactError(errors.OBJECT_TOO_LARGE, f"{name}: over {limit} bytes")
                data = body.read(limit + 1)
            finally:
                body.close()
        if len(data) > limit:
            raise errors.ArtifactError(errors.OBJECT_TOO_LARGE, f"{name}: over {limit} bytes")
        return data

    def open(self, name: str) -> BinaryIO:
        return io.BufferedReader(S3Reader(self.client, self.bucket, self.key(name), name), CHUNK_SIZE)

    def head(self, name: str) -> dict | None:
        """The object's metadata, or None when there is no such object."""
        try:
            with s3_errors(name):
                return self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except errors.ArtifactError:
            return None

    def exists(self, name: str) -> bool:
        return self.head(name) is not None

    def stat(self, name: str) -> ObjectInfo:
        head = self.head(name)
        if head is None:
            raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, name)
        return ObjectInfo(name=name, size=head["ContentLength"], modified=head["LastModified"].astimezone(UTC))

    def has_token(self, name: str, token: str) -> bool:
        head = self.head(name)
        return head is not None and head.get("Metadata", {}).get(TOKEN) == token

    def list(self) -> Iterator[ObjectInfo]:
        start = self._list_prefix
        paginator = self.client.get_paginator("list_objects_v2")
        with s3_errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start, Delimiter="/"):
                for item in page.get("Contents", []):
                    name = item["Key"][len(start):]
                    try:
                        check_object_name(name)
                    except errors.BackupError:
                        continue
                    yield ObjectInfo(name=name, size=item["Size"], modified=item["LastModified"].astimezone(UTC))

    def delete(self, name: str) -> None:
        with s3_errors(name):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def sweep(self, older_than: timedelta) -> list[str]:
        """Abort incomplete uploads of this prefix's objects idle for longer than `older_than`.

        Idle means since the newest of the upload's start and its parts: a live writer sends a
        part every few seconds to minutes, so `older_than` must only exceed the longest pause of
        a dump (choose it above the task time limit). Deeper keys are never touched.
        """
        removed: list[str] = []
        start = self._list_prefix
        now = datetime.now(UTC)
        with s3_errors():
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=start):
                for upload in page.get("Uploads", []):
                    name = upload["Key"][len(start):]
                    try:
                        check_object_name(name)
                    except errors.BackupError:
                        continue
                    if now - self._last_activity(upload) <= older_than:
                        continue
                    try:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])
                    except Exception as exc:  # noqa: BLE001 - gone meanwhile, or fails: next sweep
                        log.warning("sweep could not abort an upload of %s (%s)", name, store_error(exc, name))
                        continue
                    removed.append(name)
        return removed

    def _last_activity(self, upload: dict) -> datetime:
        latest = upload["Initiated"].astimezone(UTC)
        paginator = self.client.get_paginator("list_parts")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]):
                for part in page.get("Parts", []):
                    latest = max(latest, part["LastModified"].astimezone(UTC))
        except Exception:  # noqa: BLE001 - completed or aborted meanwhile: not ours to judge, leave it
            return datetime.now(UTC)
        return latest

    @property
    def scratch_dir(self) -> Path:
        self._scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._scratch
