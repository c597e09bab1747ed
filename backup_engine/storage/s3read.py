"""A streamed GET as a file-like object, resumed where it broke off.

A restore of a large backup reads one response body for minutes; a connection that drops in
the middle costs only a new ranged GET from the current offset, pinned to the same version
of the object by its ETag (`If-Match`), so a resumed read can never splice two objects.
"""

from __future__ import annotations

import io

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from backup_engine import errors
from backup_engine.storage.s3client import s3_errors, store_error

MAX_RESUMES = 5
RESUMABLE = (errors.StoreUnavailable,)


class S3Reader(io.RawIOBase):
    """The bytes of one object, read in chunks from its response body."""

    def __init__(self, client: BaseClient, bucket: str, key: str, name: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self.name = client, bucket, key, name
        self._position = 0
        self._resumes = 0
        with s3_errors(name):
            reply = client.get_object(Bucket=bucket, Key=key)
        self._etag = reply["ETag"]
        self.length = reply["ContentLength"]
        self._body = reply["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self._position >= self.length or not len(buffer):
                return 0
            try:
                with s3_errors(self.name):
                    count = self._body.readinto(buffer) or 0
            except RESUMABLE:
                self._resume()
                continue
            if count == 0:  # the body ended early without an error: resume as after a drop
                self._resume()
                continue
            self._position += count
            return count

    def _resume(self) -> None:
        self._resumes += 1
        if self._resumes > MAX_RESUMES:
            raise errors.StoreUnavailable(errors.STORE_UNAVAILABLE, f"{self.name}: the download kept breaking off")
        self._body.close()
        try:
            reply = self._client.get_object(Bucket=self._bucket, Key=self._key, IfMatch=self._etag,
                                            Range=f"bytes={self._position}-")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise errors.ArtifactError(errors.CHECKSUM_MISMATCH,
                                           f"{self.name} changed while it was being read") from exc
            raise store_error(exc, self.name) from exc
        except BotoCoreError as exc:
            raise store_error(exc, self.name) from exc
        self._body = reply["Body"]

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
