"""age encryption as stream stages, and the loading of recipients and identities.

pyrage streams (`encrypt_io`, `decrypt_io` copy a reader into a writer in 64 KiB age chunks,
releasing the GIL for the crypto), but it owns the loop: it pulls from a reader until EOF. Our
pipelines are push on the write side (a dump writes into us) and pull on the read side (a restore
reads from us), so each age stage runs pyrage on a thread of its own, joined to the pipeline by a
small bounded channel. Memory stays at the channel's capacity plus one chunk whatever the size.

Secrets: identities are never logged, echoed in an error or shown by `repr`; errors name the
setting (`BACKUP_ENCRYPTION_IDENTITY_FILE`) and a line number, never a key.
"""

from __future__ import annotations

import collections
import functools
import io
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import pyrage

from backup_engine import errors
from backup_engine.storage.compression import Sink

CHANNEL_CAPACITY = 1 << 20
MAX_IDENTITY_FILE = 1 << 20
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"


class Identities(list[str]):
    """AGE-SECRET-KEY lines; a list whose repr never shows them (tracebacks with locals, Sentry)."""

    def __repr__(self) -> str:
        return f"Identities(<{len(self)} hidden>)"

    __str__ = __repr__


def parse_recipients(value: str | None) -> list[str]:
    """`BACKUP_ENCRYPTION_RECIPIENTS` as a checked list of age1… keys (empty: no encryption)."""
    keys: list[str] = []
    for number, item in enumerate((value or "").split(","), start=1):
        key = item.strip()
        if not key:
            continue
        if key.upper().startswith("AGE-SECRET-KEY-"):
            raise errors.ConfigError(errors.RECIPIENT_INVALID,
                                     f"item {number} is a secret key; list only public keys (age1...) here")
        if not key.startswith(RECIPIENT_PREFIX):
            raise errors.ConfigError(errors.RECIPIENT_INVALID, f"item {number} does not start with age1")
        try:
            pyrage.x25519.Recipient.from_str(key)
        except pyrage.RecipientError as exc:
            raise errors.ConfigError(errors.RECIPIENT_INVALID, f"item {number} ({key[:12]}...): {exc}") from None
        if key not in keys:
            keys.append(key)
    return keys


def load_identities(path: str | Path | None) -> Identities:
    """The identities of an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments, blank
    lines); empty when `path` is unset. Errors name the file and a line, never its content."""
    if not path:
        return Identities()
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_IDENTITY_FILE + 1)
    except OSError as exc:
        raise errors.ConfigError(errors.IDENTITY_FILE_INVALID, f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_IDENTITY_FILE:
        raise errors.ConfigError(errors.IDENTITY_FILE_INVALID, f"{path}: larger than {MAX_IDENTITY_FILE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.ConfigError(errors.IDENTITY_FILE_INVALID, f"{path}: not UTF-8 text") from None
    found = Identities()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.upper().startswith(IDENTITY_PREFIX):
            raise errors.ConfigError(errors.IDENTITY_FILE_INVALID,
                                     f"{path}: line {number} is not an X25519 identity (AGE-SECRET-KEY-1...)")
        try:
            pyrage.x25519.Identity.from_str(line)
        except pyrage.IdentityError:
            raise errors.ConfigError(errors.IDENTITY_FILE_INVALID, f"{path}: line {number} is malformed") from None
        found.append(line)
    if not found:
        raise errors.ConfigError(errors.IDENTITY_FILE_INVALID, f"{path}: no identity in the file")
    return found


def public_keys(identities: Iterable[str]) -> list[str]:
    """The age1… recipients of some identities (to tell whether a manifest's recipients are ours)."""
    return [str(pyrage.x25519.Identity.from_str(identity).to_public()) for identity in identities]


def is_age(head: bytes) -> bool:
    """Whether bytes start like an age file (binary or armored)."""
    return head.startswith(AGE_MAGIC) or head.lstrip().startswith(AGE_ARMOR_MAGIC)


class _Stopped(Exception):
    """The other side of a channel gave up; carries nothing, the other side knows why."""


class _Channel:
    """A bounded FIFO of bytes between one producer thread and one consumer thread."""

    def __init__(self, capacity: int = CHANNEL_CAPACITY) -> None:
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._buffered = 0
        self._capacity = capacity
        self._closed = False
        self._failed = False
        self._cond = threading.Condition()

    def put(self, data: bytes | bytearray | memoryview) -> None:
        """Blocks while the channel is full; raises `_Stopped` once the consumer has failed."""
        if not data:
            return
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        with self._cond:
            while self._buffered >= self._capacity and not self._failed:
                self._cond.wait()
            if self._failed:
                raise _Stopped
            self._chunks.append(view)
            self._buffered += len(view)
            self._cond.notify_all()

    def get(self, size: int) -> bytes:
        """Up to `size` bytes, blocking until some arrive; b"" at the end; `_Stopped` on failure."""
        with self._cond:
            while not self._chunks and not self._closed and not self._failed:
                self._cond.wait()
            if self._failed:
                raise _Stopped
            pieces, wanted = [], self._buffered if size < 0 else size
            while self._chunks and wanted > 0:  # gathers pyrage's 8 KiB pieces into one read
                head = self._chunks[0]
                if wanted >= len(head):
                    pieces.append(self._chunks.popleft())
                else:
                    pieces.append(head[:wanted])
                    self._chunks[0] = head[wanted:]
                wanted -= len(pieces[-1])
            self._buffered -= sum(len(piece) for piece in pieces)
            self._cond.notify_all()
        return b"".join(pieces)

    def wait_ready(self) -> None:
        """Block until there is data, the end, or a failure."""
        with self._cond:
            while not self._chunks and not self._closed and not self._failed:
                self._cond.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def fail(self) -> None:
        with self._cond:
            self._failed = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()


class _ChannelReader:
    """What pyrage reads from: the channel's consumer end."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def read(self, size: int = -1) -> bytes:
        return self._channel.get(size)


class _Relay:
    """What pyrage writes to: forwards to a sink, and remembers the sink's own exception."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._sink.write(data)
        except BaseException as exc:
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        pass


class _SourceRelay:
    """What pyrage reads from on the read side: the stored bytes, remembering the source's error."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._source.read(size)
        except BaseException as exc:
            self.error = exc
            raise


class _Job:
    """pyrage's copy loop on a thread of its own. It holds no reference to the stage that owns
    it, so a stage dropped without `close` is still collected, and its finalizer stops the thread."""

    def __init__(self, name: str, work: Callable[[], object], channel: _Channel,
                 on_error: Callable[[BaseException], BaseException]) -> None:
        self.channel = channel
        self.error: BaseException | None = None
        self._work, self._on_error = work, on_error
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # noqa: BLE001 - handed to the pipeline's thread, which raises it
            self.error = self._on_error(exc)
            self.channel.fail()
        else:
            self.channel.close()


class AgeWriter:
    """Encrypts what is written to it to every recipient and writes the age file to `sink`.

    pyrage runs on a thread that calls `sink.write`; `close` waits for it and re-raises the
    sink's own exception (a store error stays a store error). `abort` stops it without ever
    writing the final chunk, so an aborted stream can never decrypt as a complete one.
    """

    def __init__(self, sink: Sink, recipients: list[str]) -> None:
        if not recipients:
            raise errors.ConfigError(errors.RECIPIENT_INVALID, "no recipient to encrypt to")
        keys = [pyrage.x25519.Recipient.from_str(key) for key in recipients]
        channel, relay = _Channel(), _Relay(sink)
        self._job = _Job("age-encrypt", functools.partial(pyrage.encrypt_io, _ChannelReader(channel), relay, keys),
                         channel, lambda exc: relay.error or exc)
        weakref.finalize(self, channel.fail)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            self._job.channel.put(data)
        except _Stopped:
            self._raise()
        return len(data)

    def close(self) -> None:
        self._job.channel.close()
        self._job.thread.join()
        if self._job.error is not None:
            self._raise()

    def abort(self) -> None:
        self._job.channel.fail()
        self._job.thread.join()

    def _raise(self) -> None:
        self._job.thread.join()
        exc = self._job.error
        if exc is None:
            raise errors.WriteFailed(errors.ENCRYPTION_FAILED, "the stream was aborted")
        if isinstance(exc, errors.BackupError | OSError):
            raise exc
        raise errors.WriteFailed(errors.ENCRYPTION_FAILED, type(exc).__name__) from exc


class AgeReader(io.RawIOBase):
    """The plain bytes of an age stream read from `source`.

    The header is checked in the constructor: a missing or wrong identity fails here, before
    the caller has seen a byte. Payload chunks are authenticated one by one, so a truncated or
    tampered file fails at the damaged chunk, after earlier authentic chunks were delivered:
    callers commit only after the pipeline's `finish` (and the manifest's digests) agree.
    """

    def __init__(self, source: BinaryIO, identities: list[str]) -> None:
        super().__init__()
        if not identities:
            raise errors.ConfigError(errors.IDENTITY_MISSING)
        keys = [pyrage.x25519.Identity.from_str(identity) for identity in identities]
        channel, relay = _Channel(), _SourceRelay(source)
        self._job = _Job("age-decrypt", functools.partial(pyrage.decrypt_io, relay, _ChannelWriter(channel), keys),
                         channel, lambda exc: relay.error or _decrypt_error(exc))
        weakref.finalize(self, channel.fail)
        channel.wait_ready()
        self._check()

    def _check(self) -> None:
        if self._job.error is not None:
            self._job.thread.join()
            raise self._job.error

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._job.channel.get(-1 if size is None else size)
        except _Stopped:
            self._check()
            raise errors.ArtifactError(errors.ENCRYPTED_DATA_CORRUPT, "decryption stopped") from None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._job.channel.fail()  # wakes the thread if it waits to hand us more
            self._job.thread.join()
        super().close()


class _ChannelWriter:
    """What pyrage writes plain bytes to on the read side: the channel's producer end."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def write(self, data: bytes) -> int:
        self._channel.put(data)
        return len(data)

    def flush(self) -> None:
        pass


def _decrypt_error(exc: BaseException) -> BaseException:
    """pyrage's errors as the engine's: a key that does not match names the setting."""
    text = str(exc)
    if isinstance(exc, pyrage.DecryptError) and "no matching keys" in text.lower():
        return errors.ConfigError(errors.IDENTITY_MISMATCH)
    if isinstance(exc, pyrage.DecryptError | OSError):
        return errors.ArtifactError(errors.ENCRYPTED_DATA_CORRUPT, text[:200])
    if isinstance(exc, _Stopped):
        return errors.ArtifactError(errors.ENCRYPTED_DATA_CORRUPT, "reader closed")
    return exc
