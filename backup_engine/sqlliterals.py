"""Python values as SQL text: the one place where a value is turned into SQL.

Three renderings, each tested type by type against the real database:

- `pg_literal(value, kind)`: a PostgreSQL literal for an INSERT or a DDL statement, written
  for `standard_conforming_strings = on` (which every script of ours sets first);
- `pg_copy_field(value, kind)` / `pg_copy_row(values, kinds)`: a field / a line of
  `COPY ... FROM stdin` text format (what a JSON-to-SQL conversion streams into COPY blocks);
- `SqliteLiterals.literal(value)`: a SQLite literal by storage class (NULL, INTEGER, REAL,
  TEXT, BLOB). REALs are checked against SQLite's own parser and fall back to an exact
  mantissa-times-power-of-two expression where the decimal text would not read back to the
  same double.

`kind` says how to read a list or dict where the type alone is ambiguous: `"json"` (the
value is a JSON document) or `"array"` (a PostgreSQL array); by default a dict is JSON and a
list is an array.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

JSON = "json"
ARRAY = "array"

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


class RawText(bytes):
    """A TEXT value that is not valid UTF-8, kept as its bytes (SQLite only)."""


def decode_sqlite_text(data: bytes) -> str | RawText:
    """A `text_factory` for sqlite3 that never fails: invalid UTF-8 stays bytes, marked as text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return RawText(data)


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    return value


def quote_string(value: str) -> str:
    """A standard SQL string literal: quotes doubled, backslashes literal."""
    return "'" + value.replace("'", "''") + "'"


def pg_string(value: str) -> str:
    return quote_string(_check_text(value))


# --- text forms shared by literals and COPY ------------------------------------------------------
def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _decimal_text(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    return str(value)


def _interval_text(value: dt.timedelta) -> str:
    return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"


def _datetime_text(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_element(item) for item in value) + "}"
    text = pg_text(value, kind=JSON if isinstance(value, dict) else None)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_array_text(values: Sequence[Any]) -> str:
    """The text form of a PostgreSQL array (`{...}`), every element double-quoted."""
    return "{" + ",".join(_array_element(item) for item in values) + "}"


def pg_text(value: Any, kind: str | None = None) -> str:
    """The text PostgreSQL's input function of the column's type reads back as `value`."""
    if kind == JSON:  # any Python value is a JSON document here, a str included
        return _check_text(json.dumps(value, ensure_ascii=False, allow_nan=False))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, str):
        return _check_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return _datetime_text(value)
    if isinstance(value, dt.timedelta):
        return _interval_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return _check_text(json.dumps(value, ensure_ascii=False, allow_nan=False))
    if isinstance(value, list | tuple):
        return pg_array_text(value)
    raise TypeError(f"no PostgreSQL text form for {type(value).__name__}")


# --- PostgreSQL literals ---------------------------------------------------------------------------
def pg_literal(value: Any, kind: str | None = None) -> str:
    """A PostgreSQL literal for `value` (standard_conforming_strings on)."""
    if value is None:
        return "NULL"
    if kind == JSON:
        return quote_string(pg_text(value, kind))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Always through float8in: keeps -0.0, NaN and the infinities exact.
        return f"{quote_string(_float_text(value))}::double precision"
    if isinstance(value, Decimal):
        if value.is_finite():
            return str(value)
        return f"{quote_string(_decimal_text(value))}::numeric"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{quote_string(pg_text(value))}::bytea"
    return quote_string(pg_text(value, kind))


def pg_copy_field(value: Any, kind: str | None = None) -> str:
    """One field of COPY's text format: `\\N` for NULL, backslash escapes for the rest."""
    if value is None:
        return "\\N"
    return pg_text(value, kind).translate(_COPY_ESCAPES)


def pg_copy_row(values: Iterable[Any], kinds: Sequence[str | None] | None = None) -> str:
    """One line of COPY text format, newline included."""
    if kinds is None:
        return "\t".join(pg_copy_field(value) for value in values) + "\n"
    return "\t".join(pg_copy_field(value, kind) for value, kind in zip(values, kinds, strict=True)) + "\n"


# --- SQLite literals -------------------------------------------------------------------------------
SQLITE_INFINITIES = {math.inf: "1e999", -math.inf: "-1e999"}  # overflow to ±Infinity: SQLite has no word for it


def sqlite_text(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: write the bytes they stand for
            return f"CAST(X'{value.encode('utf-8', 'surrogatepass').hex()}' AS TEXT)"
    if "\x00" in value:  # a NUL would end the statement early inside SQLite
        return f"CAST(X'{value.encode('utf-8').hex()}' AS TEXT)"
    return "'" + value.replace("'", "''") + "'"


def sqlite_raw_text(value: bytes) -> str:
    """TEXT that is not valid UTF-8, as its bytes."""
    return f"CAST(X'{value.hex()}' AS TEXT)"


def sqlite_blob(value: bytes) -> str:
    return f"X'{value.hex()}'"


def sqlite_exact_real(value: float) -> str:
    """An expression SQLite evaluates to exactly `value` (finite): mantissa times a power of two.

    Multiplying or dividing by a power of two is exact in binary floating point, so this never
    depends on how SQLite rounds decimal text (which some versions do not do exactly).
    """
    fraction, exponent = math.frexp(value)
    mantissa, exponent = int(fraction * (1 << 53)), exponent - 53
    if mantissa == 0:
        return "0.0" if math.copysign(1, value) > 0 else "-0.0"
    while mantissa % 2 == 0:
        mantissa //= 2
        exponent += 1
    text = f"CAST({mantissa} AS REAL)"
    while exponent:
        step = min(abs(exponent), 62)
        text += f"{'*' if exponent > 0 else '/'}{1 << step}"
        exponent -= step if exponent > 0 else -step
    return f"({text})"


class _ByType(dict):
    """Renderers by exact type; a type not listed goes to the fallback (one subscript per value)."""

    def __init__(self, fallback: Any, renderers: dict[type, Any]) -> None:
        super().__init__(renderers)
        self.fallback = fallback

    def __missing__(self, _key: type) -> Any:
        return self.fallback


class _RealCache(dict):
    """float -> its verified literal; a miss (a zero, NaN or a value not yet checked) asks `owner`."""

    def __init__(self, owner: SqliteLiterals) -> None:
        super().__init__(SQLITE_INFINITIES)
        self.owner = owner

    def __missing__(self, value: float) -> str:
        return self.owner.uncached_real(value)


class SqliteLiterals:
    """SQLite literals by storage class. REAL literals are verified with SQLite itself (a private
    in-memory connection of the same library a restore uses), in batches, and cached: repr()
    where SQLite reads it back to the same double, else the exact `sqlite_exact_real` form."""

    CACHE_LIMIT = 100_000
    CHECK_BATCH = 500

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:")
        self._reals = _RealCache(self)
        # The storage classes a SQLite row holds, by exact type (C-level callables where possible: this
        # runs once per value); other Python types by what they stand for.
        self._by_type = _ByType(self._other_literal, {
            type(None): "NULL".format,  # "NULL" whatever the argument
            int: str,
            float: self._reals.__getitem__,
            str: sqlite_text,
            bytes: sqlite_blob,
            RawText: sqlite_raw_text,
        })

    def close(self) -> None:
        self._conn.close()

    def prepare_reals(self, values: Iterable[float]) -> None:
        """Check the REALs about to be rendered, many per query (much faster than one by one).

        Zeros (whose sign a dict key loses) and NaN (stored as NULL) are never cached; see `real`.
        """
        known = self._reals
        pending = [v for v in set(values) if v == v and v != 0 and v not in known]
        if not pending:
            return
        if len(known) + len(pending) > self.CACHE_LIMIT:
            known.clear()
            known.update(SQLITE_INFINITIES)
        for start in range(0, len(pending), self.CHECK_BATCH):
            chunk = pending[start:start + self.CHECK_BATCH]
            texts = list(map(repr, chunk))  # finite, so always with a "." or an exponent: a REAL
            back = self._conn.execute("SELECT " + ",".join(texts)).fetchone()
            for value, text, parsed in zip(chunk, texts, back, strict=True):
                known[value] = text if type(parsed) is float and parsed == value else sqlite_exact_real(value)

    def real(self, value: float) -> str:
        return self._reals[value]

    def uncached_real(self, value: float) -> str:
        if math.isnan(value):
            return "NULL"  # SQLite stores NaN as NULL
        if value == 0:  # not through the cache: -0.0 and 0.0 are the same dict key
            return "0.0" if math.copysign(1, value) > 0 else "-0.0"
        self.prepare_reals([value])
        return self._reals[value]

    def literal(self, value: Any) -> str:
        return self._by_type[type(value)](value)

    def _other_literal(self, value: Any) -> str:
        """Values of other Python types (from JSON or a driver), by what they stand for."""
        if isinstance(value, bytearray | memoryview):
            return sqlite_blob(bytes(value))
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, float):
            return self.real(float(value))
        if isinstance(value, str):
            return sqlite_text(str(value))
        if isinstance(value, RawText):
            return sqlite_raw_text(value)
        if isinstance(value, bytes):
            return sqlite_blob(bytes(value))
        if isinstance(value, Decimal):
            return str(value) if value.is_finite() else ("NULL" if value.is_nan() else self.real(float(value)))
        if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta | uuid.UUID):
            return quote_string(str(value))
        if isinstance(value, dict | list | tuple):
            return sqlite_text(json.dumps(value, ensure_ascii=False, allow_nan=False))
        raise TypeError(f"no SQLite literal for {type(value).__name__}")

    def row(self, values: Sequence[Any]) -> str:
        """One row as a parenthesised list of literals."""
        return next(self.values_lists([values], 1))

    def values_lists(self, rows: Sequence[Sequence[Any]], per_list: int) -> Iterator[str]:
        """The VALUES lists of INSERTs of `per_list` rows each, one row a line; the REALs of all
        `rows` are checked in one go first."""
        self.prepare_reals([v for row in rows for v in row if type(v) is float])
        by_type = self._by_type
        for start in range(0, len(rows), per_list):
            yield ",\n".join(["(" + ",".join([by_type[type(v)](v) for v in row]) + ")"
                              for row in rows[start:start + per_list]])
