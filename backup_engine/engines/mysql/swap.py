"""Swapping a database built beside the target into it, all or nothing, under a journal.

MySQL commits every DDL statement on its own and cannot rename a database, so a restore builds
the new database beside the target (`bw_restore_<id>_new`) and then moves tables. What cannot be
moved is created again: a table with triggers cannot change database (ER_TRG_IN_WRONG_SCHEMA),
a view never can, routines and events belong to their database. One RENAME TABLE statement, which
the server runs whole or not at all, is the hinge:

1. prepared: the journal (`bw_restore_<id>`) holds the plan and the target's own triggers, routines
   and events; its marker table is `state_prepared`. The target's triggers are dropped (its tables
   could not leave it with them).
2. One `RENAME TABLE` moves every table of the target into `bw_restore_<id>_old`, puts every view
   of the target aside under a hidden name, moves every new table into the target, and renames the
   marker to `state_swapped`.
3. The target's routines and events that the backup changes are dropped, the backup's are
   created, then its views and triggers (each in the session it was made in).
4. The marker is renamed `state_committed`: the restore is done. Then the old tables, the hidden
   views and the three databases are dropped.

Until step 4 everything rolls back from the journal (`rollback`): the new objects dropped, one
reverse RENAME, the old triggers, routines and events created again. A restore that fails rolls
back itself; one that was killed is rolled back by the next sweep (`recover`), which runs before
any backup or restore of the target, and which only touches an id whose server lock it can take.
After step 4 the sweep only finishes the clean-up. The target is therefore, at every moment a
reader or a backup can be taken, either exactly as before or exactly the backup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pymysql

from backup_engine.engines.mysql import catalog
from backup_engine.engines.mysql.catalog import DbObject, quote_name, text
from backup_engine.engines.mysql.scratch import drop_database, restore_names

PREPARED, SWAPPED, COMMITTED = "state_prepared", "state_swapped", "state_committed"
ROUTINE_KINDS = ("PROCEDURE", "FUNCTION", "EVENT")
NO_SUCH_TABLE = 1146
LOCK_WAIT_S = 120  # how long a swap statement waits for other sessions' metadata locks on the target

Step = Callable[..., None]


@dataclass
class SwapPlan:
    rid: str
    target: str  # the target database
    old_tables: list[str]  # the target's tables and sequences, moved out
    new_tables: list[str]  # the backup's, moved in
    views_aside: list[list[str]]  # [view, hidden name] of the target's views
    old_objects: list[DbObject] = field(default_factory=list)  # the target's triggers, routines, events
    new_objects: list[DbObject] = field(default_factory=list)  # not journaled: only the live restore uses them

    @property
    def names(self) -> tuple[str, str, str]:
        return restore_names(self.rid)

    def header(self) -> dict[str, Any]:
        data = asdict(self)
        del data["old_objects"], data["new_objects"]
        return data


def qualified(database: str, name: str) -> str:
    return f"{quote_name(database)}.{quote_name(name)}"


# --- the journal ---------------------------------------------------------------------------------------
def write_journal(cur: Any, plan: SwapPlan) -> None:
    """The journal database with the plan and the target's objects; its marker goes last."""
    control, _new, old = plan.names
    cur.execute(f"CREATE TABLE {qualified(control, 'journal')} (seq INT PRIMARY KEY, body LONGTEXT NOT NULL) "
                "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    rows = [json.dumps(plan.header())] + [json.dumps(item.as_dict()) for item in plan.old_objects]
    for seq, body in enumerate(rows):
        cur.execute(f"INSERT INTO {qualified(control, 'journal')} (seq, body) VALUES (%s, %s)",  # noqa: S608
                    (seq, body))
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_name(old)}")
    cur.execute(f"CREATE TABLE {qualified(control, PREPARED)} (done INT) ENGINE=InnoDB")


def read_journal(cur: Any, control: str) -> SwapPlan | None:
    try:
        cur.execute(f"SELECT body FROM {qualified(control, 'journal')} ORDER BY seq")  # noqa: S608 - quoted
    except pymysql.err.ProgrammingError as exc:
        if exc.args[0] == NO_SUCH_TABLE:
            return None
        raise
    rows = [json.loads(text(row[0])) for row in cur.fetchall()]
    if not rows:
        return None
    plan = SwapPlan(**rows[0])
    plan.old_objects = [DbObject.from_dict(row) for row in rows[1:]]
    return plan


def state(cur: Any, control: str) -> str | None:
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN "
                "(%s, %s, %s)", (control, PREPARED, SWAPPED, COMMITTED))
    found = [text(row[0]) for row in cur.fetchall()]
    return found[0] if found else None


# --- the swap ------------------------------------------------------------------------------------------
def run(cur: Any, statements: list[str]) -> None:
    for statement in statements:
        cur.execute(statement)


def rename_statement(pairs: list[tuple[str, str, str, str]]) -> str:
    """One RENAME TABLE of (database, name) -> (database, name) pairs."""
    return "RENAME TABLE " + ", ".join(f"{qualified(a, b)} TO {qualified(c, d)}" for a, b, c, d in pairs)


def swap_in(cur: Any, plan: SwapPlan, step: Step) -> None:
    """Steps 1 (triggers) to 4 (the commit marker) of the module doc; the caller rolls back on failure."""
    control, new, old = plan.names
    target = plan.target
    cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_S}")
    for item in plan.old_objects:
        if item.kind == "TRIGGER":
            cur.execute(f"DROP TRIGGER IF EXISTS {qualified(target, item.name)}")
    step(step="triggers_dropped")
    pairs = [(target, name, old, name) for name in plan.old_tables]
    pairs += [(target, view, target, hidden) for view, hidden in plan.views_aside]
    pairs += [(new, name, target, name) for name in plan.new_tables]
    pairs.append((control, PREPARED, control, SWAPPED))
    cur.execute(rename_statement(pairs))
    step(step="renamed")
    assemble(cur, plan, step)
    step(step="assembled")
    cur.execute(rename_statement([(control, SWAPPED, control, COMMITTED)]))
    step(step="committed")


def assemble(cur: Any, plan: SwapPlan, step: Step) -> None:
    """Step 3: routines and events that differ, then views (placeholders first, so one may use
    another) and triggers, created in the target as the backup has them."""
    catalog.use(cur, plan.target)
    old = {(item.kind, item.name): item for item in plan.old_objects if item.kind in ROUTINE_KINDS}
    new = {(item.kind, item.name): item for item in plan.new_objects if item.kind in ROUTINE_KINDS}
    for key, item in old.items():
        if new.get(key) != item:
            cur.execute(item.drop_statement())
    for key, item in new.items():
        if old.get(key) != item:
            run(cur, catalog.create_statements(item))
            step(step="object", kind=item.kind, name=item.name)
    views = [item for item in plan.new_objects if item.kind == "VIEW"]
    for view in views:
        columns = ", ".join(f"1 AS {quote_name(column)}" for column in view.columns) or "1 AS `1`"
        cur.execute(f"CREATE VIEW {quote_name(view.name)} AS SELECT {columns}")
    for view in views:
        cur.execute(view.drop_statement())
        run(cur, catalog.create_statements(view))
        step(step="object", kind="VIEW", name=view.name)
    for trigger in plan.new_objects:
        if trigger.kind == "TRIGGER":
            run(cur, catalog.create_statements(trigger))
            step(step="object", kind="TRIGGER", name=trigger.name)


def finish(cur: Any, plan: SwapPlan) -> None:
    """After the commit: the hidden views, the old tables and the restore's databases go."""
    control, new, old = plan.names
    for _view, hidden in plan.views_aside:
        cur.execute(f"DROP VIEW IF EXISTS {qualified(plan.target, hidden)}")
    for name in (old, new, control):  # the journal last: while it exists, a sweep knows what this was
        drop_database(cur, name)


# --- rolling back ----------------------------------------------------------------------------------------
def existing(cur: Any, database: str) -> dict[str, str]:
    return catalog.relations(cur, database)


def rollback(cur: Any, plan: SwapPlan) -> None:
    """Put the target back as the journal found it, from whichever step the restore stopped at."""
    control, new, old = plan.names
    target = plan.target
    catalog.reset_session(cur)
    current = state(cur, control)
    if current == COMMITTED:
        finish(cur, plan)
        return
    if current == SWAPPED:
        undo_swap(cur, plan)
    catalog.use(cur, target)
    present = {text(row[0]) for row in catalog.fetch(
        cur, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (target,))}
    tables = existing(cur, target)
    for item in plan.old_objects:
        if item.kind == "TRIGGER" and item.name not in present and item.table in tables:
            run(cur, catalog.create_statements(item))
    for name in (old, new, control):
        drop_database(cur, name)


def undo_swap(cur: Any, plan: SwapPlan) -> None:
    """From `state_swapped`: drop what the restore created in the target, then one reverse RENAME."""
    control, new, old = plan.names
    target = plan.target
    catalog.use(cur, target)
    for (name,) in catalog.fetch(cur, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
                                      "TRIGGER_SCHEMA = %s", (target,)):
        cur.execute(f"DROP TRIGGER IF EXISTS {qualified(target, text(name))}")
    hidden = {hidden for _view, hidden in plan.views_aside}
    for name, kind in existing(cur, target).items():
        if kind == "VIEW" and name not in hidden:
            cur.execute(f"DROP VIEW IF EXISTS {qualified(target, name)}")
    old_objects = {(item.kind, item.name): item for item in plan.old_objects if item.kind in ROUTINE_KINDS}
    for item in catalog.routines(cur, target) + catalog.events(cur, target):
        if old_objects.get((item.kind, item.name)) != item:
            cur.execute(item.drop_statement())
    present = {(item.kind, item.name) for item in catalog.routines(cur, target) + catalog.events(cur, target)}
    for key, item in old_objects.items():
        if key not in present:
            run(cur, catalog.create_statements(item))
    in_target, in_old = existing(cur, target), existing(cur, old)
    pairs = [(target, name, new, name) for name in plan.new_tables if name in in_target]
    pairs += [(old, name, target, name) for name in plan.old_tables if name in in_old]
    pairs += [(target, hidden, target, view) for view, hidden in plan.views_aside if hidden in in_target]
    pairs.append((control, SWAPPED, control, PREPARED))
    cur.execute(rename_statement(pairs))


def recover(cur: Any, rid: str) -> str:
    """Settle a restore nobody runs any more (the caller holds its lock): roll it back, or finish
    it when it had committed. Returns what was done."""
    control, new, old = restore_names(rid)
    plan = read_journal(cur, control) if catalog.relations(cur, control) else None
    if plan is None or state(cur, control) is None:
        for name in (old, new, control):  # the target was not touched before the marker existed
            drop_database(cur, name)
        return "dropped"
    done = "finished" if state(cur, control) == COMMITTED else "rolled back"
    rollback(cur, plan)
    return done
