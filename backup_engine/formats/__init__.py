"""The backup formats, registered once: what each is called, its file extension, whether it
restores, and whether the store compresses it.

Which engine writes which format is the engine's to say (`Engine.formats`); this table is the
only place a format's extension or nature is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from backup_engine import errors


@dataclass(frozen=True)
class Format:
    name: str
    extension: str
    restorable: bool  # restores (a JSON backup through conversion to SQL first)
    compressible: bool = True  # a zip is not compressed again
    description: str = ""


FORMATS = {
    "sql": Format("sql", "sql", True, description="restorable SQL (native tool or SQLAlchemy fallback)"),
    "json": Format("json", "json", True, description="schema and data, converted to SQL for a restore"),
    "csv": Format("csv", "zip", False, compressible=False, description="a zip of one CSV per table, export only"),
    "sqlite": Format("sqlite", "sqlite3", True, description="SQLite's binary snapshot (online backup API)"),
    "pgdump": Format("pgdump", "pgdump", True,
                     description="pg_dump's directory archive as one tar stream, dumped and restored by parallel jobs"),
}


def format_named(name: object) -> Format:
    if not isinstance(name, str) or name not in FORMATS:
        raise errors.InvalidRequest(errors.UNKNOWN_FORMAT, f"{name!r} (choose from {', '.join(FORMATS)})")
    return FORMATS[name]


def format_of_file(name: str) -> Format | None:
    """The format a backup's file name says, looking through compression and encryption suffixes."""
    stem = name
    for suffix in (".age", ".zst", ".gz"):
        stem = stem.removesuffix(suffix)
    extension = stem.rsplit(".", 1)[-1]
    return next((fmt for fmt in FORMATS.values() if fmt.extension == extension), None)
