"""A JSON backup's schema: a `DatabaseModel` as plain data and back.

The schema line of the document holds, per table, its columns (the source's exact type, a
portable kind, nullability, default, identity, generation), keys and constraints, and the
engine's extras (formats.model). For a restore into the same engine the model is rebuilt as it
was; across engines, `convert` maps it through the portable kinds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKeyConstraint,
    Identity,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.schema import DefaultClause
from sqlalchemy.sql.elements import ColumnClause

from backup_engine import errors
from backup_engine.formats import json_values
from backup_engine.formats.json_document import ItemsOnDemand, conversion_error
from backup_engine.formats.model import (
    CatalogType,
    ColumnSpec,
    DatabaseModel,
    TableShape,
    TableSpec,
    extras_from_dict,
    extras_to_dict,
    type_spec,
)


def _default_text(column: Column) -> str | None:
    default = column.server_default
    if isinstance(default, DefaultClause):
        arg = default.arg
        if isinstance(arg, str):
            return arg
        if isinstance(arg, ColumnClause) and arg.is_literal:
            return arg.name  # a literal column's text, as compiling it would print it
        return getattr(arg, "text", None) or str(arg)
    return None


def _clause_text(clause: Any) -> str:
    return getattr(clause, "text", None) or str(clause)


def literal_text(text: str) -> str:
    """What the document says of a SQL fragment kept as it is (a generated column's or a CHECK's
    expression, made a `literal_column`): as SQLAlchemy prints it."""
    return _clause_text(literal_column(text))


def _identity(column: Column) -> dict[str, Any] | None:
    ident = column.identity
    if ident is None:
        return None
    return {name: getattr(ident, name) for name in ("always", "on_null", "start", "increment", "minvalue",
                                                    "maxvalue", "cycle", "cache")}


def _fk_dict(fk: ForeignKeyConstraint) -> dict[str, Any]:
    return {"name": fk.name, "columns": [element.parent.name for element in fk.elements],
            "referred_table": fk.elements[0].column.table.key,
            "referred_columns": [element.column.name for element in fk.elements],
            "ondelete": fk.ondelete, "onupdate": fk.onupdate, "match": fk.match,
            "deferrable": fk.deferrable, "initially": fk.initially}


def _in_order(constraints: set[Any]) -> list[Any]:
    """A table's constraints in a fixed order, by name, then columns or text: SQLAlchemy keeps them
    in a set, whose order changes from one process to the next (and so did the document's)."""
    def key(constraint: Any) -> tuple[str, str]:
        if isinstance(constraint, CheckConstraint):
            return constraint.name or "", _clause_text(constraint.sqltext) or ""
        return constraint.name or "", ",".join(column.name for column in constraint.columns)

    return sorted(constraints, key=key)


def table_to_dict(table: Table, kinds: dict[str, tuple[str, str | None]], row_columns: list[str],
                  display_name: str, dialect: str) -> dict[str, Any]:
    """One table as plain data; `dialect` names the SQLAlchemy dialect options it may carry."""
    return spec_to_dict(table_spec(table, dialect), kinds, row_columns, display_name)


def table_spec(table: Table, dialect: str) -> TableSpec:
    """What the document says of a SQLAlchemy `Table`."""
    columns = [ColumnSpec(
        name=column.name, type=type_spec(column), nullable=bool(column.nullable), default=_default_text(column),
        generated=({"sqltext": _clause_text(column.computed.sqltext), "persisted": column.computed.persisted}
                   if column.computed is not None else None),
        identity=_identity(column), comment=column.comment, hidden=bool(column.info.get("hidden")),
        integer=bool(getattr(column.type, "integer", False))) for column in table.columns]
    unique, checks, fks = [], [], []
    for constraint in _in_order(table.constraints):
        if isinstance(constraint, UniqueConstraint):
            options = constraint.dialect_options.get(dialect, {})
            unique.append({"name": constraint.name, "columns": [c.name for c in constraint.columns],
                           "deferrable": constraint.deferrable, "initially": constraint.initially,
                           "nulls_not_distinct": bool(options.get("nulls_not_distinct"))})
        elif isinstance(constraint, CheckConstraint):
            checks.append({"name": constraint.name, "sqltext": _clause_text(constraint.sqltext)})
        elif isinstance(constraint, ForeignKeyConstraint):
            fks.append(_fk_dict(constraint))
    pk = table.primary_key
    return TableSpec(
        key=table.key, schema=table.schema, name=table.name, comment=table.comment,
        prefixes=list(getattr(table, "_prefixes", []) or []),
        partition_by=(table.dialect_options[dialect].get("partition_by")
                      if dialect in table.dialect_options else None),
        rowid=table.info.get("rowid"), columns=columns,
        primary_key=({"name": pk.name, "columns": [c.name for c in pk.columns],
                      "deferrable": pk.deferrable, "initially": pk.initially} if pk.columns else None),
        foreign_keys=fks, unique=unique, checks=checks)


def spec_to_dict(spec: TableSpec, kinds: dict[str, tuple[str, str | None]], row_columns: list[str],
                 display_name: str) -> dict[str, Any]:
    """The document's table: `spec` with each column's portable kind, the row columns, the display name."""
    columns = []
    for column in spec.columns:
        kind, element = kinds.get(column.name, ("other", None))
        columns.append({
            "name": column.name, "type": column.type, "kind": kind, "element_kind": element,
            "nullable": column.nullable, "default": column.default, "generated": column.generated,
            "identity": column.identity, "comment": column.comment, "hidden": column.hidden,
            "integer": column.integer,
        })
    return {
        "key": spec.key, "schema": spec.schema, "name": spec.name, "display_name": display_name,
        "comment": spec.comment, "prefixes": spec.prefixes, "partition_by": spec.partition_by,
        "rowid": spec.rowid, "columns": columns, "primary_key": spec.primary_key,
        "foreign_keys": spec.foreign_keys, "unique": spec.unique, "checks": spec.checks,
        "row_columns": row_columns,
    }


def model_to_dict(model: DatabaseModel, kinds: dict[str, dict[str, tuple[str, str | None]]],
                  row_columns: dict[str, list[str]], indexes: list[dict[str, Any]]) -> dict[str, Any]:
    """The document's schema, for `DocumentWriter.start`: its tables are made as they are written."""
    display_names = model.extras.display_names
    if model.table_specs is not None:
        tables = ItemsOnDemand(spec_to_dict(spec, kinds.get(spec.key, {}), row_columns[spec.key],
                                            display_names.get(spec.key) or spec.key)
                               for spec in model.table_specs)
    else:
        tables = ItemsOnDemand(table_to_dict(table, kinds.get(key, {}), row_columns[key],
                                             display_names.get(key) or key, model.dialect)
                               for key, table in model.metadata.tables.items())
    return {"dialect": model.dialect, "tables": tables, "portable_indexes": indexes,
            "extras": extras_to_dict(model.extras, ItemsOnDemand)}


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise conversion_error(f"schema: {what} must be a string, got {type(value).__name__}")
    return value


def _identity_from(data: dict[str, Any] | None) -> Identity | None:
    if not data:
        return None
    return Identity(**{k: v for k, v in data.items() if k in ("always", "on_null", "start", "increment", "minvalue",
                                                               "maxvalue", "cycle", "cache")})


def model_from_dict(schema: dict[str, Any]) -> DatabaseModel:
    """Rebuild the source's model (same dialect) from the document's schema: its tables as
    SQLAlchemy `Table`s, or, when it carries its catalog (whose statements create them), only as
    `TableShape`s (`shapes_from_dict`)."""
    try:
        dialect = _str(schema["dialect"], "dialect")
        extras = extras_from_dict(schema.get("extras") or {})
        if extras.catalog is not None:
            return DatabaseModel(dialect=dialect, metadata=MetaData(), extras=extras,
                                 server_version=str(schema.get("server_version", "")),
                                 table_shapes=shapes_from_dict(schema["tables"]))
        metadata = MetaData()
        specs = schema["tables"]
        for spec in specs:
            columns = []
            for col in spec["columns"]:
                kind = col.get("kind")
                if kind not in json_values.KINDS:
                    raise conversion_error(f"schema: table {spec.get('key')!r} column {col.get('name')!r}: "
                                           f"unknown kind {kind!r}")
                args: list[Any] = []
                if col.get("generated"):
                    args.append(Computed(literal_column(col["generated"]["sqltext"]),
                                         persisted=col["generated"].get("persisted")))
                ident = _identity_from(col.get("identity"))
                if ident is not None:
                    args.append(ident)
                column = Column(_str(col["name"], "column name"),
                                CatalogType(_str(col["type"], "column type"), integer=bool(col.get("integer"))),
                                *args, nullable=bool(col.get("nullable", True)), comment=col.get("comment"))
                column.autoincrement = False  # serial and identity come from the schema, never SERIAL
                if col.get("default") is not None and not col.get("generated"):
                    column.server_default = DefaultClause(literal_column(_str(col["default"], "default")),
                                                          _reflected=True)
                if col.get("hidden"):
                    column.info["hidden"] = True
                columns.append(column)
            kwargs: dict[str, Any] = {}
            if spec.get("partition_by"):
                kwargs[f"{dialect}_partition_by"] = spec["partition_by"]
            table = Table(_str(spec["name"], "table name"), metadata, *columns, schema=spec.get("schema"),
                          comment=spec.get("comment"), prefixes=list(spec.get("prefixes") or []), **kwargs)
            if spec.get("rowid"):
                table.info["rowid"] = spec["rowid"]
            pk = spec.get("primary_key")
            if pk:
                table.append_constraint(PrimaryKeyConstraint(*pk["columns"], name=pk.get("name"),
                                                             deferrable=pk.get("deferrable"),
                                                             initially=pk.get("initially")))
            for uq in spec.get("unique", []):
                options = {f"{dialect}_nulls_not_distinct": True} if uq.get("nulls_not_distinct") else {}
                table.append_constraint(UniqueConstraint(*uq["columns"], name=uq.get("name"),
                                                         deferrable=uq.get("deferrable"),
                                                         initially=uq.get("initially"), **options))
            for check in spec.get("checks", []):
                table.append_constraint(CheckConstraint(literal_column(_str(check["sqltext"], "check")),
                                                        name=check.get("name")))
        for spec in specs:
            table = metadata.tables[spec["key"]]
            for fk in spec.get("foreign_keys", []):
                referred = metadata.tables.get(fk["referred_table"])
                if referred is None:
                    raise conversion_error(f"schema: foreign key {fk.get('name')!r} refers to an unknown table")
                table.append_constraint(ForeignKeyConstraint(
                    fk["columns"], [referred.c[name] for name in fk["referred_columns"]], name=fk.get("name"),
                    ondelete=fk.get("ondelete"), onupdate=fk.get("onupdate"), match=fk.get("match"),
                    deferrable=fk.get("deferrable"), initially=fk.get("initially")))
        return DatabaseModel(dialect=dialect, metadata=metadata, extras=extras,
                             server_version=str(schema.get("server_version", "")))
    except errors.BackupError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise conversion_error(f"schema: {type(exc).__name__}: {exc}") from exc


def shapes_from_dict(specs: list[dict[str, Any]]) -> list[TableShape]:
    """The document's tables as a script written from its catalog needs them, in the document's
    order: names, the columns its rows hold (`data_columns` of the same `Table`), the tables
    their foreign keys refer to, each checked as `model_from_dict` checks it (the rest, types,
    defaults and constraints, the catalog's statements hold): 5,000 tables' whole `Table`s were
    0.8 s of a JSON restore, and 45 MB held through the script."""
    keys = {_str(spec["key"], "table key") for spec in specs}
    shapes = []
    for spec in specs:
        columns = [_str(spec["rowid"], "rowid")] if spec.get("rowid") else []
        for col in spec["columns"]:
            if col.get("kind") not in json_values.KINDS:
                raise conversion_error(f"schema: table {spec.get('key')!r} column {col.get('name')!r}: "
                                       f"unknown kind {col.get('kind')!r}")
            if not col.get("generated") and not col.get("hidden"):
                columns.append(_str(col["name"], "column name"))
        refers_to = []
        for fk in spec.get("foreign_keys", []):
            if fk["referred_table"] not in keys:
                raise conversion_error(f"schema: foreign key {fk.get('name')!r} refers to an unknown table")
            if fk["referred_table"] != spec["key"] and fk["referred_table"] not in refers_to:
                refers_to.append(fk["referred_table"])
        shape = TableShape(schema=spec.get("schema"), name=_str(spec["name"], "table name"),
                           data_columns=tuple(columns), refers_to=tuple(refers_to))
        if shape.key != spec["key"]:
            raise conversion_error(f"schema: table {spec['key']!r} is named {shape.key!r}")
        shapes.append(shape)
    return shapes


# --- writing ------------------------------------------------------------------------------------------------
