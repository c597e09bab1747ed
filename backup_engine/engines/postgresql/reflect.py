"""A live PostgreSQL database as a `DatabaseModel`, read from the catalog.

`tables_from_catalog.py` builds the tables as SQLAlchemy `Table`s (what a conversion to another engine
reads, and what orders the data), as SQLAlchemy's reflection gave them but from a few bulk catalog
queries: reflection was about half of an export's time at thousands of tables. `catalog.py` adds
the typed lists of objects a document that is not ours may restore from; `catalog_read.py` reads
every object pg_dump carries, catalog-exact and in dependency order (`extras.catalog`, what our
own scripts are written from). Whatever the catalog holds that cannot be carried fails the backup
here, before anything is written, naming each object.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from sqlalchemy import MetaData

from backup_engine import errors
from backup_engine.engines.collector import paused_gc
from backup_engine.engines.postgresql import catalog
from backup_engine.engines.postgresql.catalog_misc import large_object_chunks
from backup_engine.engines.postgresql.catalog_read import read_catalog
from backup_engine.engines.postgresql.sequence_positions import PositionsAside
from backup_engine.engines.postgresql.session_aside import SessionAside, run_here
from backup_engine.engines.postgresql.tables_from_catalog import (
    DefinitionRows,
    ShapeRows,
    read_definitions,
    read_shapes,
    table_definitions,
    table_shapes,
    table_specs,
)
from backup_engine.formats.model import DatabaseModel, PgCatalog, SchemaExtras

ENGINE_NAME = "postgresql"
# Large objects travel inside a JSON document's schema line; past this many bytes a JSON backup
# refuses them (the sql format streams any size).
JSON_LARGE_OBJECT_LIMIT = 16 << 20
Tables = Literal["whole", "shapes", "specs"]  # what the model holds of each table: see reflect_postgresql


@paused_gc()  # thousands of tables' objects, all kept: the collector's passes would only slow it
def reflect_postgresql(raw: Any, *, failure: str = errors.FALLBACK_FAILED,
                       large_object_data: bool = False, tables: Tables = "whole",
                       positions: PositionsAside | None = None, aside: SessionAside | None = None) -> DatabaseModel:
    """The model of the database `raw` reads (a snapshot_connection: search_path = pg_catalog).

    Raises DumpError(failure, "cannot carry ...") naming every object the script cannot carry;
    with `large_object_data` the large objects' bytes are read into the model (a JSON document
    holds them), up to JSON_LARGE_OBJECT_LIMIT. The tables (`tables`) are "whole" SQLAlchemy
    `Table`s (`table_definitions`), or their "shapes", no `Table`s but names, data columns
    and referred tables (`table_shapes`, in `table_shapes` of the model): enough for a script
    written from the catalog; or "specs", no `Table`s but their descriptions (`table_specs`, in
    `table_specs` of the model): all a JSON document needs.
    Sequence positions come from `positions` where it read them, else from the snapshot. With
    `aside` (a second session in the same snapshot), what the tables are, the typed lists of
    objects and the tables' rows are read there while this session reads every object's
    definition. The tables are built here afterwards, from those rows: built aside, they were
    held at once with the definitions' working set (its dependency rows), 50 MB more at the peak
    at 5,000 tables.
    """
    work = partial(_read_aside, positions=positions, shapes_only=tables == "shapes")
    read_aside = aside.submit(work) if aside else None
    cur = raw.cursor()
    reading = read_catalog(cur)
    if large_object_data:
        reading.refused += _read_large_object_data(cur, reading.catalog)
    if reading.refused:
        raise errors.DumpError(failure, f"{errors.CANNOT_CARRY} {', '.join(reading.refused)}")
    cur.execute("SHOW server_version")
    version = cur.fetchone()[0]
    cur.close()
    info, extras, rows = (read_aside or run_here(raw, work)).result()
    extras.catalog = reading.catalog
    model = DatabaseModel(dialect=ENGINE_NAME, metadata=MetaData(), extras=extras, server_version=version)
    if isinstance(rows, ShapeRows):
        model.table_shapes = table_shapes(rows, info.names)
    elif tables == "specs":
        model.table_specs = table_specs(rows, info)
    else:
        model.metadata = table_definitions(rows, info)
    return model


def _read_aside(cur: Any, *, positions: PositionsAside | None, shapes_only: bool
                ) -> tuple[catalog.TableInfo, SchemaExtras, ShapeRows | DefinitionRows]:
    """What the tables are (kinds, exact types, partitioning), the typed lists of objects and the
    rows the tables are built from, read on `cur`."""
    info = catalog.read_table_info(cur)
    extras = catalog.read_extras(cur, info, positions.result() if positions else None)
    return info, extras, read_shapes(cur) if shapes_only else read_definitions(cur)


def _read_large_object_data(cur: object, catalog: PgCatalog) -> list[str]:
    total = 0
    for large_object in catalog.large_objects:
        chunks = []
        for _, data in large_object_chunks(cur, large_object.oid):
            total += len(data)
            if total > JSON_LARGE_OBJECT_LIMIT:
                return [f"large objects of more than {JSON_LARGE_OBJECT_LIMIT >> 20} MiB in all in a JSON backup"
                        f" ({len(catalog.large_objects)} large objects; the sql format carries any size)"]
            chunks.append(data.hex())
        large_object.data = "".join(chunks)
    return []
