"""Value types every format shares."""

from __future__ import annotations

from dataclasses import dataclass


class RawText(bytes):
    """A TEXT value that is not valid UTF-8, kept as its bytes (SQLite lets a file hold one)."""


def decode_text(data: bytes) -> str | RawText:
    """A `text_factory` for sqlite3 that never fails: invalid UTF-8 stays bytes, marked as text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return RawText(data)


@dataclass(frozen=True)
class PortableDefault:
    """A column default that means the same in every engine: the time of the insert, a boolean,
    a number, or a string (its content as it stands between single quotes, quotes doubled)."""

    kind: str  # "now", "boolean", "number", "string"
    text: str = ""
