"""What information_schema and the SHOW statements say about one database: its tables and the
objects that are not tables (views, triggers, routines, events), as statements that create them again.

Every statement here is the server's own rendering (SHOW CREATE ..., read with the database as
the current one, so names in it are not qualified with it), or, for triggers, built from
information_schema's columns with every name quoted, so a trigger whose original text named its
database is created where it is asked to be. Each object keeps the session it was created in
(sql_mode, client character set and collation, an event's time zone), which is set again around
its statement when it is created anew (`create_statements`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from backup_engine import errors

TABLE_TYPES = ("BASE TABLE", "SYSTEM VERSIONED")
SESSION_RESET = ("SET SESSION sql_mode = ''", "SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'")
# Creation order of the kinds: a view may call a function, so routines come before views.
KIND_ORDER = ("PROCEDURE", "FUNCTION", "EVENT", "VIEW", "TRIGGER")
TOKEN = re.compile(r"\s+|/\*.*?\*/|--[^\n]*|#[^\n]*|`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|\w+|.",
                   re.S)


class Unreadable(Exception):
    """An object whose definition this account may not read (or that the engine does not carry)."""


def quote_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_account(account: str) -> str:
    """`user@host` as information_schema prints a definer, quoted as `user`@`host`."""
    user, at, host = account.rpartition("@")
    return f"{quote_name(user)}@{quote_name(host)}" if at else quote_name(account)


def sql_string(value: str) -> str:
    """A string literal for the server's default sql_mode (backslash escapes on)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class DbObject:
    """A view, trigger, routine or event, with what creating it again needs."""

    kind: str  # VIEW, TRIGGER, PROCEDURE, FUNCTION, EVENT
    name: str
    statement: str
    sql_mode: str | None = None  # None for a view (it keeps none)
    charset_client: str = "utf8mb4"
    collation_connection: str = "utf8mb4_general_ci"
    time_zone: str | None = None  # an event's
    status: str | None = None  # an event's: ENABLED, DISABLED, SLAVESIDE_DISABLED
    table: str | None = None  # a trigger's
    columns: list[str] = field(default_factory=list)  # a view's, for its placeholder

    @property
    def key(self) -> tuple[str, str]:
        return ("ROUTINE" if self.kind in ("PROCEDURE", "FUNCTION") else self.kind, self.name)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DbObject:
        return cls(**data)

    def drop_statement(self) -> str:
        kind = self.kind
        return f"DROP {kind} IF EXISTS {quote_name(self.name)}"

    def session(self) -> list[str]:
        """The statements that put a session where this object was created. Its text is read and
        sent as UTF-8, so an object created by a client in another character set keeps that
        setting only while its text is ASCII (the bytes are then the same); otherwise it is
        created as utf8mb4, which keeps its text exact."""
        charset, collation = self.charset_client, self.collation_connection
        if not charset.lower().startswith("utf8") and not self.statement.isascii():
            charset, collation = "utf8mb4", "utf8mb4_general_ci"
        settings = [f"SET SESSION character_set_client = {sql_string(charset)}",
                    f"SET SESSION collation_connection = {sql_string(collation)}"]
        if self.sql_mode is not None:
            settings.append(f"SET SESSION sql_mode = {sql_string(self.sql_mode)}")
        if self.time_zone is not None:
            settings.append(f"SET SESSION time_zone = {sql_string(self.time_zone)}")
        return settings

    def after(self) -> list[str]:
        """What follows the creation: an event's state (it is created as its SHOW CREATE says, then
        set to the state it had when it was read, since a scratch copy of it was disabled)."""
        if self.kind == "EVENT" and self.status in ("ENABLED", "DISABLED", "SLAVESIDE_DISABLED"):
            state = {"ENABLED": "ENABLE", "DISABLED": "DISABLE", "SLAVESIDE_DISABLED": "DISABLE ON SLAVE"}[self.status]
            return [f"ALTER EVENT {quote_name(self.name)} {state}"]
        return []


def fetch(cur: Any, query: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    cur.execute(query, tuple(args))
    return list(cur.fetchall())


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def tables(cur: Any, database: str) -> list[str]:
    """The database's tables (base and system-versioned), by name."""
    rows = fetch(cur, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN "
                      "('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME", (database,))
    return [text(row[0]) for row in rows]


def relations(cur: Any, database: str) -> dict[str, str]:
    """Every table, view and sequence of the database: name -> TABLE_TYPE."""
    rows = fetch(cur, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                 (database,))
    return {text(name): text(kind) for name, kind in rows}


def count_rows(cur: Any, database: str, names: Iterable[str] | None = None) -> dict[str, int]:
    """Exact row counts of the database's tables (or of `names` among them)."""
    wanted = tables(cur, database) if names is None else list(names)
    counts = {}
    for name in wanted:
        cur.execute(f"SELECT COUNT(*) FROM {quote_name(database)}.{quote_name(name)}")  # noqa: S608 - quoted
        counts[name] = int(cur.fetchone()[0])
    return counts


def use(cur: Any, database: str) -> None:
    cur.execute(f"USE {quote_name(database)}")


def reset_session(cur: Any) -> None:
    for statement in SESSION_RESET:
        cur.execute(statement)


def _show_create(cur: Any, kind: str, name: str, column: int) -> tuple[Any, ...]:
    cur.execute(f"SHOW CREATE {kind} {quote_name(name)}")
    row = cur.fetchone()
    if row is None or row[column] is None:
        raise Unreadable(f"no privilege to read the definition of {kind.lower()} {name!r} (grant SELECT on "
                         "mysql.proc, or SHOW CREATE ROUTINE)")
    return tuple(row)


def views(cur: Any, database: str) -> list[DbObject]:
    """The database's views, as SHOW CREATE VIEW prints them with the database current."""
    use(cur, database)
    found = []
    for (name,) in fetch(cur, "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
                              "ORDER BY TABLE_NAME", (database,)):
        name = text(name)
        row = _show_create(cur, "VIEW", name, 1)
        columns = [text(c[0]) for c in fetch(cur, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
                                                  "TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                                             (database, name))]
        found.append(DbObject("VIEW", name, text(row[1]), None, text(row[2]), text(row[3]), columns=columns))
    return found


def triggers(cur: Any, database: str) -> list[DbObject]:
    """The database's triggers in creation order (which keeps their ACTION_ORDER), each statement built
    from information_schema with its own name and table, unqualified."""
    rows = fetch(cur, "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, "
                      "SQL_MODE, DEFINER, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.TRIGGERS "
                      "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
                      "ACTION_ORDER", (database,))
    found = []
    for name, table, timing, event, body, sql_mode, definer, charset, collation in rows:
        name, table = text(name), text(table)
        statement = (f"CREATE DEFINER={quote_account(text(definer))} TRIGGER {quote_name(name)} {text(timing)} "
                     f"{text(event)} ON {quote_name(table)} FOR EACH ROW {text(body)}")
        found.append(DbObject("TRIGGER", name, statement, text(sql_mode), text(charset), text(collation),
                              table=table))
    return found


def routines(cur: Any, database: str) -> list[DbObject]:
    """Procedures and functions, as SHOW CREATE prints them."""
    use(cur, database)
    rows = fetch(cur, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
                      "ORDER BY ROUTINE_TYPE, ROUTINE_NAME", (database,))
    found = []
    for kind, name in rows:
        kind, name = text(kind), text(name)
        if kind not in ("PROCEDURE", "FUNCTION"):
            raise Unreadable(f"{errors.CANNOT_CARRY} {kind.lower()} {quote_name(name)} (only procedures and "
                             "functions are carried)")
        row = _show_create(cur, kind, name, 2)
        found.append(DbObject(kind, name, text(row[2]), text(row[1]), text(row[3]), text(row[4])))
    return found


def events(cur: Any, database: str) -> list[DbObject]:
    """Events, as SHOW CREATE EVENT prints them, with their state."""
    use(cur, database)
    rows = fetch(cur, "SELECT EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
                      "ORDER BY EVENT_NAME", (database,))
    found = []
    for name, status in rows:
        name = text(name)
        row = _show_create(cur, "EVENT", name, 3)
        found.append(DbObject("EVENT", name, text(row[3]), text(row[1]), text(row[4]), text(row[5]),
                              time_zone=text(row[2]), status=text(status)))
    return found


def objects(cur: Any, database: str) -> list[DbObject]:
    """Every object of the database that is not a table, in creation order."""
    return routines(cur, database) + events(cur, database) + views(cur, database) + triggers(cur, database)


def create_statements(item: DbObject) -> list[str]:
    """The statements that create `item` in the current database, in its own session, then reset it."""
    return [*item.session(), item.statement, *SESSION_RESET, *item.after()]


# --- the header of a trigger's original text -------------------------------------------------------------
def _words(statement: str) -> list[str]:
    tokens = []
    for match in TOKEN.finditer(statement):
        token = match.group(0)
        if token.isspace() or token.startswith(("/*", "--", "#")):
            continue
        tokens.append(token)
        if len(tokens) > 40:
            break
    return tokens


def header_names_database(statement: str) -> bool:
    """Whether a trigger's original text (SHOW CREATE TRIGGER) qualifies its name or table with a
    database: `CREATE [DEFINER=...] TRIGGER [IF NOT EXISTS] db.name BEFORE INSERT ON db.table ...`."""
    words = _words(statement)
    upper = [word.upper() for word in words]
    if "TRIGGER" not in upper:
        return False
    at = upper.index("TRIGGER") + 1
    if upper[at:at + 3] == ["IF", "NOT", "EXISTS"]:
        at += 3
    if at + 1 < len(words) and words[at + 1] == ".":
        return True
    if "ON" in upper[at:]:
        on = upper.index("ON", at) + 1
        return on + 1 < len(words) and words[on + 1] == "."
    return False


def qualified_triggers(cur: Any, database: str) -> list[str]:
    """Triggers whose original text names a database (a dump of it would create it there)."""
    use(cur, database)
    found = []
    for (name,) in fetch(cur, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                         (database,)):
        cur.execute(f"SHOW CREATE TRIGGER {quote_name(text(name))}")
        row = cur.fetchone()
        if row is not None and row[2] is not None and header_names_database(text(row[2])):
            found.append(text(name))
    return found
