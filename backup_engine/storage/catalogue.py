"""The catalogue: backups and their signed manifests, over any store.

The first promise of the project lives here: a name is a backup only once its manifest exists,
and a manifest is written last, after its artifact is durable, signed, never over another one.
Every artifact passes through the stream stages on its way in (hash, compress, encrypt, hash)
and out (the reverse), so the manifest holds both the stored object's and the content's
checksums, and a reader can check either after a single pass.

Names are `{prefix}_db_backup_{YYYYMMDD_HHMMSS}[_N].{ext}[.zst|.gz][.age]`; a clash with any
existing object or manifest moves on to `_2`, `_3`, ... Nothing outside `storage/` ever holds a
backup's path: engines get byte sinks to write and `StoredArtifact`s to read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backup_engine import errors, scratch
from backup_engine.formats import Format
from backup_engine.scratch import private_folder
from backup_engine.storage.base import Store, check_object_name
from backup_engine.storage.compression import Compression, object_suffix
from backup_engine.storage.encryption import public_keys
from backup_engine.storage.stages import ReadPipeline, WritePipeline
from backup_engine.trust.manifest import MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, Manifest, Signer

NAME_INFIX = "_db_backup_"
TAIL_BYTES = 4096
BLOCK = 1 << 20
MAX_CLASHES = 10_000
ORPHAN_GRACE = timedelta(hours=24)  # an artifact without a manifest this long was left by a dead writer


def utc_now() -> datetime:
    return datetime.now(UTC)


def backup_stem(prefix: str, created_at: datetime) -> str:
    return f"{prefix}{NAME_INFIX}{created_at.astimezone(UTC):%Y%m%d_%H%M%S}"


def prefix_of(name: str) -> str | None:
    """The prefix a backup's name starts with (`appA` of `appA_db_backup_...`), or None."""
    return name.split(NAME_INFIX, 1)[0] if NAME_INFIX in name else None


@dataclass(frozen=True)
class Encryption:
    """Who new artifacts are encrypted to, and how to read encrypted ones."""

    recipients: tuple[str, ...] = ()
    identities: Callable[[], list[str]] | None = None  # loaded when first needed


@dataclass(frozen=True)
class Entry:
    """A backup as the catalogue found it: its manifest and whether that manifest is ours."""

    manifest: Manifest
    signed: bool  # the signature verifies with our key
    path: str  # where it is, to show (a local path, or the object's URL)
    companions: tuple[str, ...] = ()  # backups made with it (a JSON backup's `.sql` twin), named in its result

    @property
    def name(self) -> str:
        return self.manifest.backup_filename

    @property
    def trusted(self) -> bool:
        """Our own backup: signed by us and made by a worker (an upload stays an upload)."""
        return self.signed and self.manifest.origin == "worker"

    def as_result(self) -> dict[str, Any]:
        result = self.manifest.as_result(self.path)
        return {**result, "companions": list(self.companions)} if self.companions else result


@dataclass(frozen=True)
class Scope:
    """What one deployment sees of a store that others may share: the backups of its targets, named
    with its prefix (`BACKUP_FILE_PREFIX`, or when unset each target's own name)."""

    targets: frozenset[str]
    prefix: str | None = None

    def prefix_for(self, target: str) -> str:
        return self.prefix or target

    def owns_name(self, name: str) -> bool:
        prefix = prefix_of(name)
        return prefix == self.prefix if self.prefix else prefix in self.targets

    def owns(self, entry: Entry) -> bool:
        manifest = entry.manifest
        return (self.owns_name(entry.name) and manifest.target in self.targets
                and prefix_of(entry.name) == self.prefix_for(manifest.target)
                and manifest.prefix in ("", self.prefix_for(manifest.target)))


@dataclass
class Listing:
    """What a listing found: backups newest first, and manifests that could not be read."""

    entries: list[Entry] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (manifest name, reason)


class NewArtifact:
    """A backup being written: bytes in, through the stages, into a store writer; a manifest out."""

    def __init__(self, catalogue: Catalogue, names: Callable[[], Iterator[str]], compression: Compression,
                 prefix: str, created_at: datetime) -> None:
        self._catalogue = catalogue
        self._names = names
        self._compression = compression
        self.prefix = prefix
        self.created_at = created_at
        self._open()

    def _open(self) -> None:
        self._writer = self._catalogue.store.create(self._names())
        self._pipeline = WritePipeline(self._writer, self._compression, list(self._catalogue.encryption.recipients))
        self.tail = b""
        self.content_bytes = 0

    def write(self, data: bytes) -> int:
        self._pipeline.write(data)
        self.tail = (self.tail + data[-TAIL_BYTES:])[-TAIL_BYTES:]
        self.content_bytes += len(data)
        return len(data)

    def flush(self) -> None:
        """(Streams flush at close; here for callers that expect a file.)"""

    def restart(self) -> None:
        """Throw away what was written so far and start again (before a fallback)."""
        self.abort()
        self._open()

    def abort(self) -> None:
        """The stages stop first (their threads write into the store's writer), then the writer."""
        self._pipeline.abort()
        self._writer.abort()

    def publish(self, **fields: Any) -> Entry:
        """Commit the object, then write its signed manifest (`fields` plus what the stages
        measured), last; returns the backup."""
        self._pipeline.close()
        name = self._writer.commit()
        store = self._catalogue.store
        record = Manifest(**fields, backup_filename=name, prefix=self.prefix, created_at=self.created_at.isoformat(),
                          size_bytes=self._pipeline.size_bytes, sha256=self._pipeline.sha256,
                          content_sha256=self._pipeline.content_sha256, content_bytes=self._pipeline.content_bytes,
                          compression=self._compression.kind, encryption=self._catalogue.encryption_record(),
                          location=store.location(name), path=store.display_path(name))
        signed = record.signed(self._catalogue.signer)
        try:
            store.put(signed.manifest_name, signed.to_json())
        except BaseException:
            store.delete(name)
            raise
        return Entry(manifest=signed, signed=True, path=store.display_path(name))


class StoredArtifact:
    """A stored backup as an engine reads it (the `ArtifactSource` of `engines.base`)."""

    def __init__(self, catalogue: Catalogue, entry: Entry) -> None:
        self._catalogue = catalogue
        self.entry = entry
        self.name = entry.name
        self._pipeline: ReadPipeline | None = None

    def open(self) -> ReadPipeline:
        manifest = self.entry.manifest
        identities = self._catalogue.identities_for(manifest)
        self._pipeline = ReadPipeline(self._catalogue.store.open(self.name), Compression.of(manifest.compression),
                                      manifest.encryption is not None, identities)
        return self._pipeline

    def verify(self) -> None:
        """Before the stream is closed, once the content was read: it is exactly what the manifest
        describes (what was not read yet is read first)."""
        if self._pipeline is None:
            raise errors.ArtifactError(errors.CHECKSUM_MISMATCH, f"{self.name}: never read")
        self._catalogue.compare(self.entry.manifest, self._pipeline.finish())

    @contextmanager
    def local_file(self) -> Iterator[Path]:
        """The content, checked, in a private file of the scratch space; removed afterwards."""
        with private_folder(self._catalogue.store.scratch_dir) as folder:
            path = folder / "content"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as handle, self.open() as content:
                while block := content.read(BLOCK):
                    handle.write(block)
                self.verify()
            yield path


class Catalogue:
    """The backups of a store: write, find, read, list, delete."""

    def __init__(self, store: Store, signer: Signer, *, compression: Compression = Compression("none"),
                 encryption: Encryption = Encryption()) -> None:
        self.store = store
        self.signer = signer
        self.compression = compression
        self.encryption = encryption

    # --- writing ------------------------------------------------------------------------------
    def _candidate_names(self, stem: str, extension: str) -> Callable[[], Iterator[str]]:
        def names() -> Iterator[str]:
            for attempt in range(1, MAX_CLASHES):
                name = f"{stem}.{extension}" if attempt == 1 else f"{stem}_{attempt}.{extension}"
                if not self.store.exists(name) and not self.store.exists(name + MANIFEST_SUFFIX):
                    yield name

        return names

    @contextmanager
    def new_artifact(self, backup_format: Format, prefix: str, created_at: datetime) -> Iterator[NewArtifact]:
        """A new backup of `backup_format` named for `prefix` and `created_at`; thrown away unless
        published inside the block."""
        check_object_name(prefix, "file prefix")
        compression = self.compression if backup_format.compressible else Compression("none")
        extension = backup_format.extension + object_suffix(compression, bool(self.encryption.recipients))
        artifact = NewArtifact(self, self._candidate_names(backup_stem(prefix, created_at), extension), compression,
                               prefix, created_at.astimezone(UTC))
        try:
            yield artifact
        finally:
            artifact.abort()  # a no-op once published

    def encryption_record(self) -> dict[str, Any] | None:
        if not self.encryption.recipients:
            return None
        return {"scheme": "age", "recipients": list(self.encryption.recipients)}

    # --- reading ------------------------------------------------------------------------------
    def entry(self, name: object) -> Entry:
        """The backup called `name`, its manifest checked against the schema and its signature."""
        if isinstance(name, str) and name.endswith(MANIFEST_SUFFIX):
            raise errors.InvalidRequest(errors.BAD_FILENAME, "name the backup file, not its manifest")
        check_object_name(name)
        assert isinstance(name, str)
        self.store.stat(name)  # a plain object, never a link
        manifest_name = name + MANIFEST_SUFFIX
        try:
            self.store.stat(manifest_name)  # a link or a FIFO under a manifest's name is no manifest
        except errors.BackupError:
            raise errors.ArtifactError(errors.MANIFEST_MISSING, name) from None
        entry = self._read_entry(manifest_name)
        if entry.name != name:
            raise errors.ArtifactError(errors.MANIFEST_INVALID, f"{manifest_name} describes another file")
        return entry

    def _read_entry(self, manifest_name: str) -> Entry:
        data = self.store.read(manifest_name, MAX_MANIFEST_BYTES)
        try:
            record = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise errors.ArtifactError(errors.MANIFEST_INVALID, f"{manifest_name}: {str(exc)[:200]}") from None
        manifest = Manifest.from_dict(record)
        name = manifest.backup_filename
        if name + MANIFEST_SUFFIX != manifest_name:
            raise errors.ArtifactError(errors.MANIFEST_INVALID, f"{manifest_name} describes another file")
        return Entry(manifest=manifest, signed=self.signer.verifies(record), path=self.store.display_path(name))

    def source(self, entry: Entry) -> StoredArtifact:
        return StoredArtifact(self, entry)

    def checked(self, name: object) -> Entry:
        """The backup called `name`, after reading it whole and comparing it with its manifest."""
        entry = self.entry(name)
        self.check(entry)
        return entry

    def check(self, entry: Entry) -> None:
        """Read the stored object and compare its size and sha256 with the manifest (no decryption)."""
        size = 0
        digest = hashlib.sha256()
        with self.store.open(entry.name) as handle:
            while block := handle.read(BLOCK):
                digest.update(block)
                size += len(block)
        if size != entry.manifest.size_bytes or digest.hexdigest() != entry.manifest.sha256:
            raise errors.ArtifactError(errors.CHECKSUM_MISMATCH, entry.name)

    def compare(self, manifest: Manifest, digests: Any) -> None:
        content_sha = manifest.content_sha256 or manifest.sha256
        content_size = manifest.content_bytes if manifest.content_bytes is not None else manifest.size_bytes
        if (digests.sha256 != manifest.sha256 or digests.size_bytes != manifest.size_bytes
                or digests.content_sha256 != content_sha or digests.content_bytes != content_size):
            raise errors.ArtifactError(errors.CHECKSUM_MISMATCH, manifest.backup_filename)

    def identities_for(self, manifest: Manifest) -> list[str]:
        """The identities that open this backup; refused up front (before anything is touched) when
        this worker has none, or none of its identities is among the backup's recipients."""
        if manifest.encryption is None:
            return []
        if self.encryption.identities is None:
            raise errors.ArtifactError(errors.IDENTITY_MISSING, manifest.backup_filename)
        identities = self.encryption.identities()
        recipients = set((manifest.encryption or {}).get("recipients") or [])
        if recipients and not recipients & set(public_keys(identities)):
            raise errors.ArtifactError(errors.IDENTITY_MISMATCH, manifest.backup_filename)
        return identities

    def readable(self, entry: Entry) -> None:
        """Refuse now, not half-way, a backup this worker cannot read (no identity for it)."""
        self.identities_for(entry.manifest)

    def listing(self, *, scope: Scope | None = None, target: str | None = None) -> Listing:
        """The backups `scope` owns (and of `target`), newest first, and its manifests that are corrupt."""
        found = Listing()
        for info in self.store.list():
            if not info.name.endswith(MANIFEST_SUFFIX):
                continue
            name = info.name[: -len(MANIFEST_SUFFIX)]
            if scope is not None and not scope.owns_name(name):
                continue
            try:
                entry = self._read_entry(info.name)
            except errors.BackupError as exc:
                found.corrupt.append((info.name, str(exc)))
                continue
            try:
                self.store.stat(name)
            except errors.BackupError:
                continue  # no plain object under the name (a link, a deletion that stopped half-way)
            if (target is None or entry.manifest.target == target) and (scope is None or scope.owns(entry)):
                found.entries.append(entry)
        found.entries.sort(key=lambda e: (e.manifest.created, e.name), reverse=True)
        return found

    # --- removing -----------------------------------------------------------------------------
    def delete(self, name: str) -> None:
        """Manifest first: a backup half-deleted is then just an unlisted file, never a listed bad one."""
        self.store.delete(name + MANIFEST_SUFFIX)
        self.store.delete(name)

    def sweep(self, older_than: timedelta = ORPHAN_GRACE, scope: Scope | None = None) -> list[str]:
        """What dead writers left: temp files, incomplete uploads, scratch folders, and (for a
        `scope`) its artifacts that never got a manifest."""
        removed = self.store.sweep(older_than) + scratch.sweep(self.store.scratch_dir)
        return removed + (self.sweep_orphans(scope, older_than) if scope is not None else [])

    def sweep_orphans(self, scope: Scope, older_than: timedelta = ORPHAN_GRACE) -> list[str]:
        """Artifacts of `scope` that have had no manifest for longer than `older_than`.

        A writer publishes its artifact and then, a moment later, the manifest; one that died in
        between (kill -9, a full disk at the last write) leaves a complete object that is no backup:
        never listed, never restored, and removed here once the grace period shows nobody is about
        to describe it. Other deployments' objects, manifests and status records are left alone."""
        cutoff = utc_now() - older_than
        infos = list(self.store.list())
        described = {info.name[: -len(MANIFEST_SUFFIX)] for info in infos if info.name.endswith(MANIFEST_SUFFIX)}
        removed = []
        for info in infos:
            if (info.name.endswith(MANIFEST_SUFFIX) or info.name in described or NAME_INFIX not in info.name
                    or not scope.owns_name(info.name) or info.modified > cutoff):
                continue
            if self.store.exists(info.name + MANIFEST_SUFFIX):
                continue  # described since the listing
            self.store.delete(info.name)
            removed.append(info.name)
        return removed
