"""Stream stages every artifact passes through: hash content -> compress -> encrypt -> hash stored.

(Interim version: hashing and no compression or encryption; the full stages replace this module.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from backup_engine import errors


@dataclass(frozen=True)
class Compression:
    name: str = "none"
    level: int | None = None

    @property
    def suffix(self) -> str:
        return ""

    @classmethod
    def parse(cls, text: str) -> Compression:
        if text not in ("", "none"):
            raise errors.ConfigError(errors.CONFIG_INVALID, f"BACKUP_COMPRESSION={text!r}: not supported yet")
        return cls()


class WritePipeline:
    def __init__(self, sink: Any, compression: Compression = Compression(),
                 recipients: list[str] | None = None) -> None:
        self._sink = sink
        self._digest = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self.size_bytes += len(data)
        self._sink.write(data)
        return len(data)

    def close(self) -> None:
        pass

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def content_sha256(self) -> str:
        return self.sha256

    @property
    def content_bytes(self) -> int:
        return self.size_bytes


@dataclass(frozen=True)
class Digests:
    sha256: str
    size_bytes: int
    content_sha256: str
    content_bytes: int


class ReadPipeline:
    def __init__(self, source: BinaryIO, compression: Compression = Compression(), encrypted: bool = False,
                 identities: list[str] | None = None) -> None:
        if encrypted or compression.name != "none":
            raise errors.ArtifactError(errors.MANIFEST_INVALID, "compressed or encrypted backups need the full stages")
        self._source = source
        self._digest = hashlib.sha256()
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._digest.update(data)
        self._size += len(data)
        return data

    def finish(self) -> Digests:
        """Digests of everything read; what was not read yet is read first (unless the stream was
        closed: then the sizes tell that it was not read whole)."""
        while not self._source.closed and self.read(1 << 20):
            pass
        digest = self._digest.hexdigest()
        return Digests(sha256=digest, size_bytes=self._size, content_sha256=digest, content_bytes=self._size)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> ReadPipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
