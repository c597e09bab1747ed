# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""Schemas, extensions, collations and types (enum, composite, range, domain, shell) as catalog nodes."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from backup_engine.engines.postgresql.catalog_common import (
    FIRST_NORMAL_OID,
    Reading,
    literal,
    qualified,
    user_ns,
    user_object,
)

SCHEMAS_SQL = f"""
SELECT n.oid, n.nspname, quote_ident(n.nspname), obj_description(n.oid, 'pg_namespace')
FROM pg_namespace n WHERE {user_object('pg_namespace', 'n.oid')} ORDER BY 2"""

EXTENSIONS_SQL = f"""
SELECT x.oid, x.extname, quote_ident(x.extname), quote_ident(n.nspname), x.extconfig, x.extcondition
FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE x.oid >= {FIRST_NORMAL_OID} ORDER BY 2"""

MEMBERS_SQL = """
SELECT d.classid::regclass::text, d.objid, d.refobjid FROM pg_depend d
WHERE d.deptype = 'e' AND d.refclassid = 'pg_extension'::regclass"""

COLLATIONS_SQL = f"""
SELECT co.oid, {qualified('n', 'co.collname')}, co.collprovider::text, co.collisdeterministic, co.collcollate,
       co.collctype, coalesce(to_jsonb(co) ->> 'colliculocale', to_jsonb(co) ->> 'colllocale'),
       to_jsonb(co) ->> 'collicurules', n.nspname, co.collname
FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
WHERE {user_object('pg_collation', 'co.oid')}"""

TYPES_SQL = f"""
SELECT t.oid, format_type(t.oid, NULL), t.typtype::text, t.typrelid, coalesce(elem.oid, rg.rngtypid),
       t.typarray, t.typisdefined, c.relkind::text, n.nspname, t.typname
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_type elem ON elem.typarray = t.oid
LEFT JOIN pg_range rg ON rg.rngmultitypid = t.oid
LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE {user_object('pg_type', 't.oid')}"""

ENUM_LABELS_SQL = f"""
SELECT e.enumtypid, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {user_ns()} GROUP BY 1"""

COMPOSITE_ATTRIBUTES_SQL = f"""
SELECT a.attrelid, a.attnum, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> at.typcollation THEN a.attcollation::regcollation::text END
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type at ON at.oid = a.atttypid
WHERE c.relkind = 'c' AND a.attnum > 0 AND NOT a.attisdropped AND {user_ns()}
ORDER BY a.attrelid, a.attnum"""

RANGES_SQL = f"""
SELECT r.rngtypid, format_type(r.rngsubtype, NULL),
       CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation
            THEN r.rngcollation::regcollation::text END,
       CASE WHEN NOT opc.opcdefault THEN {qualified('opn', 'opc.opcname')} END,
       nullif(r.rngcanonical, 0)::regproc::text, nullif(r.rngsubdiff, 0)::regproc::text,
       r.rngmultitypid, format_type(r.rngmultitypid, NULL), r.rngcanonical::oid
FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid JOIN pg_namespace n ON n.oid = t.typnamespace
JOIN pg_type st ON st.oid = r.rngsubtype
JOIN pg_opclass opc ON opc.oid = r.rngsubopc JOIN pg_namespace opn ON opn.oid = opc.opcnamespace
WHERE {user_object('pg_type', 't.oid')}"""

BASE_TYPES_SQL = f"""
SELECT t.oid, t.typlen, t.typinput::regproc::text, t.typoutput::regproc::text,
       nullif(t.typreceive, 0)::regproc::text, nullif(t.typsend, 0)::regproc::text,
       nullif(t.typmodin, 0)::regproc::text, nullif(t.typmodout, 0)::regproc::text,
       nullif(t.typanalyze, 0)::regproc::text, nullif(to_jsonb(t) ->> 'typsubscript', '-'),
       t.typbyval, t.typalign::text, t.typstorage::text, t.typcategory::text, t.typispreferred, t.typdefault,
       CASE WHEN t.typelem <> 0 THEN format_type(t.typelem, NULL) END, t.typdelim::text, t.typcollation <> 0,
       ARRAY[t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze]::oid[]
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_type elem ON elem.typarray = t.oid
WHERE t.typtype = 'b' AND elem.oid IS NULL AND {user_object('pg_type', 't.oid')}"""

DOMAINS_SQL = f"""
SELECT t.oid, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
       pg_get_expr(t.typdefaultbin, 'pg_type'::regclass),
       CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation
            THEN t.typcollation::regcollation::text END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type bt ON bt.oid = t.typbasetype
WHERE t.typtype = 'd' AND {user_object('pg_type', 't.oid')}"""

DOMAIN_CHECKS_SQL = f"""
SELECT co.oid, co.contypid, quote_ident(co.conname), pg_get_constraintdef(co.oid), co.convalidated
FROM pg_constraint co JOIN pg_type t ON t.oid = co.contypid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE co.contype = 'c' AND {user_ns()} ORDER BY co.contypid, co.conname"""


def read_schemas(r: Reading) -> None:
    for oid, name, quoted, comment in r.rows(SCHEMAS_SQL):
        if name == "public":
            # a restore re-creates public (without its comment): the comment is always written
            statements = ["CREATE SCHEMA IF NOT EXISTS public",
                          f"COMMENT ON SCHEMA public IS {literal(comment) if comment is not None else 'NULL'}"]
            r.graph.add("pg_namespace", oid, "schema", name, statements, sort_name=("", name))
            continue
        node = r.graph.add("pg_namespace", oid, "schema", name, [f"CREATE SCHEMA {quoted}"], sort_name=("", name))
        r.comment("pg_namespace", oid, f"SCHEMA {quoted}", node.id)


def read_extensions(r: Reading) -> None:
    for oid, name, quoted, schema, config, conditions in r.rows(EXTENSIONS_SQL):
        node = r.graph.add("pg_extension", oid, "extension", name,
                           [f"CREATE EXTENSION IF NOT EXISTS {quoted} WITH SCHEMA {schema}"], sort_name=("", name))
        r.comment("pg_extension", oid, f"EXTENSION {quoted}", node.id)
        for table, condition in zip(config or [], conditions or [], strict=False):
            _refuse_config_rows(r, name, table, condition)
    for classid, objid, extension in r.rows(MEMBERS_SQL):
        r.graph.alias(classid, objid, f"pg_extension:{extension}")


def _refuse_config_rows(r: Reading, extension: str, table: int, condition: str) -> None:
    """Rows a user added to an extension's configuration table (pg_extension_config_dump) are refused."""
    r.cur.execute("SELECT c.oid::regclass::text, c.relkind::text FROM pg_class c WHERE c.oid = %s", (table,))
    found = r.cur.fetchone()
    if found is None or found[1] not in ("r", "p"):
        return  # a sequence's position: the extension script sets it again
    r.cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM ONLY {} {})").format(
        sql.SQL(found[0]), sql.SQL(condition or "")))  # the extension's own WHERE clause, from its catalog row
    if r.cur.fetchone()[0]:
        r.refused.append(f"rows of extension {extension}'s configuration table {found[0]}")


def read_collations(r: Reading) -> None:
    for oid, name, provider, deterministic, collate, ctype, locale, rules, schema, plain in r.rows(COLLATIONS_SQL):
        if provider == "d":
            continue
        options = [f"provider = {dict(i='icu', c='libc', b='builtin').get(provider, 'libc')}"]
        if not deterministic:
            options.append("deterministic = false")
        if provider in ("i", "b"):
            options.append(f"locale = {literal(locale or '')}")
            if rules:
                options.append(f"rules = {literal(rules)}")
        elif collate == ctype:
            options.append(f"locale = {literal(collate or '')}")
        else:
            options += [f"lc_collate = {literal(collate or '')}", f"lc_ctype = {literal(ctype or '')}"]
        node = r.graph.add("pg_collation", oid, "collation", name,
                           [f"CREATE COLLATION {name} ({', '.join(options)})"], sort_name=(schema, plain))
        r.comment("pg_collation", oid, f"COLLATION {name}", node.id)


def read_types(r: Reading) -> None:
    """Enums, composite types, ranges, domains, base types and shells; arrays, row types and
    multiranges are aliases of what makes them."""
    types = {row[0]: row for row in r.rows(TYPES_SQL)}
    labels = dict(r.rows(ENUM_LABELS_SQL))
    attributes: dict[int, list[tuple]] = {}
    for relid, attnum, name, type_text, collation in r.rows(COMPOSITE_ATTRIBUTES_SQL):
        attributes.setdefault(relid, []).append((attnum, name, type_text, collation))
    for oid, (_, name, kind, relid, made_by, _, defined, relkind, schema, plain) in types.items():
        if made_by:  # an array (of its element type) or a multirange (of its range type)
            r.graph.alias("pg_type", oid, f"pg_type:{made_by}")
        elif relid and relkind != "c":
            r.graph.alias("pg_type", oid, f"pg_class:{relid}")  # a table's or view's row type
        elif kind == "e":
            values = ", ".join(literal(label) for label in labels.get(oid, []))
            _type_node(r, oid, "enum", name, [f"CREATE TYPE {name} AS ENUM ({values})"], schema, plain)
        elif kind == "c":
            node = _composite(r, oid, name, relid, attributes.get(relid, []), schema, plain)
            r.graph.alias("pg_class", relid, node)
        elif kind == "p" and not defined:
            _type_node(r, oid, "shell type", name, [f"CREATE TYPE {name}"], schema, plain)
    _base_types(r, types)
    _ranges(r, types)
    _domains(r, types)


ALIGNMENT = {"c": "char", "s": "int2", "i": "int4", "d": "double"}
TYPE_STORAGE = {"p": "plain", "e": "external", "m": "main", "x": "extended"}


def _shell(r: Reading, oid: int, name: str, schema: str, plain: str, functions: list[int]) -> None:
    """`CREATE TYPE name` first: the type's support functions take or return it before it is whole."""
    shell = r.graph.add("shell", oid, "shell type", f"shell of {name}", [f"CREATE TYPE {name}"],
                        sort_name=(schema, plain))
    r.graph.depend(f"pg_type:{oid}", shell.id)
    for function in functions:
        if function:
            r.graph.redirects[(f"pg_proc:{function}", f"pg_type:{oid}")] = shell.id


def _base_types(r: Reading, types: dict[int, Any]) -> None:
    """Base types (input and output functions in C), as pg_dump writes them: a shell, the
    functions, then CREATE TYPE with every property."""
    for (oid, length, input_, output, receive, send, modin, modout, analyze, subscript, by_value, align, storage,
         category, preferred, default, element, delimiter, collatable, functions) in r.rows(BASE_TYPES_SQL):
        name, made_by, schema, plain = types[oid][1], types[oid][4], types[oid][8], types[oid][9]
        if made_by:
            continue
        options = [f"INTERNALLENGTH = {'variable' if length < 0 else length}", f"INPUT = {input_}",
                   f"OUTPUT = {output}"]
        options += [f"{word} = {function}" for word, function in (
            ("RECEIVE", receive), ("SEND", send), ("TYPMOD_IN", modin), ("TYPMOD_OUT", modout),
            ("ANALYZE", analyze), ("SUBSCRIPT", subscript)) if function]
        options += ["PASSEDBYVALUE"] if by_value else []
        options += [f"ALIGNMENT = {ALIGNMENT[align]}", f"STORAGE = {TYPE_STORAGE[storage]}",
                    f"CATEGORY = {literal(category)}"]
        options += ["PREFERRED = true"] if preferred else []
        options += [f"DEFAULT = {literal(default)}"] if default is not None else []
        options += [f"ELEMENT = {element}"] if element else []
        options += [f"DELIMITER = {literal(delimiter)}"] if delimiter != "," else []
        options += ["COLLATABLE = true"] if collatable else []
        _type_node(r, oid, "type", name, [f"CREATE TYPE {name} (\n    " + ",\n    ".join(options) + "\n)"],
                   schema, plain)
        _shell(r, oid, name, schema, plain, list(functions))


def _type_node(r: Reading, oid: int, kind: str, name: str, statements: list[str], schema: str, plain: str,
               word: str = "TYPE") -> str:
    node = r.graph.add("pg_type", oid, kind, name, statements, sort_name=(schema, plain))
    r.comment("pg_type", oid, f"{word} {name}", node.id)
    return node.id


def _composite(r: Reading, oid: int, name: str, relid: int, attributes: list[tuple], schema: str,
               plain: str) -> str:
    parts = [f"{attr} {type_text}" + (f" COLLATE {collation}" if collation else "")
             for _, attr, type_text, collation in attributes]
    body = ",\n    ".join(parts)
    node = _type_node(r, oid, "composite type", name, [f"CREATE TYPE {name} AS (\n    {body}\n)"], schema, plain)
    for attnum, attr, _, _ in attributes:
        r.comment("pg_class", relid, f"COLUMN {name}.{attr}", node, subid=attnum)
    return node


def _ranges(r: Reading, types: dict[int, Any]) -> None:
    for oid, subtype, collation, opclass, canonical, diff, multi_oid, multirange, canonical_oid in r.rows(
            RANGES_SQL):
        name, schema, plain = types[oid][1], types[oid][8], types[oid][9]
        options = [f"subtype = {subtype}", f"multirange_type_name = {multirange}"]
        options += [f"subtype_opclass = {opclass}"] if opclass else []
        options += [f"collation = {collation}"] if collation else []
        options += [f"canonical = {canonical}"] if canonical else []
        options += [f"subtype_diff = {diff}"] if diff else []
        node = _type_node(r, oid, "range type", name, [f"CREATE TYPE {name} AS RANGE (\n    "
                                                       + ",\n    ".join(options) + "\n)"], schema, plain)
        r.graph.alias("pg_type", multi_oid, node)
        if canonical:
            _shell(r, oid, name, schema, plain, [canonical_oid])


def _domains(r: Reading, types: dict[int, Any]) -> None:
    checks: dict[int, list[tuple]] = {}
    for con_oid, typid, con_name, definition, validated in r.rows(DOMAIN_CHECKS_SQL):
        checks.setdefault(typid, []).append((con_oid, con_name, definition, validated))
    for oid, base, not_null, default, collation in r.rows(DOMAINS_SQL):
        name, schema, plain = types[oid][1], types[oid][8], types[oid][9]
        parts = [f"CREATE DOMAIN {name} AS {base}"]
        parts += [f"COLLATE {collation}"] if collation else []
        parts += [f"DEFAULT {default}"] if default is not None else []
        parts += ["NOT NULL"] if not_null else []
        later: list[tuple] = []
        for con_oid, con_name, definition, validated in checks.get(oid, []):
            calls = r.graph.references("pg_constraint", con_oid, "pg_proc", "n")
            if validated and not calls:
                parts.append(f"CONSTRAINT {con_name} {definition}")
            else:
                later.append((con_oid, con_name, definition, validated))
        node = _type_node(r, oid, "domain", name, ["\n    ".join(parts)], schema, plain, word="DOMAIN")
        for con_oid, con_name, definition, validated in later:
            check = r.graph.add("pg_constraint", con_oid, "domain constraint", f"{con_name} on domain {name}",
                                [f"ALTER DOMAIN {name} ADD CONSTRAINT {con_name} {definition}"],
                                section="pre" if validated else "post", sort_name=(schema, plain, con_name))
            r.graph.depend(check.id, node)
            r.comment("pg_constraint", con_oid, f"CONSTRAINT {con_name} ON DOMAIN {name}", check.id)
        separate = {check[0] for check in later}
        for con_oid, con_name, _, _ in checks.get(oid, []):
            if con_oid not in separate:
                r.graph.alias("pg_constraint", con_oid, node)
                r.comment("pg_constraint", con_oid, f"CONSTRAINT {con_name} ON DOMAIN {name}", node)
