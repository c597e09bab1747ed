"""The Engine interface: what one database engine can do, and how.

As Alembic's `DefaultImpl` has one subclass per dialect, each engine package has one `Engine`
subclass, registered by URL scheme in `backup_engine.engines`. Capability attributes say what
it offers (its formats, what a safety backup uses); overridable methods do the work. Code
outside `engines/` never compares engine names: it asks the engine.

An engine is made for one target and works on it; the catalogue hands it byte sinks to dump
into and `ArtifactSource`s to restore from, so no engine ever sees where backups are stored.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult, Progress, no_progress
from backup_engine.formats.values import PortableDefault
from backup_engine.targets import Target

NOW_DEFAULTS = frozenset({"now()", "current_timestamp", "current_timestamp()", "localtimestamp",
                          "('now'::text)::timestamp"})
NUMBER_DEFAULT = re.compile(r"^\(?'?(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'?\)?(?:::[\w .\"]+)?$")
MAX_STATEMENT_BYTES = 64 * 1024 * 1024
TEXTUAL_KINDS = frozenset({"text", "enum", "uuid", "interval", "time", "timetz", "date", "timestamp", "timestamptz",
                           "json", "jsonb", "other", "any"})

if TYPE_CHECKING:
    from backup_engine.formats.json_document import JsonBackupReader
    from backup_engine.formats.model import DatabaseModel
    from backup_engine.formats.sql_script import CopyData, RowData, ScriptWriter


class ArtifactSource(Protocol):
    """A stored backup as its engine reads it: the plain content, checked against its manifest.

    `open()` streams the content; `verify()` (after the stream was read to its end) raises
    `ArtifactError(CHECKSUM_MISMATCH)` unless what was read matches the manifest, so a restore
    commits only after it returns. `local_file()` gives a verified plain copy in scratch space
    for engines whose tools need a real file.
    """

    name: str

    def open(self) -> BinaryIO: ...

    def verify(self) -> None: ...

    def local_file(self) -> AbstractContextManager[Path]: ...


@dataclass(frozen=True)
class RestoreRequest:
    """What a restore needs to know about the backup besides its bytes."""

    format: str
    include_data: str
    table_rows: Mapping[str, int]
    trusted: bool  # our own signed backup; anything else goes through the engine's upload gate
    object_counts: Mapping[str, int] = field(default_factory=dict)
    allow_superuser: bool = False  # an untrusted file may run with a superuser role (BACKUP_UPLOAD_ALLOW_SUPERUSER)
    max_statement_bytes: int = MAX_STATEMENT_BYTES  # the longest statement an untrusted file may hold
    # the script was written by this worker's converter (a signed manifest naming `converted_from`), from a
    # document whose schema the engine vetted when it was not ours: an engine without a gate for foreign SQL
    # (MySQL) restores such a script and refuses every other untrusted one
    converted: bool = False
    content_bytes: int | None = None  # the backup's plain size, when the manifest says it


Ready = Callable[[], None]


def no_wait() -> None:
    """The `ready` of a restore that waits for nothing (a drill; a restore without a safety backup)."""


@dataclass
class RestoreOutcome:
    """What the engine reports of a restore, merged into the task's result."""

    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadReport:
    """What an engine found in an uploaded file while checking it."""

    table_rows: dict[str, int] = field(default_factory=dict)
    include_data: str = "full"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TableMap:
    """How a table of a converted script is filled from a JSON document: its source tables and columns."""

    sources: list[str]  # document table keys (a merged partitioned table has several)
    columns: dict[str, str]  # script column -> document column
    kinds: dict[str, str]  # script column -> kind
    max_id: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, Any] = field(default_factory=dict)  # identity columns made from rowid aliases
    floor: int = 0  # sqlite_sequence position of an AUTOINCREMENT table


class Engine(ABC):
    """One database engine working on one target."""

    #: the engine's name, written into manifests as `dialect` ("postgresql")
    name: ClassVar[str]
    #: backup formats it writes, in the order the README lists them
    formats: ClassVar[tuple[str, ...]] = ("sql", "json", "csv")
    #: formats that restore into it without conversion (JSON always converts first)
    restore_formats: ClassVar[tuple[str, ...]] = ("sql",)
    #: the format of the safety backup taken before a destructive restore
    safety_format: ClassVar[str] = "sql"
    #: whether the safety backup may be taken while the restore is built (see `restore`'s `ready`)
    safety_backup_alongside: ClassVar[bool] = True
    #: the `method` a native sql dump records
    native_method: ClassVar[str]
    #: the message a refused restore starts with ("Unsupported backup format for PostgreSQL restore")
    unsupported_restore: ClassVar[str]

    def __init__(self, target: Target, tools: ClientTools = ClientTools(), scratch_dir: Path | None = None,
                 jobs: int | None = None) -> None:
        self.target = target
        self.tools = tools
        self._scratch_dir = scratch_dir
        self.jobs = jobs  # parallel jobs where the engine's tools take them (BACKUP_JOBS; None: its default)

    @property
    def scratch_dir(self) -> Path:
        """Where private scratch folders go (`backup_engine.scratch.private_folder`): the worker's
        backup folder, so a snapshot or a staging file never lands in a RAM-backed /tmp."""
        if self._scratch_dir is None:
            import tempfile

            self._scratch_dir = Path(tempfile.gettempdir())
        return self._scratch_dir

    @classmethod
    def warm_up(cls) -> None:
        """Import what this engine's methods import on first use (SQLAlchemy, pglast): a worker
        does it once at its start, so no task pays it; a `--local` run imports only what it uses."""
        return None

    @classmethod
    def check_url(cls, target: Target) -> None:
        """Refuse a URL this engine cannot work with (raise ConfigError); most take any of their scheme."""
        return None

    # --- backups -------------------------------------------------------------------------
    @abstractmethod
    def server_version(self) -> str:
        """The server's version (fails as TargetUnavailable when it cannot be reached)."""

    @abstractmethod
    def dump_native(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        """A `sql` dump with the engine's own tool; DumpError when the tool is missing, fails or
        writes an incomplete dump (which `auto` falls back from)."""

    @abstractmethod
    def dump_generated(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        """A `sql` dump written by the worker from SQLAlchemy reflection (no client tool)."""

    @abstractmethod
    def export_json(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        """The JSON document (formats.json_document) of the target."""

    def twin_alongside(self) -> bool:
        """Whether `export_json_with_twin` can make a JSON backup's `.sql` twin in the same pass
        (otherwise the twin is converted from the document afterwards)."""
        return False

    def export_json_with_twin(self, out: ByteSink, twin: ByteSink, include_data: str,
                              progress: Progress = no_progress) -> DumpResult:
        """The JSON document into `out` and, from the same snapshot, its `.sql` twin into `twin`
        (`result.twin`; `result.twin_failure` says why not, and the JSON stands on its own)."""
        raise NotImplementedError(f"{self.name} makes no twin alongside a JSON backup")

    @abstractmethod
    def export_csv(self, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
        """The CSV zip (formats.csv_zip) of the target."""

    def export_other(self, format: str, out: ByteSink, include_data: str,
                     progress: Progress = no_progress) -> DumpResult:
        """A format of this engine's own (a SQLite snapshot)."""
        raise errors.InvalidRequest(errors.UNKNOWN_FORMAT, format)

    @abstractmethod
    def script_complete(self, tail: bytes) -> bool:
        """Whether a script whose last bytes are `tail` ends as a complete dump (its end marker)."""

    # --- restores ------------------------------------------------------------------------
    @abstractmethod
    def exists(self) -> bool:
        """Whether the target holds a database yet (no safety backup of nothing)."""

    @abstractmethod
    def restore(self, source: ArtifactSource, request: RestoreRequest,
                progress: Progress = no_progress, ready: Ready = no_wait) -> RestoreOutcome:
        """Make the target hold exactly what the backup holds, all or nothing.

        `ready` is called once, just before the target is first changed (the swap of what was
        built beside it, or the start of a load into it); the restore waits for it, and stops
        there, the target untouched, when it raises. The safety backup runs meanwhile."""

    @abstractmethod
    def drill(self, source: ArtifactSource, request: RestoreRequest) -> dict[str, int]:
        """Restore into a scratch database made for the purpose; return its row counts per table."""

    def check_restorable(self, format: str, dialect: str | None) -> None:
        """Refuse a backup that cannot restore into this engine, saying why."""
        if format == "json":
            return  # converted for this engine first, whatever its source
        if format == "csv":
            raise errors.InvalidRequest(self.unsupported_restore, "CSV backups are export only")
        if format not in self.restore_formats:
            raise errors.InvalidRequest(self.unsupported_restore, f"format {format!r}")
        if dialect != self.name:
            raise errors.InvalidRequest(
                self.unsupported_restore, f"SQL written for {dialect}; restore its JSON backup across engines")

    # --- uploads ---------------------------------------------------------------------------
    @abstractmethod
    def check_upload(self, stream: BinaryIO, format: str, max_statement_bytes: int = MAX_STATEMENT_BYTES
                     ) -> UploadReport:
        """Read an uploaded file through the engine's gate without running it; refuse what may
        not run (InvalidRequest) and report its tables and rows."""

    def sniff_upload(self, head: bytes) -> str | None:
        """A format of this engine's own recognised from the first bytes (a SQLite file), or None."""
        return None

    # --- JSON conversion into this engine ---------------------------------------------------
    @classmethod
    @abstractmethod
    def script_writer(cls, out: ByteSink, model: DatabaseModel, progress: Progress = no_progress) -> ScriptWriter:
        """The engine's script writer for `model` (conversions from JSON)."""

    @classmethod
    @abstractmethod
    def column_type(cls, kind: str, source_type: str, sole_key: bool) -> str:
        """The nearest faithful column type for a portable kind from another engine (`sole_key`:
        the column is the table's whole primary key)."""

    @classmethod
    @abstractmethod
    def sql_dialect(cls) -> Any:
        """The SQLAlchemy dialect this engine's scripts are compiled with."""

    #: a converted table keeps its comments
    carries_comments: ClassVar[bool] = False
    #: a converted table left without columns is skipped
    skips_empty_tables: ClassVar[bool] = False
    #: an integer key that was another engine's rowid alias becomes an identity column
    identity_for_rowid_alias: ClassVar[bool] = False
    #: this engine's JSON documents write each value by its own storage class (no kind needed)
    natural_json: ClassVar[bool] = False

    #: a string default as this engine writes it (`'x'`, `'x'::text`): group 1 is the content
    string_default: ClassVar[re.Pattern[str]] = re.compile(r"^'((?:[^']|'')*)'$")
    #: how this engine writes true and false
    boolean_literals: ClassVar[tuple[str, str]] = ("true", "false")

    @classmethod
    def portable_default(cls, text: str | None) -> PortableDefault | None:
        """One of this engine's column defaults as a portable one, or None where there is none."""
        if text is None:
            return None
        value = text.strip()
        lowered = value.lower()
        if lowered == "null" or "[]" in value:
            return None
        if lowered in NOW_DEFAULTS:
            return PortableDefault("now")
        if lowered in ("true", "false"):
            return PortableDefault("boolean", lowered)
        number = NUMBER_DEFAULT.match(value)
        if number:
            return PortableDefault("number", number.group(1))
        string = cls.string_default.match(value)
        if string:
            return PortableDefault("string", string.group(1))
        return None

    @classmethod
    def render_default(cls, default: PortableDefault | None, kind: str) -> str | None:
        """A portable default as this engine's SQL for a column of `kind`, or None (left out)."""
        if default is None:
            return None
        if default.kind == "now":
            return "CURRENT_TIMESTAMP" if kind in ("timestamp", "timestamptz", "any", "text") else None
        true, false = cls.boolean_literals
        if default.kind == "boolean":
            return (true if default.text == "true" else false) if kind == "boolean" else None
        if default.kind == "number":
            if kind == "boolean" and default.text in ("0", "1"):
                return true if default.text == "1" else false
            return default.text if kind in ("integer", "float", "numeric", "any") else None
        if default.kind == "string" and kind in TEXTUAL_KINDS:
            return f"'{default.text}'"
        return None

    @classmethod
    @abstractmethod
    def place_table(cls, schema: str | None, name: str) -> tuple[str | None, str]:
        """Where a table of another engine goes (schema, name)."""

    @classmethod
    @abstractmethod
    def json_rows(cls, reader: JsonBackupReader, mapping: TableMap, columns: list[str],
                  natural: bool) -> CopyData | RowData:
        """A converted table's rows, from the document, in the form the script writer takes
        (`natural`: the document's values carry their own storage class)."""

    @classmethod
    def vet_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        """An untrusted JSON document's schema made safe to write a script from (SQL fragments
        parsed, checked and rendered by the engine), or refused. By default the engine's restore
        of untrusted scripts is the only check."""
        return schema

    # --- one operation at a time ------------------------------------------------------------
    @abstractmethod
    def exclusive(self, namespace: str, wait_s: float) -> AbstractContextManager[None]:
        """Hold the target's lock for the block, waiting up to `wait_s` (then TargetBusy). It holds
        across workers and is released the moment its holder dies: a kill -9 costs no wait."""

    # --- scratch databases ------------------------------------------------------------------
    def sweep(self) -> list[str]:
        """Remove what restores killed mid-way left on the server (scratch databases)."""
        return []
