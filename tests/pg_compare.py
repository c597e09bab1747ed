"""Compare two PostgreSQL databases kind by kind, from the catalog, as pg_dump would see them.

Not a test module: a helper that tests import (proven by tests/test_pg_compare.py).

    catalog_state(url)        -> {kind: {object identity: description}}, comparable with ==
    compare(a_url, b_url)     -> human-readable differences, "<kind>: <identity>...: A=... B=...";
                                 [] when the databases hold the same user objects and data
    diff_states(a, b)         -> the same, from two catalog_state results (to reuse one side)

Identities are names (schema-qualified, `%I` quoted), never oids, and every list is sorted,
so two databases built in a different order compare equal. Definitions come from the server's
own deparsers (pg_get_viewdef, pg_get_functiondef, pg_get_constraintdef, pg_get_indexdef,
pg_get_triggerdef, pg_get_ruledef, pg_get_statisticsobjdef, pg_get_expr, format_type), read
with `search_path = pg_catalog` so that every user object comes out schema-qualified.

Left out or normalised on purpose, each because it is not user state a restore could carry:
- owners and privileges (restores run as other roles), oids, tablespaces;
- collation versions (they belong to the server's ICU/libc, not to the definition), and a
  collation's encoding -1 ("any", what CREATE COLLATION ... FROM "C" copies) reads as the
  database's encoding: pg_dump writes CREATE COLLATION (provider, locale), which records the
  database's encoding, and a database has only one;
- `connoinherit` of constraints other than CHECK: only CHECK can be declared NO INHERIT; the flag
  on a partition's primary key/unique constraint flips when pg_dump re-creates the partition
  with CREATE TABLE + ALTER TABLE ONLY ... ADD CONSTRAINT + ATTACH PARTITION;
- the attoption `pg_attver=<n>` this machine's PostgreSQL build stamps on every new column
  (different on each CREATE, never dumped).
Members of extensions (pg_depend deptype 'e') are left out of every per-kind list: the
extension itself is compared (name, schema, version). Large objects are compared by content;
their oids (which pg_dump keeps) are a kind of their own, `large_object_oids`.

Table data: per table, the row count and the md5 of every row's text form (`row::text`),
sorted byte-wise. The text form keeps what a value comparison would lose: -0 vs 0 in floats
and float arrays, NaN, json whitespace and duplicate keys, numeric scale. The session settings
that change text output (DateStyle, IntervalStyle, TimeZone, extra_float_digits, bytea_output,
lc_monetary) are fixed first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from tests.richdb_pg import connect

# pg_dump's view of "user" objects: not in a system schema, not a member of an extension.
USER_NS = "{n}.nspname <> 'information_schema' AND {n}.nspname !~ '^pg_'"
FIRST_NORMAL_OID = 16384  # objects with no schema (casts, servers, ...) made by users have oids from here
# This machine's PostgreSQL 15 build stamps every new column with attoptions `pg_attver=<number>`, a
# value that differs on each CREATE and that pg_dump neither dumps nor could restore: not user state.
SERVER_STAMPED_ATTOPTION = "pg_attver"
SESSION_SETTINGS = (
    ("search_path", "pg_catalog"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
)


@contextmanager
def _opened(url: Any) -> Iterator[Any]:
    """A psycopg2 connection to a SQLAlchemy URL (string or object), closed afterwards."""
    conn = connect(url)
    try:
        yield conn
    finally:
        conn.close()


def user_ns(alias: str = "n") -> str:
    return USER_NS.format(n=alias)


def not_member(catalog: str, oid_expr: str) -> str:
    """SQL: the object (catalog, oid) is not a member of an extension."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend ext_dep WHERE ext_dep.classid = '{catalog}'::regclass"
            f" AND ext_dep.objid = {oid_expr} AND ext_dep.deptype = 'e')")


def user_relation(alias: str = "c", ns: str = "n") -> str:
    return f"{user_ns(ns)} AND {not_member('pg_class', alias + '.oid')}"


QNAME = "format('%I.%I', {n}.nspname, {o}.{name})"


def qname(obj: str, name_col: str, ns: str = "n") -> str:
    return QNAME.format(n=ns, o=obj, name=name_col)


REL = "format('%I.%I', n.nspname, c.relname)"
FROM_REL = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"


def _rows(cur: Any, query: str, params: Any = None) -> list[tuple]:
    cur.execute(query, params)
    return [tuple(row) for row in cur.fetchall()]


def _pairs(cur: Any, query: str) -> dict[str, Any]:
    """{first column: second column}, for queries that build the description server-side."""
    return {key: value for key, value in _rows(cur, query)}


def _jsonb_map(cur: Any, query: str) -> dict[str, Any]:
    """{key: jsonb object} from a query returning (key, jsonb_build_object(...))."""
    return _pairs(cur, query)


# --- kinds ------------------------------------------------------------------------------------------------------
def _schemas(cur: Any) -> dict[str, Any]:
    return {name: "schema" for (name,) in _rows(cur, f"""
        SELECT n.nspname FROM pg_namespace n WHERE {user_ns()} AND {not_member('pg_namespace', 'n.oid')}""")}


def _extensions(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, """
        SELECT e.extname, jsonb_build_object(
                   'schema', n.nspname, 'version', e.extversion, 'relocatable', e.extrelocatable,
                   'config_tables', (SELECT jsonb_agg(t::regclass::text ORDER BY t::regclass::text)
                                     FROM unnest(e.extconfig) AS t),
                   'config_conditions', to_jsonb(e.extcondition))
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace""")


def _collations(cur: Any) -> dict[str, Any]:
    """Collation definitions; encoding -1 ("any", what CREATE COLLATION ... FROM "C" copies) reads as the
    database's own encoding, which is what pg_dump's CREATE COLLATION (provider, locale) gives back."""
    return _jsonb_map(cur, f"""
        SELECT {qname('co', 'collname')},
               to_jsonb(co) - ARRAY['oid', 'collname', 'collnamespace', 'collowner', 'collversion', 'collencoding']
               || jsonb_build_object('encoding', CASE WHEN co.collencoding = -1
                                                      THEN pg_encoding_to_char((SELECT encoding FROM pg_database
                                                                               WHERE datname = current_database()))
                                                      ELSE pg_encoding_to_char(co.collencoding) END)
        FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
        WHERE {user_ns()} AND {not_member('pg_collation', 'co.oid')}""")


def _user_types(kind: str) -> str:
    return (f"FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = '{kind}'"
            f" AND {user_ns()} AND {not_member('pg_type', 't.oid')}")


def _enums(cur: Any) -> dict[str, Any]:
    return _pairs(cur, f"""
        SELECT {qname('t', 'typname')},
               coalesce((SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                         WHERE e.enumtypid = t.oid), '[]'::jsonb)
        {_user_types('e')}""")


def _composite_types(cur: Any) -> dict[str, Any]:
    return _pairs(cur, f"""
        SELECT {qname('t', 'typname')},
               (SELECT jsonb_agg(jsonb_build_object(
                           'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                           'collation', CASE WHEN a.attcollation <> at.typcollation
                                             THEN a.attcollation::regcollation::text END)
                       ORDER BY a.attnum)
                FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
                WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
        {_user_types('c')} AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'""")


def _range_types(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT {qname('t', 'typname')}, jsonb_build_object(
                   'subtype', format_type(r.rngsubtype, NULL),
                   'collation', nullif(r.rngcollation, 0)::regcollation::text,
                   'subtype_opclass', (SELECT format('%s %I.%I', am.amname, ns.nspname, oc.opcname)
                                       FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                                       JOIN pg_namespace ns ON ns.oid = oc.opcnamespace WHERE oc.oid = r.rngsubopc),
                   'canonical', nullif(r.rngcanonical, 0)::regprocedure::text,
                   'subtype_diff', nullif(r.rngsubdiff, 0)::regprocedure::text,
                   'multirange', r.rngmultitypid::regtype::text)
        FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {user_ns()} AND {not_member('pg_type', 't.oid')}""")


def _domains(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT {qname('t', 'typname')}, jsonb_build_object(
                   'base', format_type(t.typbasetype, t.typtypmod), 'not_null', t.typnotnull,
                   'default', t.typdefault,
                   'collation', CASE WHEN t.typcollation <> bt.typcollation
                                     THEN t.typcollation::regcollation::text END,
                   'constraints', coalesce((
                        SELECT jsonb_object_agg(co.conname, jsonb_build_object(
                                   'definition', pg_get_constraintdef(co.oid), 'validated', co.convalidated))
                        FROM pg_constraint co WHERE co.contypid = t.oid), '{{}}'::jsonb))
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type bt ON bt.oid = t.typbasetype
        WHERE t.typtype = 'd' AND {user_ns()} AND {not_member('pg_type', 't.oid')}""")


def _relations(cur: Any) -> dict[str, Any]:
    """Tables, views, matviews, foreign tables: everything pg_class says about them besides columns."""
    return _jsonb_map(cur, f"""
        SELECT {REL}, jsonb_build_object(
                   'kind', c.relkind, 'persistence', c.relpersistence,
                   'options', (SELECT jsonb_agg(o ORDER BY o) FROM unnest(c.reloptions) AS o),
                   'toast_options', (SELECT jsonb_agg(o ORDER BY o) FROM pg_class tc, unnest(tc.reloptions) AS o
                                     WHERE tc.oid = c.reltoastrelid),
                   'access_method', (SELECT amname FROM pg_am WHERE oid = c.relam),
                   'row_security', c.relrowsecurity, 'force_row_security', c.relforcerowsecurity,
                   'replica_identity', c.relreplident,
                   'partition_key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                   'of_type', nullif(c.reloftype, 0)::regtype::text,
                   'populated', c.relispopulated,
                   'foreign_server', (SELECT s.srvname FROM pg_foreign_table ft
                                      JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = c.oid),
                   'foreign_options', (SELECT jsonb_agg(o ORDER BY o) FROM pg_foreign_table ft, unnest(ft.ftoptions) o
                                       WHERE ft.ftrelid = c.oid))
        {FROM_REL}
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {user_relation()}""")


_COLUMNS_FROM = f"""
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_type t ON t.oid = a.atttypid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
          AND {user_relation()}"""


def _column_order(cur: Any) -> dict[str, Any]:
    return _pairs(cur, f"SELECT {REL}, jsonb_agg(a.attname ORDER BY a.attnum) {_COLUMNS_FROM} GROUP BY 1")


def _columns(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%s.%I', {REL}, a.attname), jsonb_build_object(
                   'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
                   'default', (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
                               WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum),
                   'identity', a.attidentity, 'generated', a.attgenerated,
                   'collation', CASE WHEN a.attcollation <> t.typcollation
                                     THEN a.attcollation::regcollation::text END,
                   'storage', a.attstorage, 'storage_is_type_default', a.attstorage = t.typstorage,
                   'statistics_target', a.attstattarget, 'compression', a.attcompression,
                   'options', (SELECT jsonb_agg(o ORDER BY o) FROM unnest(a.attoptions) AS o
                               WHERE o NOT LIKE '{SERVER_STAMPED_ATTOPTION}=%'),
                   'fdw_options', (SELECT jsonb_agg(o ORDER BY o) FROM unnest(a.attfdwoptions) AS o),
                   'is_local', a.attislocal, 'inherited_count', a.attinhcount)
        {_COLUMNS_FROM}""")


def _constraints(cur: Any) -> dict[str, Any]:
    """Table constraints: pg_get_constraintdef plus the flags it does not show (validated, inheritance)."""
    return _jsonb_map(cur, f"""
        SELECT format('%I on %s', co.conname, {REL}), jsonb_build_object(
                   'type', co.contype, 'definition', pg_get_constraintdef(co.oid),
                   'deferrable', co.condeferrable, 'deferred', co.condeferred, 'validated', co.convalidated,
                   'no_inherit', CASE WHEN co.contype = 'c' THEN co.connoinherit END,
                   'is_local', co.conislocal, 'inherited_count', co.coninhcount,
                   'parent', (SELECT format('%I on %s', pc.conname, pc.conrelid::regclass::text)
                              FROM pg_constraint pc WHERE pc.oid = co.conparentid),
                   'index', nullif(co.conindid, 0)::regclass::text)
        FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {user_relation()}""")


def _indexes(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%I.%I', n.nspname, ic.relname), jsonb_build_object(
                   'table', {REL}, 'definition', pg_get_indexdef(i.indexrelid),
                   'clustered', i.indisclustered, 'replica_identity', i.indisreplident,
                   'primary', i.indisprimary, 'valid', i.indisvalid,
                   'persistence', ic.relpersistence,
                   'parent', (SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = i.indexrelid),
                   'statistics_targets', (SELECT jsonb_object_agg(a.attnum, a.attstattarget) FROM pg_attribute a
                                          WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0))
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {user_relation()}""")


def _sequences(cur: Any) -> dict[str, Any]:
    """Options, position and ownership (OWNED BY, identity) of every sequence."""
    found: dict[str, Any] = {}
    for schema, relname, name, description in _rows(cur, f"""
        SELECT n.nspname, c.relname, {REL}, jsonb_build_object(
                   'type', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement,
                   'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle,
                   'persistence', c.relpersistence,
                   'owned_by', (SELECT format('%s.%I', d.refobjid::regclass::text, a.attname)
                                FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid
                                                                     AND a.attnum = d.refobjsubid
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')),
                   'identity', EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                       AND d.objid = c.oid AND d.deptype = 'i'))
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {user_relation()}"""):
        cur.execute(sql.SQL("SELECT last_value, is_called FROM {}.{}").format(sql.Identifier(schema),
                                                                               sql.Identifier(relname)))
        description["last_value"], description["is_called"] = cur.fetchone()
        found[name] = description
    return found


def _views(cur: Any) -> dict[str, Any]:
    return _pairs(cur, f"""
        SELECT {REL}, pg_get_viewdef(c.oid) {FROM_REL} WHERE c.relkind IN ('v', 'm') AND {user_relation()}""")


def _user_procs(join: str = "") -> str:
    return (f"FROM pg_proc p {join} JOIN pg_namespace n ON n.oid = p.pronamespace"
            f" WHERE {user_ns()} AND {not_member('pg_proc', 'p.oid')}")


def _functions(cur: Any) -> dict[str, Any]:
    """Functions and procedures, each by pg_get_functiondef (body, language, volatility, SET, ...)."""
    return _pairs(cur, f"""
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) {_user_procs()} AND p.prokind <> 'a'""")


def _aggregates(cur: Any) -> dict[str, Any]:
    proc = "nullif(ag.{0}, 0)::regprocedure::text"
    fields = {name: proc.format(column) for name, column in (
        ("transition", "aggtransfn"), ("final", "aggfinalfn"), ("combine", "aggcombinefn"),
        ("serialize", "aggserialfn"), ("deserialize", "aggdeserialfn"), ("moving_transition", "aggmtransfn"),
        ("moving_inverse", "aggminvtransfn"), ("moving_final", "aggmfinalfn"))}
    fields.update({
        "kind": "ag.aggkind", "direct_args": "ag.aggnumdirectargs", "final_extra": "ag.aggfinalextra",
        "moving_final_extra": "ag.aggmfinalextra", "final_modify": "ag.aggfinalmodify",
        "moving_final_modify": "ag.aggmfinalmodify", "sort_operator": "nullif(ag.aggsortop, 0)::regoperator::text",
        "state_type": "ag.aggtranstype::regtype::text", "state_space": "ag.aggtransspace",
        "moving_state_type": "nullif(ag.aggmtranstype, 0)::regtype::text", "moving_state_space": "ag.aggmtransspace",
        "initial": "ag.agginitval", "moving_initial": "ag.aggminitval", "parallel": "p.proparallel",
        "arguments": "pg_get_function_arguments(p.oid)", "result": "pg_get_function_result(p.oid)",
    })
    body = ", ".join(f"'{key}', {expr}" for key, expr in fields.items())
    return _jsonb_map(cur, f"""
        SELECT p.oid::regprocedure::text, jsonb_build_object({body})
        {_user_procs('JOIN pg_aggregate ag ON ag.aggfnoid = p.oid')}""")


def _operators(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT o.oid::regoperator::text, jsonb_build_object(
                   'kind', o.oprkind, 'function', o.oprcode::regprocedure::text, 'result', o.oprresult::regtype::text,
                   'commutator', nullif(o.oprcom, 0)::regoperator::text,
                   'negator', nullif(o.oprnegate, 0)::regoperator::text,
                   'restrict', nullif(o.oprrest, 0)::regprocedure::text,
                   'join', nullif(o.oprjoin, 0)::regprocedure::text,
                   'merges', o.oprcanmerge, 'hashes', o.oprcanhash)
        FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
        WHERE {user_ns()} AND {not_member('pg_operator', 'o.oid')}""")


OPFAMILY_NAME = ("(SELECT format('%s %I.%I', fam_am.amname, fam_ns.nspname, fam.opfname) FROM pg_opfamily fam"
                 " JOIN pg_am fam_am ON fam_am.oid = fam.opfmethod"
                 " JOIN pg_namespace fam_ns ON fam_ns.oid = fam.opfnamespace WHERE fam.oid = {0})")


def _opfamilies(cur: Any) -> dict[str, Any]:
    """Operator families with every member operator (pg_amop) and support function (pg_amproc)."""
    return _jsonb_map(cur, f"""
        SELECT format('%s %I.%I', am.amname, n.nspname, f.opfname), jsonb_build_object(
                   'operators', (SELECT jsonb_agg(jsonb_build_array(
                                        ao.amopstrategy, ao.amoplefttype::regtype::text,
                                        ao.amoprighttype::regtype::text, ao.amopopr::regoperator::text,
                                        ao.amoppurpose, {OPFAMILY_NAME.format('ao.amopsortfamily')})
                                     ORDER BY ao.amopstrategy, ao.amoplefttype::regtype::text,
                                              ao.amoprighttype::regtype::text)
                                 FROM pg_amop ao WHERE ao.amopfamily = f.oid),
                   'functions', (SELECT jsonb_agg(jsonb_build_array(
                                        ap.amprocnum, ap.amproclefttype::regtype::text,
                                        ap.amprocrighttype::regtype::text, ap.amproc::regprocedure::text)
                                     ORDER BY ap.amprocnum, ap.amproclefttype::regtype::text,
                                              ap.amprocrighttype::regtype::text)
                                 FROM pg_amproc ap WHERE ap.amprocfamily = f.oid))
        FROM pg_opfamily f JOIN pg_am am ON am.oid = f.opfmethod JOIN pg_namespace n ON n.oid = f.opfnamespace
        WHERE {user_ns()} AND {not_member('pg_opfamily', 'f.oid')}""")


def _opclasses(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%s %I.%I', am.amname, n.nspname, oc.opcname), jsonb_build_object(
                   'family', {OPFAMILY_NAME.format('oc.opcfamily')}, 'input_type', oc.opcintype::regtype::text,
                   'default', oc.opcdefault, 'key_type', nullif(oc.opckeytype, 0)::regtype::text)
        FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod JOIN pg_namespace n ON n.oid = oc.opcnamespace
        WHERE {user_ns()} AND {not_member('pg_opclass', 'oc.oid')}""")


def _no_schema(catalog: str, alias: str) -> str:
    """SQL: a user-made object of a schema-less catalog (casts, servers, ...), not an extension member."""
    return f"{alias}.oid >= {FIRST_NORMAL_OID} AND {not_member(catalog, alias + '.oid')}"


def _casts(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%s AS %s', ca.castsource::regtype, ca.casttarget::regtype), jsonb_build_object(
                   'function', nullif(ca.castfunc, 0)::regprocedure::text, 'context', ca.castcontext,
                   'method', ca.castmethod)
        FROM pg_cast ca WHERE {_no_schema('pg_cast', 'ca')}""")


def _triggers(cur: Any) -> dict[str, Any]:
    """Triggers (cloned partition triggers included), with tgenabled, which pg_get_triggerdef does not show."""
    return _jsonb_map(cur, f"""
        SELECT format('%I on %s', tg.tgname, {REL}), jsonb_build_object(
                   'definition', pg_get_triggerdef(tg.oid), 'enabled', tg.tgenabled,
                   'parent', (SELECT format('%I on %s', pt.tgname, pt.tgrelid::regclass::text)
                              FROM pg_trigger pt WHERE pt.oid = tg.tgparentid))
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT tg.tgisinternal AND {user_relation()}""")


def _rules(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%I on %s', r.rulename, {REL}), jsonb_build_object(
                   'definition', pg_get_ruledef(r.oid), 'enabled', r.ev_enabled)
        FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename <> '_RETURN' AND {user_relation()}""")


def _policies(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%I on %s', p.polname, {REL}), jsonb_build_object(
                   'command', p.polcmd, 'permissive', p.polpermissive,
                   'roles', (SELECT jsonb_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END
                                              ORDER BY CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END)
                             FROM unnest(p.polroles) AS r),
                   'using', pg_get_expr(p.polqual, p.polrelid), 'with_check', pg_get_expr(p.polwithcheck, p.polrelid))
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {user_relation()}""")


def _statistics(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT {qname('s', 'stxname')}, jsonb_build_object(
                   'definition', pg_get_statisticsobjdef(s.oid), 'statistics_target', s.stxstattarget)
        FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
        WHERE {user_ns()} AND {not_member('pg_statistic_ext', 's.oid')}""")


def _partitions(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT {REL}, jsonb_build_object(
                   'parent', (SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = c.oid),
                   'bound', pg_get_expr(c.relpartbound, c.oid))
        {FROM_REL} WHERE c.relispartition AND c.relkind IN ('r', 'p', 'f') AND {user_relation()}""")


def _inheritance(cur: Any) -> dict[str, Any]:
    return _pairs(cur, f"""
        SELECT {REL}, jsonb_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)
        {FROM_REL} JOIN pg_inherits i ON i.inhrelid = c.oid
        WHERE NOT c.relispartition AND c.relkind IN ('r', 'p', 'f') AND {user_relation()}
        GROUP BY 1""")


def _comments(cur: Any) -> dict[str, Any]:
    """Comments on every kind, keyed by pg_identify_object (type + identity); large objects are elsewhere."""
    return _pairs(cur, f"""
        SELECT format('%s %s', o.type, o.identity), d.description
        FROM pg_description d, LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
        WHERE d.classoid <> 'pg_largeobject'::regclass
          AND (d.objoid >= {FIRST_NORMAL_OID}
               OR (d.classoid = 'pg_namespace'::regclass AND d.objoid = 'public'::regnamespace))
          AND (o.schema IS NULL OR (o.schema <> 'information_schema' AND o.schema !~ '^pg_'))
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid AND e.objid = d.objoid
                          AND e.deptype = 'e')""")


def _large_objects(cur: Any) -> dict[str, Any]:
    """By content (md5) -> how many, their sizes and comments: independent of the oids."""
    found: dict[str, Any] = {}
    for digest, size, comment in _rows(cur, """
            SELECT md5(lo_get(l.oid)), length(lo_get(l.oid)), obj_description(l.oid, 'pg_largeobject')
            FROM pg_largeobject_metadata l"""):
        entry = found.setdefault(f"md5 {digest}", {"count": 0, "size": size, "comments": []})
        entry["count"] += 1
        entry["comments"] = sorted([*entry["comments"], comment], key=lambda c: (c is None, c or ""))
    return found


def _large_object_oids(cur: Any) -> dict[str, Any]:
    return {"oids": [oid for (oid,) in _rows(cur, "SELECT oid FROM pg_largeobject_metadata ORDER BY oid")]}


def _table_data(cur: Any) -> dict[str, Any]:
    """Rows and ordered md5 of row texts of every table and populated matview (foreign tables: none read)."""
    found: dict[str, Any] = {}
    for schema, relname, name in _rows(cur, f"""
            SELECT n.nspname, c.relname, {REL} {FROM_REL}
            WHERE c.relkind IN ('r', 'p', 'm') AND c.relispopulated AND {user_relation()} ORDER BY 3"""):
        cur.execute(sql.SQL("SELECT count(*), md5(string_agg(zoo_cmp_row::text, E'\\n'"
                            " ORDER BY zoo_cmp_row::text COLLATE \"C\")) FROM ONLY {}.{} AS zoo_cmp_row")
                    .format(sql.Identifier(schema), sql.Identifier(relname)))
        rows, digest = cur.fetchone()
        found[name] = {"rows": rows, "md5": digest}
    return found


def _text_search(cur: Any) -> dict[str, Any]:
    """Text search configurations (parser + token mappings), dictionaries, parsers and templates."""
    found = _jsonb_map(cur, f"""
        SELECT 'configuration ' || {qname('cfg', 'cfgname')}, jsonb_build_object(
                   'parser_name', (SELECT format('%I.%I', pn.nspname, pr.prsname) FROM pg_ts_parser pr
                                   JOIN pg_namespace pn ON pn.oid = pr.prsnamespace WHERE pr.oid = cfg.cfgparser),
                   'mappings', (SELECT jsonb_agg(jsonb_build_array(tt.alias, m.mapseqno,
                                                                   m.mapdict::regdictionary::text)
                                                 ORDER BY tt.alias, m.mapseqno)
                                FROM pg_ts_config_map m
                                JOIN ts_token_type(cfg.cfgparser) tt ON tt.tokid = m.maptokentype
                                WHERE m.mapcfg = cfg.oid))
        FROM pg_ts_config cfg JOIN pg_namespace n ON n.oid = cfg.cfgnamespace
        WHERE {user_ns()} AND {not_member('pg_ts_config', 'cfg.oid')}""")
    found.update(_jsonb_map(cur, f"""
        SELECT 'dictionary ' || {qname('d', 'dictname')}, jsonb_build_object(
                   'template', (SELECT format('%I.%I', tn.nspname, tm.tmplname) FROM pg_ts_template tm
                                JOIN pg_namespace tn ON tn.oid = tm.tmplnamespace WHERE tm.oid = d.dicttemplate),
                   'options', d.dictinitoption)
        FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
        WHERE {user_ns()} AND {not_member('pg_ts_dict', 'd.oid')}"""))
    found.update(_jsonb_map(cur, f"""
        SELECT 'parser ' || {qname('p', 'prsname')}, jsonb_build_object(
                   'start', p.prsstart::regprocedure::text, 'token', p.prstoken::regprocedure::text,
                   'end', p.prsend::regprocedure::text, 'headline', nullif(p.prsheadline, 0)::regprocedure::text,
                   'lextypes', p.prslextype::regprocedure::text)
        FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
        WHERE {user_ns()} AND {not_member('pg_ts_parser', 'p.oid')}"""))
    found.update(_jsonb_map(cur, f"""
        SELECT 'template ' || {qname('t', 'tmplname')}, jsonb_build_object(
                   'init', nullif(t.tmplinit, 0)::regprocedure::text, 'lexize', t.tmpllexize::regprocedure::text)
        FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
        WHERE {user_ns()} AND {not_member('pg_ts_template', 't.oid')}"""))
    return found


def _conversions(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT {qname('cv', 'conname')}, jsonb_build_object(
                   'from', pg_encoding_to_char(cv.conforencoding), 'to', pg_encoding_to_char(cv.contoencoding),
                   'function', cv.conproc::regprocedure::text, 'default', cv.condefault)
        FROM pg_conversion cv JOIN pg_namespace n ON n.oid = cv.connamespace
        WHERE {user_ns()} AND {not_member('pg_conversion', 'cv.oid')}""")


def _options(column: str) -> str:
    return f"(SELECT jsonb_agg(o ORDER BY o) FROM unnest({column}) AS o)"


def _foreign_data_wrappers(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT w.fdwname, jsonb_build_object(
                   'handler', nullif(w.fdwhandler, 0)::regprocedure::text,
                   'validator', nullif(w.fdwvalidator, 0)::regprocedure::text, 'options', {_options('w.fdwoptions')})
        FROM pg_foreign_data_wrapper w WHERE {_no_schema('pg_foreign_data_wrapper', 'w')}""")


def _foreign_servers(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT s.srvname, jsonb_build_object(
                   'wrapper', (SELECT fdwname FROM pg_foreign_data_wrapper WHERE oid = s.srvfdw),
                   'type', s.srvtype, 'version', s.srvversion, 'options', {_options('s.srvoptions')})
        FROM pg_foreign_server s WHERE {_no_schema('pg_foreign_server', 's')}""")


def _user_mappings(cur: Any) -> dict[str, Any]:
    return _pairs(cur, f"""
        SELECT format('%s on %I', CASE WHEN u.umuser = 0 THEN 'public' ELSE u.umuser::regrole::text END, s.srvname),
               coalesce({_options('u.umoptions')}, '[]'::jsonb)
        FROM pg_user_mapping u JOIN pg_foreign_server s ON s.oid = u.umserver
        WHERE {_no_schema('pg_foreign_server', 's')}""")


def _event_triggers(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT e.evtname, jsonb_build_object(
                   'event', e.evtevent, 'function', e.evtfoid::regprocedure::text, 'enabled', e.evtenabled,
                   'tags', to_jsonb(e.evttags))
        FROM pg_event_trigger e WHERE {_no_schema('pg_event_trigger', 'e')}""")


def _publications(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, """
        SELECT p.pubname, jsonb_build_object(
                   'all_tables', p.puballtables, 'insert', p.pubinsert, 'update', p.pubupdate,
                   'delete', p.pubdelete, 'truncate', p.pubtruncate, 'via_root', p.pubviaroot,
                   'tables', (SELECT jsonb_object_agg(pr.prrelid::regclass::text, jsonb_build_object(
                                  'where', pg_get_expr(pr.prqual, pr.prrelid),
                                  'columns', (SELECT jsonb_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
                                              WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs))))
                              FROM pg_publication_rel pr WHERE pr.prpubid = p.oid),
                   'schemas', (SELECT jsonb_agg(pn.pnnspid::regnamespace::text ORDER BY 1)
                               FROM pg_publication_namespace pn WHERE pn.pnpubid = p.oid))
        FROM pg_publication p""")


def _access_methods(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT am.amname, jsonb_build_object('type', am.amtype, 'handler', am.amhandler::regprocedure::text)
        FROM pg_am am WHERE {_no_schema('pg_am', 'am')}""")


def _languages(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT l.lanname, jsonb_build_object(
                   'trusted', l.lanpltrusted, 'handler', nullif(l.lanplcallfoid, 0)::regprocedure::text,
                   'inline', nullif(l.laninline, 0)::regprocedure::text,
                   'validator', nullif(l.lanvalidator, 0)::regprocedure::text)
        FROM pg_language l WHERE {_no_schema('pg_language', 'l')}""")


def _transforms(cur: Any) -> dict[str, Any]:
    return _jsonb_map(cur, f"""
        SELECT format('%s for %s', tr.trftype::regtype, (SELECT lanname FROM pg_language WHERE oid = tr.trflang)),
               jsonb_build_object('from_sql', nullif(tr.trffromsql, 0)::regprocedure::text,
                                  'to_sql', nullif(tr.trftosql, 0)::regprocedure::text)
        FROM pg_transform tr WHERE {_no_schema('pg_transform', 'tr')}""")


def _database(cur: Any) -> dict[str, Any]:
    """Database-level settings (ALTER DATABASE / ALTER ROLE IN DATABASE SET) and the database's comment."""
    found = _pairs(cur, """
        SELECT 'settings for ' || CASE WHEN s.setrole = 0 THEN 'all roles' ELSE s.setrole::regrole::text END,
               (SELECT jsonb_agg(o ORDER BY o) FROM unnest(s.setconfig) AS o)
        FROM pg_db_role_setting s WHERE s.setdatabase = (SELECT oid FROM pg_database
                                                          WHERE datname = current_database())""")
    cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()")
    comment = cur.fetchone()[0]
    if comment is not None:
        found["comment"] = comment
    return found


KINDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "schemas": _schemas,
    "extensions": _extensions,
    "collations": _collations,
    "enums": _enums,
    "composite_types": _composite_types,
    "range_types": _range_types,
    "domains": _domains,
    "relations": _relations,
    "column_order": _column_order,
    "columns": _columns,
    "constraints": _constraints,
    "indexes": _indexes,
    "sequences": _sequences,
    "views": _views,
    "functions": _functions,
    "aggregates": _aggregates,
    "operators": _operators,
    "opfamilies": _opfamilies,
    "opclasses": _opclasses,
    "casts": _casts,
    "triggers": _triggers,
    "rules": _rules,
    "policies": _policies,
    "statistics": _statistics,
    "partitions": _partitions,
    "inheritance": _inheritance,
    "comments": _comments,
    "large_objects": _large_objects,
    "large_object_oids": _large_object_oids,
    "table_data": _table_data,
    "text_search": _text_search,
    "conversions": _conversions,
    "foreign_data_wrappers": _foreign_data_wrappers,
    "foreign_servers": _foreign_servers,
    "user_mappings": _user_mappings,
    "event_triggers": _event_triggers,
    "publications": _publications,
    "access_methods": _access_methods,
    "languages": _languages,
    "transforms": _transforms,
    "database": _database,
}


def _read_all(cur: Any) -> dict[str, Any]:
    for name, value in SESSION_SETTINGS:
        cur.execute("SELECT set_config(%s, %s, true)", (name, value))  # local: gone with the transaction
    return {kind: read(cur) for kind, read in KINDS.items()}


def catalog_state(url: Any) -> dict[str, Any]:
    """{kind: {identity: description}} of every user object and all data, in one snapshot.

    `url` is a SQLAlchemy URL (string or object), read in a read-only REPEATABLE READ transaction of
    its own; or an open psycopg2 connection (not autocommit), read inside its current transaction so
    that uncommitted changes count (tests damage a database, read it, and roll back). A transaction
    this call opened is rolled back; one already open is left open.
    """
    if isinstance(url, psycopg2.extensions.connection):
        if url.autocommit:
            raise ValueError("catalog_state needs a connection in transaction mode (autocommit is off)")
        was_idle = url.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        try:
            with url.cursor() as cur:
                return _read_all(cur)
        finally:
            if was_idle and not url.closed:
                url.rollback()
    with _opened(url) as conn:
        try:
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cur:
                return _read_all(cur)
        finally:
            if not conn.closed:
                conn.rollback()


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _diff(kind: str, path: str, a: Any, b: Any, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"{kind}: {where}: only in A: {_short(a[key])}")
            elif key not in a:
                out.append(f"{kind}: {where}: only in B: {_short(b[key])}")
            elif a[key] != b[key]:
                _diff(kind, where, a[key], b[key], out)
        return
    out.append(f"{kind}: {path}: A={_short(a)} B={_short(b)}")


def diff_states(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Every difference between two catalog_state results, one line each, kind first."""
    out: list[str] = []
    for kind in sorted(set(a) | set(b), key=lambda k: (list(KINDS).index(k) if k in KINDS else len(KINDS), k)):
        a_kind, b_kind = a.get(kind, {}), b.get(kind, {})
        if a_kind != b_kind:
            _diff(kind, "", a_kind, b_kind, out)
    return out


def compare(a_url: Any, b_url: Any) -> list[str]:
    """Differences between two databases (A, B), kind by kind; [] when they hold the same."""
    return diff_states(catalog_state(a_url), catalog_state(b_url))


def kinds_of(differences: list[str]) -> set[str]:
    """The kinds named by compare()'s lines."""
    return {line.split(":", 1)[0] for line in differences}
