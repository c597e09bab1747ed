"""A script written from the catalog orders its tables, known only by name (`TableShape`s), as a
script of SQLAlchemy `Table`s orders the same tables (`sort_tables_and_constraints`, the oracle):
parents first, partitions after their parent, and where foreign keys form a cycle, the same
tables let go of their keys."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, ForeignKeyConstraint, Integer, MetaData, Table
from sqlalchemy.dialects import postgresql

from backup_engine import errors
from backup_engine.formats.json_schema import shapes_from_dict
from backup_engine.formats.model import DatabaseModel, PartitionDef, SchemaExtras, TableShape
from backup_engine.formats.sql_script import ScriptWriter
from backup_engine.formats.table_order import foreign_key_order

NAMES = [(schema, name) for schema in ("public", "s2") for name in ("a", "b", "c", "d", "e")]


@st.composite
def schemas(draw) -> tuple[list[tuple[str, str]], list[tuple[int, int]], list[tuple[int, int]]]:
    """Tables; foreign keys (child, referred), self-references and cycles included; partitions
    (child, parent), each table in at most one parent, a parent before its partitions."""
    tables = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES), unique=True))
    count = len(tables)
    index = st.integers(0, count - 1)
    keys = draw(st.lists(st.tuples(index, index), max_size=3 * count))
    partitions = [(child, parent) for child in range(count)
                  if (parent := draw(st.integers(-1, child - 1))) >= 0]
    return tables, keys, partitions


def key_of(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def ordered_keys(model: DatabaseModel) -> tuple[list[str], int]:
    tables, late = ScriptWriter(io.BytesIO(), postgresql.dialect()).table_order(model)
    return [table.key for table, _ in tables], len(late)


@settings(max_examples=400, deadline=None)
@given(schemas())
def test_shapes_are_ordered_as_sqlalchemy_orders_the_same_tables(schema):
    tables, keys, partitions = schema
    in_key_order = sorted(range(len(tables)), key=lambda i: key_of(*tables[i]))
    partition_defs = [PartitionDef(table=key_of(*tables[child]), parent=key_of(*tables[parent]), bound="DEFAULT")
                      for child, parent in partitions]

    metadata = MetaData()
    built: dict[int, Table] = {}
    for i in in_key_order:  # the fallback's tables are built in key order
        columns = [Column(f"k{n}", Integer) for n, (child, _) in enumerate(keys) if child == i]
        built[i] = Table(tables[i][1], metadata, Column("id", Integer, primary_key=True), *columns,
                         schema=tables[i][0])
    for n, (child, referred) in enumerate(keys):
        built[child].append_constraint(ForeignKeyConstraint([f"k{n}"], [built[referred].c.id], name=f"fk{n}"))
    expected, _ = ordered_keys(DatabaseModel("postgresql", metadata, SchemaExtras(partitions=partition_defs)))

    shapes = [TableShape(schema=tables[i][0], name=tables[i][1], data_columns=("id",),
                         refers_to=tuple(key_of(*tables[referred]) for child, referred in keys
                                         if child == i and referred != i))
              for i in in_key_order]
    model = DatabaseModel("postgresql", MetaData(), SchemaExtras(partitions=partition_defs), table_shapes=shapes)
    assert ordered_keys(model) == (expected, 0)


def test_a_table_comes_after_those_it_refers_to_and_a_cycle_lets_go_of_its_keys():
    def shape(name: str, *refers_to: str) -> TableShape:
        return TableShape(schema="public", name=name, data_columns=("id",), refers_to=refers_to)

    chain = [shape("a", "public.c"), shape("b"), shape("c", "public.b")]
    assert [s.name for s in foreign_key_order(chain, [])] == ["b", "c", "a"]
    cycle = [shape("a", "public.c"), shape("b", "public.a"), shape("c", "public.b"), shape("d", "public.e"),
             shape("e")]
    assert [s.name for s in foreign_key_order(cycle, [])] == ["a", "b", "c", "e", "d"]
    assert [s.name for s in foreign_key_order(cycle, [("public.c", "public.a")])] == ["b", "c", "e", "a", "d"]


def test_a_documents_tables_are_checked_as_shapes_as_they_were_as_tables():
    """A JSON document that carries its catalog restores through shapes: what was refused while
    building its `Table`s is refused still, as a conversion error."""
    def spec(key: str, **changes) -> dict:
        schema, name = key.split(".")
        return {"key": key, "schema": schema, "name": name, "foreign_keys": [],
                "columns": [{"name": "id", "kind": "integer"},
                            {"name": "g", "kind": "integer", "generated": {"sqltext": "id * 2"}},
                            {"name": "h", "kind": "text", "hidden": True}], **changes}

    parent, child = spec("public.p"), spec("public.c", foreign_keys=[{"referred_table": "public.p"}])
    assert shapes_from_dict([parent, child]) == [
        TableShape(schema="public", name="p", data_columns=("id",)),
        TableShape(schema="public", name="c", data_columns=("id",), refers_to=("public.p",))]
    refused = {"an unknown kind": [spec("public.p", columns=[{"name": "id", "kind": "tensor"}])],
               "a key to an unknown table": [spec("public.c", foreign_keys=[{"referred_table": "public.x"}])],
               "a key that is not its name": [{**spec("public.p"), "key": "public.q"}],
               "a name that is not text": [spec("public.p", name=7)]}
    for why, specs in refused.items():
        with pytest.raises(errors.ConversionError, match=errors.JSON_CONVERSION_FAILED):
            shapes_from_dict(specs)
            pytest.fail(why)
