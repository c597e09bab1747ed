"""The manifest: what a backup is, as a frozen, versioned, signed record.

A manifest is written last, beside its artifact (`{file}.meta.json`): no manifest, no backup.
Its fields are typed here once; `from_dict` reads one against this schema (with a size cap on
the text, applied by the catalogue) and refuses anything else with a reason, so one bad
manifest is listed as corrupt and never crashes a listing.

Trust is the signature: HMAC-SHA256 with `BACKUP_SIGNING_KEY` over the canonical JSON of the
manifest without `signature`, so `origin` (worker or upload) is covered like every other field.
An unsigned or wrongly signed manifest is never trusted: its file is restored only through the
upload gate, like any upload. Unknown fields of a newer version are kept, and signed, as read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from backup_engine import errors

MANIFEST_VERSION = 2
MANIFEST_SUFFIX = ".meta.json"
MAX_MANIFEST_BYTES = 1 << 20
ORIGINS = ("worker", "upload")
SIGNATURE = "signature"
ISO_FORMAT_HINT = "an ISO 8601 time with its UTC offset"


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps({k: v for k, v in record.items() if k != SIGNATURE}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode("ascii")


class Signer:
    """Signs and checks manifests with one secret shared by every worker of a store."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise errors.ConfigError(errors.CONFIG_INVALID, "BACKUP_SIGNING_KEY: at least 16 bytes")
        self._key = key

    def sign(self, record: Mapping[str, Any]) -> str:
        return hmac.new(self._key, canonical(record), hashlib.sha256).hexdigest()

    def verifies(self, record: Mapping[str, Any]) -> bool:
        signature = record.get(SIGNATURE)
        if not isinstance(signature, str):
            return False
        try:
            expected = self.sign(record)
        except (TypeError, ValueError):
            return False
        return hmac.compare_digest(signature, expected)

    def __repr__(self) -> str:
        return "Signer(***)"


def parse_time(value: object) -> datetime:
    """A manifest's time: ISO 8601 text with an offset, as UTC; anything else is refused."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"created_at must be {ISO_FORMAT_HINT}")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"created_at must be {ISO_FORMAT_HINT}")
    return moment.astimezone(UTC)


def _check(name: str, value: object, kinds: tuple[type, ...], optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError(f"{name} has the wrong type (bool)")
    if not isinstance(value, kinds):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} is not a finite number")


def _count_map(name: str, value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object of counts")
    for key, count in value.items():
        if not isinstance(key, str) or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name} must map names to counts")
    return dict(value)


def _names(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} must be a list of names")
    return tuple(value)


@dataclass(frozen=True)
class Manifest:
    """One backup's record. Field names are the public contract (README, task results)."""

    backup_filename: str
    format: str
    target: str
    dialect: str
    method: str
    include_data: str
    created_at: str
    size_bytes: int
    sha256: str
    prefix: str = ""
    origin: str = "worker"
    content_sha256: str | None = None
    content_bytes: int | None = None
    compression: str = "none"
    encryption: dict[str, Any] | None = None
    location: str | None = None
    path: str | None = None  # where the writer saw it (a local path, or `location`); results show the reader's
    server_version: str | None = None
    duration_s: float = 0.0
    tables: int | None = None
    rows: int | None = None
    table_rows: dict[str, int] = field(default_factory=dict)
    object_counts: dict[str, int] = field(default_factory=dict)
    not_carried: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    fallback_reason: str | None = None
    converted_from: str | None = None
    source_dialect: str | None = None
    purpose: str | None = None
    imported_from: str | None = None
    manifest_version: int = MANIFEST_VERSION
    signature: str | None = None
    unknown: dict[str, Any] = field(default_factory=dict)  # fields of a newer version, kept as read

    # --- reading ---------------------------------------------------------------------------
    _TYPES = {
        "backup_filename": (str,), "format": (str,), "target": (str,), "dialect": (str,), "method": (str,),
        "include_data": (str,), "created_at": (str,), "size_bytes": (int,), "sha256": (str,), "prefix": (str,),
        "origin": (str,), "content_sha256": (str,), "content_bytes": (int,), "compression": (str,),
        "encryption": (dict,), "location": (str,), "path": (str,), "server_version": (str,), "duration_s": (int, float),
        "tables": (int,), "rows": (int,), "fallback_reason": (str,), "converted_from": (str,),
        "source_dialect": (str,), "purpose": (str,), "imported_from": (str,), "manifest_version": (int,),
        "signature": (str,),
    }
    _REQUIRED = ("backup_filename", "format", "target", "created_at", "size_bytes", "sha256")

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """A manifest read from a file: checked field by field against the schema.

        Raises ArtifactError(MANIFEST_INVALID) naming the first field that is wrong.
        """
        try:
            return cls._from_dict(data)
        except (ValueError, TypeError, OverflowError) as exc:
            raise errors.ArtifactError(errors.MANIFEST_INVALID, str(exc)[:200]) from None

    @classmethod
    def _from_dict(cls, data: object) -> Manifest:
        if not isinstance(data, dict):
            raise ValueError("a manifest is a JSON object")
        for name in cls._REQUIRED:
            if name not in data:
                raise ValueError(f"{name} is missing")
        known = {f.name for f in fields(cls)} - {"unknown"}
        values: dict[str, Any] = {}
        for name, kinds in cls._TYPES.items():
            if name in data:
                _check(name, data[name], kinds, optional=name not in cls._REQUIRED)
                if data[name] is not None:
                    values[name] = data[name]
        values.setdefault("dialect", "")
        values.setdefault("method", "")
        values.setdefault("include_data", "full")
        parse_time(values["created_at"])
        if values.get("origin", "worker") not in ORIGINS:
            raise ValueError(f"origin must be one of {', '.join(ORIGINS)}")
        for name in ("size_bytes", "content_bytes", "tables", "rows"):
            if values.get(name) is not None and values[name] < 0:
                raise ValueError(f"{name} is negative")
        if "table_rows" in data and data["table_rows"] is not None:
            values["table_rows"] = _count_map("table_rows", data["table_rows"])
        if "object_counts" in data and data["object_counts"] is not None:
            values["object_counts"] = _count_map("object_counts", data["object_counts"])
        for name in ("not_carried", "companions"):
            if name in data and data[name] is not None:
                values[name] = _names(name, data[name])
        values["unknown"] = {key: value for key, value in data.items() if key not in known}
        return cls(**values)

    # --- writing ---------------------------------------------------------------------------
    def stored(self) -> dict[str, Any]:
        """The manifest as written to its file (signature included, unknown fields kept)."""
        record = {key: value for key, value in asdict(self).items() if key != "unknown"}
        record["not_carried"] = list(self.not_carried)
        record["companions"] = list(self.companions)
        record = {key: value for key, value in record.items() if value is not None and value != [] and value != {}
                  or key == "table_rows"}
        return {**self.unknown, **record}

    def signed(self, signer: Signer) -> Manifest:
        from dataclasses import replace

        unsigned = replace(self, signature=None)
        return replace(unsigned, signature=signer.sign(unsigned.stored()))

    def to_json(self) -> bytes:
        return (json.dumps(self.stored(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
                + "\n").encode("utf-8")

    def as_result(self, path: str | None = None) -> dict[str, Any]:
        """The manifest dict a task returns: the stored fields, `path` as the reader sees it."""
        record = self.stored()
        record["path"] = path if path is not None else (self.path or self.location)
        return record

    @property
    def created(self) -> datetime:
        return parse_time(self.created_at)

    @property
    def manifest_name(self) -> str:
        return self.backup_filename + MANIFEST_SUFFIX
