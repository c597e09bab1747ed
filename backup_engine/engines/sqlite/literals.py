"""Python values as SQLite literals: the one place where a value becomes SQLite SQL.

`SqliteLiterals.literal(value)` renders by storage class (NULL, INTEGER, REAL, TEXT, BLOB).
REALs are checked against SQLite's own parser and fall back to an exact mantissa-times-power-
of-two expression where the decimal text would not read back to the same double.
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

from backup_engine.formats.values import RawText


def quote_string(value: str) -> str:
    """A standard SQL string literal: quotes doubled, backslashes literal."""
    return "'" + value.replace("'", "''") + "'"


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
