"""The stream stages every backup passes through on its way into a store and back out.

Write side, in this order: hash the content, compress (zstd, gzip or none), encrypt (age, to
every recipient), hash the stored bytes, write to the sink (a store's `ObjectWriter`). Read side,
the reverse, pulled by the reader. Each stage is a small class over the next sink or source;
nothing holds a stream whole, so memory stays flat whatever the size of the backup.

The compression of a stored object comes from its manifest (`Compression.of`), never from its
bytes; only uploads, which have no manifest, are sniffed (`sniff_compression`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import BinaryIO

from backup_engine.storage.compression import (  # noqa: F401 - the stages' public API, re-exported
    BLOCK,
    GZIP,
    NONE,
    ZSTD,
    ZSTD_THREADS,
    Compression,
    GzipReader,
    GzipWriter,
    Sink,
    ZstdReader,
    ZstdWriter,
    object_suffix,
    sniff_compression,
    split_suffixes,
)
from backup_engine.storage.encryption import AgeReader, AgeWriter


@dataclass(frozen=True)
class StreamDigests:
    """What a manifest records of a stream: the stored object's and the plain content's."""

    sha256: str
    size_bytes: int
    content_sha256: str
    content_bytes: int


# ---- write side ---------------------------------------------------------------------------------

class HashingWriter:
    """Counts and hashes what passes to `sink`."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close_source(self) -> None:
        self._source.close()

    def close(self) -> None:
        pass


class WritePipeline:
    """hash content -> compress -> encrypt -> hash stored -> `sink`, with writes batched to BLOCK.

    `close` flushes every stage (the sink itself is the caller's to commit); after it the four
    digests are set. On any failure call `abort` (or leave the `with` block by an exception): the
    age thread, which calls `sink.write`, stops before the sink is aborted, and never writes a final
    chunk. So nest it inside the writer and commit after it:

        with store.create(names) as writer:
            with WritePipeline(writer, compression, recipients) as pipeline:
                produce(pipeline.write)
            name = writer.commit()
    """

    def __init__(self, sink: Sink, compression: Compression | str, recipients: list[str],
                 zstd_threads: int = ZSTD_THREADS) -> None:
        compression = Compression.parse(compression) if isinstance(compression, str) else compression
        self.compression = compression
        self.encrypted = bool(recipients)
        self._stored = HashingWriter(sink)
        self._stages: list = []  # innermost (nearest the sink) first; `close` ends them in reverse
        stream: Sink = self._stored
        if recipients:
            self._age: AgeWriter | None = AgeWriter(stream, recipients)
            stream = self._age
            self._stages.append(self._age)
        else:
            self._age = None
        level = compression.effective_level
        if compression.kind == ZSTD:
            stream = ZstdWriter(stream, level, zstd_threads)
            self._stages.append(stream)
        elif compression.kind == GZIP:
            stream = GzipWriter(stream, level)
            self._stages.append(stream)
        # Stored bytes that are the content (no stage) are hashed once: both digests are the same.
        self._content = HashingWriter(stream) if self._stages else self._stored
        self._buffer = bytearray()
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed pipeline")
        if len(data) >= BLOCK and not self._buffer:
            self._content.write(data)
        else:
            self._buffer += data
            if len(self._buffer) >= BLOCK:
                self._flush_buffer()
        return len(data)

    def _flush_buffer(self) -> None:
        if self._buffer:
            self._content.write(bytes(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        """Push out everything buffered and end every stage, outermost first."""
        if self._closed:
            return
        self._flush_buffer()
        for stage in reversed(self._stages):
            stage.close()
        self._closed = True

    def abort(self) -> None:
        self._closed = True
        self._buffer.clear()
        if self._age is not None:
            self._age.abort()

    def __enter__(self) -> WritePipeline:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.abort()
        else:
            self.close()

    @property
    def content_sha256(self) -> str:
        return self._content.sha256

    @property
    def content_bytes(self) -> int:
        return self._content.size + len(self._buffer)  # what was written so far, buffered bytes included

    @property
    def sha256(self) -> str:
        return self._stored.sha256

    @property
    def size_bytes(self) -> int:
        return self._stored.size

    def digests(self) -> StreamDigests:
        return StreamDigests(self.sha256, self.size_bytes, self.content_sha256, self.content_bytes)


# ---- read side ----------------------------------------------------------------------------------

class HashingReader(io.RawIOBase):
    """Counts and hashes what is read from `source`."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._source.read(-1 if size is None else size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if hasattr(self._source, "readinto"):
            count = self._source.readinto(buffer) or 0
        else:
            data = self._source.read(len(buffer))
            count = len(data)
            buffer[:count] = data
        self._hash.update(memoryview(buffer)[:count])
        self.size += count
        return count

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close_source(self) -> None:
        self._source.close()


class ReadPipeline(io.RawIOBase):
    """The plain content of a stored object: hash stored -> decrypt -> decompress -> hash content.

    With `encrypted`, the age header is checked here, in the constructor: a missing or wrong
    identity fails before the caller reads a byte. `finish` reads what is left and returns the
    digests, for the caller to compare with the manifest before it commits anything.
    """

    def __init__(self, source: BinaryIO, compression: Compression | str, encrypted: bool,
                 identities: list[str]) -> None:
        super().__init__()
        compression = Compression.of(compression)
        self._stored = HashingReader(source)
        self._age: AgeReader | None = None
        if not encrypted and compression.kind not in (ZSTD, GZIP):
            self._content = self._stored  # the stored bytes are the content: read and hashed once
            return
        stream: BinaryIO = io.BufferedReader(self._stored, BLOCK)  # pyrage reads 8 KiB at a time
        if encrypted:
            self._age = AgeReader(stream, identities)
            stream = self._age  # type: ignore[assignment]
        if compression.kind == ZSTD:
            stream = ZstdReader(stream)  # type: ignore[assignment]
        elif compression.kind == GZIP:
            stream = GzipReader(stream)  # type: ignore[assignment]
        self._content = HashingReader(stream)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self._content.read(BLOCK):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._content.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._content.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> StreamDigests:
        """Read to the end of the content and of the stored bytes; the four digests."""
        while self._content.read(BLOCK):
            pass
        while self._stored.read(BLOCK):
            pass  # bytes after the end of the content (none in a well-formed object) count too
        return StreamDigests(self._stored.sha256, self._stored.size, self._content.sha256, self._content.size)

    def close(self) -> None:
        """Stop reading: the age thread ends and the stored object's stream is closed. (Call
        `finish` first when the digests matter.)"""
        if not self.closed:
            if self._age is not None:
                self._age.close()
            self._stored.close_source()
        super().close()
