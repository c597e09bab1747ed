"""A PostgreSQL JSON backup's `.sql` twin, written alongside it from the export's own exported snapshot.

The twin must hold exactly the document's data (a table created after the export began is in
neither), and restore identical to the source and to the document's own conversion.
"""

from __future__ import annotations

import gc
import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

from backup_engine.dumpinfo import ClientTools
from backup_engine.engines.postgresql import generated, json_export
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, convert_backup, create_backup, restore_backup

TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"))
pytestmark = pytest.mark.skipif(not TOOLS.get("pg_dump") or not TOOLS.get("psql"), reason="pg_dump/psql missing")


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_the_twin_is_made_alongside_from_the_exports_snapshot(make_pg_database, tmp_path):
    source = make_pg_database("twin_src")
    richdb_pg.build_rich_database(source, rows_per_table=30, seed=3)
    before = richdb_pg.database_state(source)
    store = BackupStore(tmp_path / "backups")
    writes: list[int] = []

    def progress(**meta):
        if meta.get("phase") == "dump" and not writes:  # the export has begun, pg_dump has started
            conn = psycopg2.connect(source)
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE public.committed_after_zq (x int)")
            conn.close()
            writes.append(1)

    frozen_before = gc.get_freeze_count()
    manifest = create_backup(Target.from_url("src", source), store, tools=TOOLS, format="json", progress=progress)
    assert writes, "the export reported no progress"
    # the export and its twin (two threads) paused and froze the collector; both gave it all back
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before
    [twin] = manifest["companions"]
    twin_manifest = store.read_manifest(twin)
    assert twin_manifest["converted_from"] == manifest["backup_filename"] and twin_manifest["method"] == "sqlalchemy"
    assert twin_manifest["rows"] == manifest["rows"] and twin_manifest["origin"] == "worker"
    # one snapshot for both: the table created once the export had begun is in neither
    assert b"committed_after_zq" not in (store.folder / twin).read_bytes()
    assert b"committed_after_zq" not in (store.folder / manifest["backup_filename"]).read_bytes()

    through_twin = make_pg_database("twin_dst")
    restored = restore_backup(Target.from_url("dst", through_twin), store, manifest["backup_filename"], tools=TOOLS)
    assert restored["converted_file"] == twin
    assert richdb_pg.database_state(through_twin) == before

    converted = convert_backup(store, manifest["backup_filename"])  # the document's own conversion agrees
    through_conversion = make_pg_database("twin_conv")
    restore_backup(Target.from_url("conv", through_conversion), store, converted["backup_filename"], tools=TOOLS)
    assert richdb_pg.database_state(through_conversion) == before


def test_the_twin_reads_the_exported_snapshot_not_the_latest_rows(make_pg_database):
    """The mechanism itself: a row committed after the export's snapshot is in the generated script
    only when the script is not given that snapshot."""
    source = make_pg_database("twin_snap")
    conn = psycopg2.connect(source)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE public.t (v text); INSERT INTO public.t VALUES ('before-zq')")
    conn.close()
    target = Target.from_url("src", source)
    dumps: dict[str, bytes] = {}

    @contextmanager
    def alongside(snapshot: str) -> Iterator[None]:
        late = psycopg2.connect(source)
        with late, late.cursor() as cur:
            cur.execute("INSERT INTO public.t VALUES ('after-zq')")
        late.close()
        for name, snap in (("with", snapshot), ("without", None)):
            out = io.BytesIO()
            generated.dump_generated(target, out, "full", snapshot=snap)
            dumps[name] = out.getvalue()
        yield

    document = io.BytesIO()
    json_export.export_json(target, document, "full", alongside=alongside)
    assert b"before-zq" in dumps["with"] and b"after-zq" not in dumps["with"]
    assert b"after-zq" in dumps["without"]
    assert b"before-zq" in document.getvalue() and b"after-zq" not in document.getvalue()
