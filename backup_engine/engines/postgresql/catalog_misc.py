# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""Languages, access methods, transforms, text search objects, foreign-data wrappers, servers and
user mappings as catalog nodes; large objects; comments; and what a one-database dump does not
carry (event triggers, publications, subscriptions, database settings), or cannot (security labels)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from backup_engine.engines.postgresql.catalog_common import (
    Reading,
    literal,
    made_by_user,
    options_sql,
    qualified,
    user_object,
)

LANGUAGES_SQL = f"""
SELECT l.oid, quote_ident(l.lanname), l.lanpltrusted, nullif(l.lanplcallfoid, 0)::regproc::text,
       nullif(l.laninline, 0)::regproc::text, nullif(l.lanvalidator, 0)::regproc::text
FROM pg_language l WHERE l.lanispl AND {made_by_user('pg_language', 'l')}"""

ACCESS_METHODS_SQL = f"""
SELECT am.oid, quote_ident(am.amname), am.amtype::text, am.amhandler::regproc::text
FROM pg_am am WHERE {made_by_user('pg_am', 'am')}"""

TRANSFORMS_SQL = f"""
SELECT tr.oid, format_type(tr.trftype, NULL), quote_ident(l.lanname),
       nullif(tr.trffromsql, 0)::regprocedure::text, nullif(tr.trftosql, 0)::regprocedure::text
FROM pg_transform tr JOIN pg_language l ON l.oid = tr.trflang WHERE {made_by_user('pg_transform', 'tr')}"""

TS_PARSERS_SQL = f"""
SELECT p.oid, {qualified('n', 'p.prsname')}, p.prsstart::regproc::text, p.prstoken::regproc::text,
       p.prsend::regproc::text, p.prslextype::regproc::text, nullif(p.prsheadline, 0)::regproc::text,
       n.nspname, p.prsname
FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace WHERE {user_object('pg_ts_parser', 'p.oid')}"""

TS_TEMPLATES_SQL = f"""
SELECT t.oid, {qualified('n', 't.tmplname')}, nullif(t.tmplinit, 0)::regproc::text, t.tmpllexize::regproc::text,
       n.nspname, t.tmplname
FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
WHERE {user_object('pg_ts_template', 't.oid')}"""

TS_DICTIONARIES_SQL = f"""
SELECT d.oid, {qualified('n', 'd.dictname')},
       (SELECT {qualified('tn', 'tm.tmplname')} FROM pg_ts_template tm JOIN pg_namespace tn
        ON tn.oid = tm.tmplnamespace WHERE tm.oid = d.dicttemplate),
       d.dictinitoption, n.nspname, d.dictname
FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE {user_object('pg_ts_dict', 'd.oid')}"""

TS_CONFIGURATIONS_SQL = f"""
SELECT c.oid, {qualified('n', 'c.cfgname')},
       (SELECT {qualified('pn', 'pr.prsname')} FROM pg_ts_parser pr JOIN pg_namespace pn
        ON pn.oid = pr.prsnamespace WHERE pr.oid = c.cfgparser),
       (SELECT array_agg(quote_ident(tt.alias) || ' WITH ' || m.dicts ORDER BY m.maptokentype)
        FROM (SELECT maptokentype, string_agg(mapdict::regdictionary::text, ', ' ORDER BY mapseqno) AS dicts
              FROM pg_ts_config_map WHERE mapcfg = c.oid GROUP BY maptokentype) m
        JOIN ts_token_type(c.cfgparser) tt ON tt.tokid = m.maptokentype),
       n.nspname, c.cfgname
FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE {user_object('pg_ts_config', 'c.oid')}"""

WRAPPERS_SQL = f"""
SELECT w.oid, quote_ident(w.fdwname), nullif(w.fdwhandler, 0)::regproc::text,
       nullif(w.fdwvalidator, 0)::regproc::text, {options_sql('w.fdwoptions')}
FROM pg_foreign_data_wrapper w WHERE {made_by_user('pg_foreign_data_wrapper', 'w')}"""

SERVERS_SQL = f"""
SELECT s.oid, quote_ident(s.srvname), s.srvtype, s.srvversion, quote_ident(w.fdwname), {options_sql('s.srvoptions')}
FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
WHERE {made_by_user('pg_foreign_server', 's')}"""

USER_MAPPINGS_SQL = f"""
SELECT u.umid, u.srvid, CASE WHEN u.umuser = 0 THEN 'public' ELSE quote_ident(u.usename) END,
       quote_ident(u.srvname), {options_sql('u.umoptions')}
FROM pg_user_mappings u JOIN pg_foreign_server s ON s.oid = u.srvid
WHERE {made_by_user('pg_foreign_server', 's')}"""

LARGE_OBJECTS_SQL = """
SELECT l.oid, obj_description(l.oid, 'pg_largeobject') FROM pg_largeobject_metadata l ORDER BY l.oid"""

COMMENTS_SQL = """
SELECT d.classoid::regclass::text, d.objoid, d.objsubid, d.description,
       pg_describe_object(d.classoid, d.objoid, d.objsubid)
FROM pg_description d
WHERE d.objoid >= 16384 AND d.classoid <> 'pg_largeobject'::regclass"""

# Database-level objects a dump of one database leaves out (pg_dump without --create does too).
NOT_CARRIED_SQL = f"""
SELECT 'event trigger ' || quote_ident(e.evtname) FROM pg_event_trigger e
WHERE {made_by_user('pg_event_trigger', 'e')}
UNION ALL SELECT 'publication ' || quote_ident(p.pubname) FROM pg_publication p
UNION ALL SELECT 'subscription ' || quote_ident(s.subname) FROM pg_subscription s
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL SELECT 'database setting ' || o || CASE WHEN s.setrole = 0 THEN '' ELSE ' for role '
                 || quote_ident(s.setrole::regrole::text) END
FROM pg_db_role_setting s, unnest(s.setconfig) o
WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL SELECT 'database comment' FROM pg_database d
WHERE d.datname = current_database() AND shobj_description(d.oid, 'pg_database') IS NOT NULL
ORDER BY 1"""

SECURITY_LABELS_SQL = """
SELECT 'security label (' || provider || ') on ' || objtype || ' ' || objname FROM pg_seclabels ORDER BY 1"""


def read_languages(r: Reading) -> None:
    for oid, name, trusted, handler, inline, validator in r.rows(LANGUAGES_SQL):
        statement = f"CREATE {'TRUSTED ' if trusted else ''}PROCEDURAL LANGUAGE {name} HANDLER {handler}"
        statement += f" INLINE {inline}" if inline else ""
        statement += f" VALIDATOR {validator}" if validator else ""
        node = r.graph.add("pg_language", oid, "language", name, [statement], sort_name=("", name))
        r.comment("pg_language", oid, f"LANGUAGE {name}", node.id)


def read_access_methods(r: Reading) -> None:
    for oid, name, kind, handler in r.rows(ACCESS_METHODS_SQL):
        statement = f"CREATE ACCESS METHOD {name} TYPE {'TABLE' if kind == 't' else 'INDEX'} HANDLER {handler}"
        node = r.graph.add("pg_am", oid, "access method", name, [statement], sort_name=("", name))
        r.comment("pg_am", oid, f"ACCESS METHOD {name}", node.id)


def read_transforms(r: Reading) -> None:
    for oid, type_name, language, from_sql, to_sql in r.rows(TRANSFORMS_SQL):
        parts = [f"FROM SQL WITH FUNCTION {from_sql}"] if from_sql else []
        parts += [f"TO SQL WITH FUNCTION {to_sql}"] if to_sql else []
        name = f"FOR {type_name} LANGUAGE {language}"
        node = r.graph.add("pg_transform", oid, "transform", name,
                           [f"CREATE TRANSFORM {name} ({', '.join(parts)})"], sort_name=(type_name, language))
        r.comment("pg_transform", oid, f"TRANSFORM {name}", node.id)


def read_text_search(r: Reading) -> None:
    for oid, name, start, token, end, lextypes, headline, schema, plain in r.rows(TS_PARSERS_SQL):
        options = [f"START = {start}", f"GETTOKEN = {token}", f"END = {end}", f"LEXTYPES = {lextypes}"]
        options += [f"HEADLINE = {headline}"] if headline else []
        _node(r, "pg_ts_parser", oid, "text search parser", name,
              f"CREATE TEXT SEARCH PARSER {name} ({', '.join(options)})", schema, plain)
    for oid, name, init, lexize, schema, plain in r.rows(TS_TEMPLATES_SQL):
        options = ([f"INIT = {init}"] if init else []) + [f"LEXIZE = {lexize}"]
        _node(r, "pg_ts_template", oid, "text search template", name,
              f"CREATE TEXT SEARCH TEMPLATE {name} ({', '.join(options)})", schema, plain)
    for oid, name, template, init_options, schema, plain in r.rows(TS_DICTIONARIES_SQL):
        options = f"TEMPLATE = {template}" + (f", {init_options}" if init_options else "")
        _node(r, "pg_ts_dict", oid, "text search dictionary", name,
              f"CREATE TEXT SEARCH DICTIONARY {name} ({options})", schema, plain)
    for oid, name, parser, mappings, schema, plain in r.rows(TS_CONFIGURATIONS_SQL):
        node = _node(r, "pg_ts_config", oid, "text search configuration", name,
                     f"CREATE TEXT SEARCH CONFIGURATION {name} (PARSER = {parser})", schema, plain)
        r.graph.nodes[node].statements += [f"ALTER TEXT SEARCH CONFIGURATION {name} ADD MAPPING FOR {mapping}"
                                           for mapping in mappings or []]


def _node(r: Reading, classid: str, oid: int, kind: str, name: str, statement: str, schema: str, plain: str) -> str:
    node = r.graph.add(classid, oid, kind, name, [statement], sort_name=(schema, plain))
    r.comment(classid, oid, f"{kind.upper()} {name}", node.id)
    return node.id


def read_foreign_data(r: Reading) -> None:
    for oid, name, handler, validator, options in r.rows(WRAPPERS_SQL):
        statement = f"CREATE FOREIGN DATA WRAPPER {name}"
        statement += f" HANDLER {handler}" if handler else ""
        statement += f" VALIDATOR {validator}" if validator else ""
        statement += f" OPTIONS ({options})" if options else ""
        node = r.graph.add("pg_foreign_data_wrapper", oid, "foreign-data wrapper", name, [statement],
                           sort_name=("", name))
        r.comment("pg_foreign_data_wrapper", oid, f"FOREIGN DATA WRAPPER {name}", node.id)
    for oid, name, kind, version, wrapper, options in r.rows(SERVERS_SQL):
        statement = f"CREATE SERVER {name}"
        statement += f" TYPE {literal(kind)}" if kind is not None else ""
        statement += f" VERSION {literal(version)}" if version is not None else ""
        statement += f" FOREIGN DATA WRAPPER {wrapper}"
        statement += f" OPTIONS ({options})" if options else ""
        node = r.graph.add("pg_foreign_server", oid, "server", name, [statement], sort_name=("", name))
        r.comment("pg_foreign_server", oid, f"SERVER {name}", node.id)
    for oid, server_oid, user, server, options in r.rows(USER_MAPPINGS_SQL):
        statement = f"CREATE USER MAPPING FOR {user} SERVER {server}"
        statement += f" OPTIONS ({options})" if options else ""
        node = r.graph.add("pg_user_mapping", oid, "user mapping", f"for {user} server {server}", [statement],
                           sort_name=("", server, user))
        r.graph.depend(node.id, r.graph.resolve("pg_foreign_server", server_oid))


def read_large_objects(r: Reading) -> list[tuple[int, str | None]]:
    return [(oid, comment) for oid, comment in r.rows(LARGE_OBJECTS_SQL)]


def read_comments(r: Reading) -> None:
    """COMMENT ON every carried object, right after the node that creates it. A comment on an
    object that is carried but whose comment has no place is refused (never dropped); comments
    on what is not carried (an extension's members, event triggers) go with their objects."""
    for classid, oid, subid, text, described in r.rows(COMMENTS_SQL):
        found = r.graph.comment_targets.get((classid, oid, subid))
        if found is not None:
            target, node_id = found
            r.graph.nodes[node_id].statements.append(f"COMMENT ON {target} IS {literal(text)}")
        elif (classid, oid) in r.graph.aliases and not r.graph.aliases[(classid, oid)].startswith("pg_extension:"):
            r.refused.append(f"the comment on {described}")


def read_database_level(r: Reading) -> None:
    r.not_carried += [name for (name,) in r.rows(NOT_CARRIED_SQL)]
    r.refused += [label for (label,) in r.rows(SECURITY_LABELS_SQL)]


LARGE_OBJECT_CHUNK = 1 << 20


def large_object_chunks(cur: Any, oid: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of a large object, read 1 MiB at a time (never whole in memory)."""
    offset = 0
    while True:
        cur.execute("SELECT pg_catalog.lo_get(%s, %s, %s)", (oid, offset, LARGE_OBJECT_CHUNK))
        data = bytes(cur.fetchone()[0])
        if data or offset == 0:
            yield offset, data
        if len(data) < LARGE_OBJECT_CHUNK:
            return
        offset += len(data)
