# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""Functions, procedures, aggregates, operators, operator families and classes, casts and
conversions as catalog nodes.

Functions and procedures are pg_get_functiondef's text; the others have no deparser of their
own and are written as pg_dump writes them, from their catalog rows, every name they mention
printed by regproc/regoperator/format_type under `search_path = pg_catalog` (so qualified).
"""

from __future__ import annotations

from backup_engine.engines.postgresql.catalog_common import (
    Reading,
    literal,
    made_by_user,
    qualified,
    user_object,
)

NOT_INTERNAL = ("NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass"
                " AND i.objid = p.oid AND i.deptype = 'i')")  # range constructors and the like come with their type

FUNCTIONS_SQL = f"""
SELECT p.oid, p.oid::regprocedure::text, p.prokind::text, pg_get_functiondef(p.oid),
       {qualified('n', 'p.proname')}, pg_get_function_identity_arguments(p.oid), n.nspname, p.proname
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind <> 'a' AND {user_object('pg_proc', 'p.oid')} AND {NOT_INTERNAL}"""

OPERATOR_NAME = ("(SELECT 'OPERATOR(' || quote_ident(opn.nspname) || '.' || op.oprname || ')' FROM pg_operator op"
                 " JOIN pg_namespace opn ON opn.oid = op.oprnamespace WHERE op.oid = {0})")

AGGREGATES_SQL = f"""
SELECT p.oid, p.oid::regprocedure::text, {qualified('n', 'p.proname')}, pg_get_function_arguments(p.oid),
       pg_get_function_identity_arguments(p.oid), a.aggkind::text,
       a.aggtransfn::regproc::text, format_type(a.aggtranstype, NULL), a.aggtransspace,
       nullif(a.aggfinalfn, 0)::regproc::text, a.aggfinalextra, a.aggfinalmodify::text,
       nullif(a.aggcombinefn, 0)::regproc::text, nullif(a.aggserialfn, 0)::regproc::text,
       nullif(a.aggdeserialfn, 0)::regproc::text, a.agginitval,
       nullif(a.aggmtransfn, 0)::regproc::text, nullif(a.aggminvtransfn, 0)::regproc::text,
       CASE WHEN a.aggmtranstype <> 0 THEN format_type(a.aggmtranstype, NULL) END, a.aggmtransspace,
       nullif(a.aggmfinalfn, 0)::regproc::text, a.aggmfinalextra, a.aggmfinalmodify::text, a.aggminitval,
       {OPERATOR_NAME.format('a.aggsortop')}, p.proparallel::text, n.nspname, p.proname
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {user_object('pg_proc', 'p.oid')}"""

OPERATORS_SQL = f"""
SELECT o.oid, o.oid::regoperator::text, quote_ident(n.nspname) || '.' || o.oprname,
       CASE WHEN o.oprleft <> 0 THEN format_type(o.oprleft, NULL) END,
       CASE WHEN o.oprright <> 0 THEN format_type(o.oprright, NULL) END,
       o.oprcode::regproc::text, {OPERATOR_NAME.format('o.oprcom')}, {OPERATOR_NAME.format('o.oprnegate')},
       nullif(o.oprrest, 0)::regproc::text, nullif(o.oprjoin, 0)::regproc::text, o.oprcanmerge, o.oprcanhash,
       n.nspname, o.oprname
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
WHERE o.oprcode <> 0 AND {user_object('pg_operator', 'o.oid')}"""

FAMILY_NAME = ("(SELECT {q} || ' USING ' || quote_ident(fa.amname) FROM pg_opfamily f JOIN pg_namespace fn"
               " ON fn.oid = f.opfnamespace JOIN pg_am fa ON fa.oid = f.opfmethod WHERE f.oid = {{0}})"
               ).format(q=qualified("fn", "f.opfname"))
SORT_FAMILY = ("(SELECT {q} FROM pg_opfamily f JOIN pg_namespace fn ON fn.oid = f.opfnamespace"
               " WHERE f.oid = {{0}})").format(q=qualified("fn", "f.opfname"))

OPFAMILIES_SQL = f"""
SELECT f.oid, {qualified('n', 'f.opfname')}, quote_ident(am.amname), n.nspname, f.opfname
FROM pg_opfamily f JOIN pg_am am ON am.oid = f.opfmethod JOIN pg_namespace n ON n.oid = f.opfnamespace
WHERE {user_object('pg_opfamily', 'f.oid')}"""

OPCLASSES_SQL = f"""
SELECT oc.oid, {qualified('n', 'oc.opcname')}, quote_ident(am.amname), oc.opcdefault, format_type(oc.opcintype, NULL),
       oc.opcfamily, {SORT_FAMILY.format('oc.opcfamily')},
       CASE WHEN oc.opckeytype <> 0 THEN format_type(oc.opckeytype, NULL) END, n.nspname, oc.opcname
FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod JOIN pg_namespace n ON n.oid = oc.opcnamespace
WHERE {user_object('pg_opclass', 'oc.oid')}"""

MEMBER_OF_CLASS = ("(SELECT d.refobjid FROM pg_depend d WHERE d.classid = '{0}'::regclass AND d.objid = {1}"
                   " AND d.refclassid = 'pg_opclass'::regclass LIMIT 1)")

AMOPS_SQL = f"""
SELECT ao.oid, ao.amopfamily, {MEMBER_OF_CLASS.format('pg_amop', 'ao.oid')}, ao.amopstrategy,
       ao.amopopr::regoperator::text, ao.amoppurpose::text, {SORT_FAMILY.format('ao.amopsortfamily')},
       format_type(ao.amoplefttype, NULL), format_type(ao.amoprighttype, NULL)
FROM pg_amop ao JOIN pg_opfamily f ON f.oid = ao.amopfamily JOIN pg_namespace n ON n.oid = f.opfnamespace
WHERE {user_object('pg_opfamily', 'f.oid')}
ORDER BY ao.amopfamily, ao.amopstrategy, 8, 9"""

AMPROCS_SQL = f"""
SELECT ap.oid, ap.amprocfamily, {MEMBER_OF_CLASS.format('pg_amproc', 'ap.oid')}, ap.amprocnum,
       ap.amproc::regprocedure::text, format_type(ap.amproclefttype, NULL), format_type(ap.amprocrighttype, NULL)
FROM pg_amproc ap JOIN pg_opfamily f ON f.oid = ap.amprocfamily JOIN pg_namespace n ON n.oid = f.opfnamespace
WHERE {user_object('pg_opfamily', 'f.oid')}
ORDER BY ap.amprocfamily, ap.amprocnum, 6, 7"""

CASTS_SQL = f"""
SELECT ca.oid, format_type(ca.castsource, NULL), format_type(ca.casttarget, NULL),
       nullif(ca.castfunc, 0)::regprocedure::text, ca.castcontext::text, ca.castmethod::text
FROM pg_cast ca WHERE {made_by_user('pg_cast', 'ca')}
  AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_cast'::regclass AND i.objid = ca.oid
                  AND i.deptype = 'i')"""

CONVERSIONS_SQL = f"""
SELECT cv.oid, {qualified('n', 'cv.conname')}, pg_encoding_to_char(cv.conforencoding),
       pg_encoding_to_char(cv.contoencoding), cv.conproc::regproc::text, cv.condefault, n.nspname, cv.conname
FROM pg_conversion cv JOIN pg_namespace n ON n.oid = cv.connamespace
WHERE {user_object('pg_conversion', 'cv.oid')}"""

MODIFY = {"r": "READ_ONLY", "s": "SHAREABLE", "w": "READ_WRITE"}


def read_functions(r: Reading) -> None:
    for oid, name, kind, definition, qname, args, schema, plain in r.rows(FUNCTIONS_SQL):
        word = "PROCEDURE" if kind == "p" else "FUNCTION"
        node = r.graph.add("pg_proc", oid, "procedure" if kind == "p" else "function", name, [definition],
                           sort_name=(schema, plain, args))
        r.comment("pg_proc", oid, f"{word} {qname}({args})", node.id)


def read_aggregates(r: Reading) -> None:
    for (oid, name, qname, args, identity, kind, sfunc, stype, sspace, ffunc, fextra, fmodify, combine, serial,
         deserial, initcond, msfunc, minvfunc, mstype, msspace, mffunc, mfextra, mfmodify, minitcond, sortop,
         parallel, schema, plain) in r.rows(AGGREGATES_SQL):
        options = [f"SFUNC = {sfunc}", f"STYPE = {stype}"]
        options += [f"SSPACE = {sspace}"] if sspace else []
        if ffunc:
            options.append(f"FINALFUNC = {ffunc}")
            options += ["FINALFUNC_EXTRA"] if fextra else []
        if fmodify != ("w" if kind in ("o", "h") else "r"):
            options.append(f"FINALFUNC_MODIFY = {MODIFY[fmodify]}")
        options += [f"COMBINEFUNC = {combine}"] if combine else []
        options += [f"SERIALFUNC = {serial}"] if serial else []
        options += [f"DESERIALFUNC = {deserial}"] if deserial else []
        options += [f"INITCOND = {literal(initcond)}"] if initcond is not None else []
        if msfunc:
            options += [f"MSFUNC = {msfunc}", f"MINVFUNC = {minvfunc}", f"MSTYPE = {mstype}"]
            options += [f"MSSPACE = {msspace}"] if msspace else []
            if mffunc:
                options.append(f"MFINALFUNC = {mffunc}")
                options += ["MFINALFUNC_EXTRA"] if mfextra else []
            if mfmodify != "r":
                options.append(f"MFINALFUNC_MODIFY = {MODIFY[mfmodify]}")
            options += [f"MINITCOND = {literal(minitcond)}"] if minitcond is not None else []
        options += [f"SORTOP = {sortop}"] if sortop else []
        options += ["HYPOTHETICAL"] if kind == "h" else []
        options += [f"PARALLEL = {dict(s='SAFE', r='RESTRICTED').get(parallel)}"] if parallel in ("s", "r") else []
        body = ",\n    ".join(options)
        node = r.graph.add("pg_proc", oid, "aggregate", name,
                           [f"CREATE AGGREGATE {qname}({args or '*'}) (\n    {body}\n)"],
                           sort_name=(schema, plain, identity))
        r.comment("pg_proc", oid, f"AGGREGATE {qname}({identity or '*'})", node.id)


def read_operators(r: Reading) -> None:
    for (oid, name, qname, left, right, function, commutator, negator, restrict, join, merges, hashes, schema,
         plain) in r.rows(OPERATORS_SQL):
        options = [f"FUNCTION = {function}"]
        options += [f"LEFTARG = {left}"] if left else []
        options += [f"RIGHTARG = {right}"] if right else []
        options += [f"COMMUTATOR = {commutator}"] if commutator else []
        options += [f"NEGATOR = {negator}"] if negator else []
        options += ["MERGES"] if merges else []
        options += ["HASHES"] if hashes else []
        options += [f"RESTRICT = {restrict}"] if restrict else []
        options += [f"JOIN = {join}"] if join else []
        body = ",\n    ".join(options)
        node = r.graph.add("pg_operator", oid, "operator", name, [f"CREATE OPERATOR {qname} (\n    {body}\n)"],
                           sort_name=(schema, plain, left or "", right or ""))
        r.comment("pg_operator", oid, f"OPERATOR {qname} ({left or 'NONE'}, {right or 'NONE'})", node.id)


def _member(item: tuple) -> str:
    """An operator or support function of an operator class or family, as CREATE/ALTER take it."""
    if item[0] == "op":
        _, strategy, operator, purpose, sort_family = item
        order = f" FOR ORDER BY {sort_family}" if purpose == "o" else ""
        return f"OPERATOR {strategy} {operator}{order}"
    _, number, left, right, function = item
    return f"FUNCTION {number} ({left}, {right}) {function}"


def read_operator_classes(r: Reading) -> None:
    """Families (CREATE, then ALTER ... ADD of their loose members) and classes (CREATE with their members)."""
    members: dict[tuple[str, int], list[tuple]] = {}
    member_oids: list[tuple[str, int, str]] = []
    for oid, family, opclass, strategy, operator, purpose, sort_family, _, _ in r.rows(AMOPS_SQL):
        owner = ("pg_opclass", opclass) if opclass else ("pg_opfamily", family)
        members.setdefault(owner, []).append(("op", strategy, operator, purpose, sort_family))
        member_oids.append(("pg_amop", oid, f"{owner[0]}:{owner[1]}"))
    for oid, family, opclass, number, function, left, right in r.rows(AMPROCS_SQL):
        owner = ("pg_opclass", opclass) if opclass else ("pg_opfamily", family)
        members.setdefault(owner, []).append(("fn", number, left, right, function))
        member_oids.append(("pg_amproc", oid, f"{owner[0]}:{owner[1]}"))
    for oid, qname, method, schema, plain in r.rows(OPFAMILIES_SQL):
        statements = [f"CREATE OPERATOR FAMILY {qname} USING {method}"]
        loose = members.get(("pg_opfamily", oid), [])
        if loose:
            statements.append(f"ALTER OPERATOR FAMILY {qname} USING {method} ADD\n    "
                              + ",\n    ".join(_member(item) for item in loose))
        node = r.graph.add("pg_opfamily", oid, "operator family", f"{qname} USING {method}", statements,
                           sort_name=(schema, plain, method))
        r.comment("pg_opfamily", oid, f"OPERATOR FAMILY {qname} USING {method}", node.id)
    for oid, qname, method, default, in_type, family, family_name, key_type, schema, plain in r.rows(OPCLASSES_SQL):
        items = [_member(item) for item in members.get(("pg_opclass", oid), [])]
        items += [f"STORAGE {key_type}"] if key_type else []
        items = items or [f"STORAGE {in_type}"]
        head = f"CREATE OPERATOR CLASS {qname}{' DEFAULT' if default else ''} FOR TYPE {in_type} USING {method}"
        statement = f"{head} FAMILY {family_name} AS\n    " + ",\n    ".join(items)
        node = r.graph.add("pg_opclass", oid, "operator class", f"{qname} USING {method}", [statement],
                           sort_name=(schema, plain, method))
        r.graph.depend(node.id, r.graph.resolve("pg_opfamily", family))
        r.comment("pg_opclass", oid, f"OPERATOR CLASS {qname} USING {method}", node.id)
    for classid, oid, node_id in member_oids:
        r.graph.alias(classid, oid, node_id)


def read_casts(r: Reading) -> None:
    for oid, source, target, function, context, method in r.rows(CASTS_SQL):
        how = {"f": f"WITH FUNCTION {function}", "i": "WITH INOUT", "b": "WITHOUT FUNCTION"}[method]
        when = {"a": " AS ASSIGNMENT", "i": " AS IMPLICIT"}.get(context, "")
        name = f"({source} AS {target})"
        node = r.graph.add("pg_cast", oid, "cast", name, [f"CREATE CAST {name} {how}{when}"],
                           sort_name=(source, target))
        r.comment("pg_cast", oid, f"CAST {name}", node.id)


def read_conversions(r: Reading) -> None:
    for oid, qname, source, target, function, default, schema, plain in r.rows(CONVERSIONS_SQL):
        statement = (f"CREATE {'DEFAULT ' if default else ''}CONVERSION {qname} FOR {literal(source)}"
                     f" TO {literal(target)} FROM {function}")
        node = r.graph.add("pg_conversion", oid, "conversion", qname, [statement], sort_name=(schema, plain))
        r.comment("pg_conversion", oid, f"CONVERSION {qname}", node.id)
