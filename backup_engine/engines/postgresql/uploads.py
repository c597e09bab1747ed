"""Untrusted SQL for PostgreSQL (uploads, and files whose manifest is not ours): the gate, then
the driver.

Such SQL never reaches psql, so no psql meta-command in it can ever run: the gate
(`gate.py`, PostgreSQL's own parser and an allowlist) splits it into statements, and psycopg2
sends each one, exactly as the gate read it, in one transaction; `COPY ... FROM stdin` data
goes through `copy_expert`. The transaction commits only after the whole file went through and
matched its manifest's checksums. The role must not be a superuser, nor hold the server's file
or program roles, unless the operator allows it: what a function builds at run time (a dynamic
`EXECUTE`) cannot be seen by any gate, and that role is then the real defence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

import psycopg2
from psycopg2 import sql

from backup_engine import errors
from backup_engine.engines.base import ArtifactSource, UploadReport
from backup_engine.engines.postgresql.connect import classify_failure, connect, scrub
from backup_engine.engines.postgresql.gate import SESSION_SETTINGS, GateLimits, check_upload, gate_statements
from backup_engine.engines.postgresql.restore import reset_scripts
from backup_engine.targets import Target

BLOCK = 1 << 20
# Roles that reach beyond the database: a role holding one may run what no gate can see.
POWERFUL_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")
ROLE_POWERS = """
    SELECT r.rolsuper, array(SELECT p FROM unnest(%s::text[]) p WHERE pg_catalog.pg_has_role(current_user, p, 'MEMBER'))
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"""


def gate_report(stream: BinaryIO, limits: GateLimits = GateLimits()) -> UploadReport:
    """Read an upload through the gate without running it."""
    report = check_upload(stream, limits)
    return UploadReport(table_rows=dict(report.table_rows),
                        details={"object_counts": {"relations": report.relations, "statements": report.statements}})


def refuse_powerful_role(cur: Any, target: Target, allow_superuser: bool) -> None:
    """An untrusted file runs only with a role that stays inside its database."""
    cur.execute(ROLE_POWERS, (list(POWERFUL_ROLES),))
    superuser, powers = cur.fetchone()
    if allow_superuser or not (superuser or powers):
        return
    what = "a superuser" if superuser else f"a member of {', '.join(powers)}"
    raise errors.InvalidRequest(errors.UPLOAD_ROLE_REFUSED, f"target {target.name!r} connects as {what}. Restore "
                                "uploads with a role that is not (owning the target database is enough: "
                                "CREATE ROLE app LOGIN; ALTER DATABASE ... OWNER TO app), or set "
                                "BACKUP_UPLOAD_ALLOW_SUPERUSER=true to accept the risk")


def restore_untrusted(target: Target, source: ArtifactSource, include_data: str, tables: Iterable[str],
                      allow_superuser: bool, limits: GateLimits = GateLimits(), *, fresh: bool = False) -> None:
    """Every statement the gate passes. Over an existing target: reset first, the after script
    last, all in one transaction. Into a `fresh` database built beside the target: no reset, and
    each statement in its own transaction (the swap is what makes it all or nothing)."""
    around = None if fresh else reset_scripts(target, include_data, tables)
    with connect(target) as conn:
        conn.autocommit = fresh
        try:
            with conn.cursor() as cur:
                refuse_powerful_role(cur, target, allow_superuser)
                for name, value in SESSION_SETTINGS:
                    cur.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                if around is not None:
                    cur.execute(around.before)
                with source.open() as content:
                    _run(cur, target, gate_statements(content, limits))
                    source.verify()
                if around is not None and around.after:
                    cur.execute(around.after)
            if not fresh:
                conn.commit()
        except psycopg2.Error as exc:
            if not fresh:
                conn.rollback()
            raise classify_failure(str(exc), default=errors.RestoreError, default_message=errors.RESTORE_FAILED,
                                   target=target) from exc
        except BaseException:
            if not fresh:
                conn.rollback()
            raise


def _run(cur: Any, target: Target, statements: Iterable[Any]) -> None:
    for statement in statements:
        if statement.skipped:
            continue
        try:
            if statement.copy_data is not None:
                cur.copy_expert(statement.sql, statement.copy_data, size=BLOCK)
            else:
                cur.execute(statement.sql)
        except psycopg2.Error as exc:
            detail = f"target {target.name!r}: statement at line {statement.line}: {scrub(str(exc), target)}"
            raise errors.RestoreError(errors.RESTORE_FAILED, detail) from exc
