"""Small PostgreSQL tables read many to a COPY (`batch_copy`): the document must be byte for byte
the one a COPY per table writes.

The reference is the same export with no table counted small (`SMALL_TABLE_BYTES = 0`), which
reads every table as before batches existed: one COPY each. The database mixes what a batch could
get wrong: enough tiny tables for several batches, tables without columns (with and without rows),
an empty table, awkward values (control characters \\x01 and \\x02, which are the COPY's quote and
delimiter, newlines, quotes, backslashes, unicode, NULLs, bytea, arrays, json), a big table and a
table big only in TOAST between small ones, partitions, and names that need quoting. The
demultiplexer is also fed its stream cut at every byte, and a stream whose positions go back.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from pathlib import Path

import pytest

from backup_engine import errors
from backup_engine.engines.postgresql import batch_copy, json_export, split_copy
from backup_engine.engines.postgresql.batch_copy import BatchLines, batches
from backup_engine.engines.postgresql.connect import LOCK_WINDOW_TABLES
from backup_engine.formats.json_document import RowLines, read_document
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, create_backup

TINY_TABLES = 75  # three batches and a bit, on either side of the big tables
SETUP = r"""
CREATE TABLE awkward (
    id bigint PRIMARY KEY, label text, note text, flag boolean, amount numeric, ratio double precision,
    nums int[], words text[], grid int[], raw bytea, doc jsonb, plain_json json, at timestamptz);
INSERT INTO awkward VALUES
  (1, E'ctl \x01 quote \x02 delim \x1f unit', E'new\nline\r\n', true, 1.2300, 0.1, '{1,2,3}',
    ARRAY[E'a\x02b', E'\x01'], '{{1,2},{3,4}}', '\x0102ff', '{"k": "\u0001\u0002"}', E'{"raw": "x\\u0002y"}',
    '2024-01-01 00:00:00+00'),
  (2, E'tab\there "quoted" \\back\\slash', NULL, false, -0, 1e300, '{1,NULL,3}', '{"with space",NULL,"q\"uote"}',
    '[0:1]={7,8}', '\x', '"s"', '[1, 2]', NULL),
  (3, 'ünïcödé 𝄞 ' || chr(8232) || ' end', '', NULL, 'NaN', 'Infinity', '{}', '{}', NULL, NULL, 'null',
    'null', 'infinity'),
  (4, NULL, E'\\N', true, 12345678901234567890.5, '-Infinity', NULL, '{"\\",""}', '{{5}}', '\x5c', '[]',
    '{}', '-infinity');
CREATE TABLE no_columns ();
INSERT INTO no_columns SELECT FROM generate_series(1, 3);
CREATE TABLE no_columns_empty ();
CREATE TABLE empty (id int, note text);
CREATE TABLE t_030_big (id int PRIMARY KEY, note text);
INSERT INTO t_030_big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 4000) g;
CREATE TABLE t_060_toasted (id int, doc text);
ALTER TABLE t_060_toasted ALTER doc SET STORAGE EXTERNAL;
INSERT INTO t_060_toasted SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 12000) g;
CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (10) TO (20);
INSERT INTO parted VALUES (1, 'low'), (15, 'high');
CREATE SCHEMA "Other ""schema";
CREATE TABLE "Other ""schema"."we""ird.name" ("select" int, "x y" text);
INSERT INTO "Other ""schema"."we""ird.name" VALUES (1, 'a'), (2, NULL);
"""


def tiny_tables() -> str:
    """t_000 ... : the batches, with 0 to 3 rows each; the big tables sort between them."""
    statements = []
    for number in range(TINY_TABLES):
        name = f"t_{number:03d}"
        statements.append(f"CREATE TABLE {name} (id int PRIMARY KEY, label text);")
        if number % 4:
            statements.append(f"INSERT INTO {name} SELECT g, 'row ' || g FROM generate_series(1, {number % 4}) g;")
    return "\n".join(statements)


@pytest.fixture(scope="module")
def mixed_url(pg_server) -> str:
    name = f"json_batches_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    pg_server.execute(url, SETUP + tiny_tables())
    yield url
    pg_server.drop_database(name)


class Export:
    """A JSON backup of `url` as the worker makes it: its file, its progress, and the batches read."""

    def __init__(self, url: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[str]] = []
        self.progress: list[dict] = []
        read_batch = json_export._batch_rows

        def recorded(raw, batch, *args):  # the real batch, its tables noted
            self.batches.append([key for key, _ in batch])
            return read_batch(raw, batch, *args)

        with monkeypatch.context() as patch:
            patch.setattr(json_export, "_batch_rows", recorded)
            manifest = create_backup(Target.from_url("mixed", url), BackupStore(folder), format="json",
                                     progress=self._progress)
        self.path = Path(manifest["path"])
        self.manifest = manifest

    def _progress(self, **meta) -> None:
        if meta.get("phase") == "dump" and "table" in meta:
            self.progress.append(meta)

    def without_header(self) -> list[bytes]:
        """The document's lines but its header (which holds the time it was made)."""
        lines = self.path.read_bytes().split(b"\n")
        assert lines[1].startswith(b'"header": ')
        return lines[:1] + lines[2:]

    def sections(self) -> dict[str, list[bytes]]:
        reader = read_document(self.path)
        return {key: b"".join(reader.row_blocks(key)).splitlines() for key in reader.tables}


def export(url: str, folder: Path, monkeypatch: pytest.MonkeyPatch, *, batched: bool) -> Export:
    with monkeypatch.context() as patch:
        if not batched:
            patch.setattr(json_export, "SMALL_TABLE_BYTES", 0)
        return Export(url, folder, monkeypatch)


def test_batched_document_is_byte_identical_to_a_copy_per_table(mixed_url, tmp_path, monkeypatch):
    batched = export(mixed_url, tmp_path / "batched", monkeypatch, batched=True)
    single = export(mixed_url, tmp_path / "single", monkeypatch, batched=False)
    assert single.batches == []
    assert batched.without_header() == single.without_header()
    assert batched.progress == single.progress  # per table, in order, the same counts
    order = [meta["table"] for meta in batched.progress]
    assert [meta["tables"] for meta in batched.progress] == list(range(1, len(order) + 1))
    # every table read once, the big ones alone and between batches, no batch past a lock window
    batched_keys = [key for batch in batched.batches for key in batch]
    assert sorted(batched_keys + ["public.t_030_big", "public.t_060_toasted"]) == sorted(order)
    assert max(map(len, batched.batches)) == LOCK_WINDOW_TABLES and len(batched.batches) >= 4
    for big in ("public.t_030_big", "public.t_060_toasted"):
        before, after = order[:order.index(big)], order[order.index(big) + 1:]
        assert before[-1] in batched_keys and after[0] in batched_keys
    assert batched.sections()["public.no_columns"] == [b"[]"] * 3
    assert batched.sections()["public.no_columns_empty"] == batched.sections()["public.empty"] == []


def test_awkward_values_are_the_servers_own(mixed_url, tmp_path, monkeypatch):
    """Beside the byte comparison: the document's values decode to what psycopg2 reads from the table."""
    document = export(mixed_url, tmp_path / "b", monkeypatch, batched=True)
    rows = {row[0]: row for row in map(json.loads, document.sections()["public.awkward"])}
    conn = richdb_pg.connect(mixed_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, label, note, words FROM awkward")
            expected = cur.fetchall()
    finally:
        conn.close()
    assert {row_id: (row[1], row[2], row[7]) for row_id, row in rows.items()} == {
        row_id: (label, note, words) for row_id, label, note, words in expected}
    assert rows[1][1] == "ctl \x01 quote \x02 delim \x1f unit" and rows[1][7] == ["a\x02b", "\x01"]
    assert sum(document.manifest["table_rows"].values()) == richdb_pg.total_rows(mixed_url)


def test_a_big_table_split_in_two_streams_between_batches(mixed_url, tmp_path, monkeypatch):
    """The split exports the snapshot, which only the transaction's top level can: after a batch's
    savepoint is gone. Row order within a split table carries no meaning; everything else is exact."""
    monkeypatch.setattr(split_copy, "SPLIT_BYTES", 64 << 10)  # t_030_big's heap is past it, t_060_toasted's is not
    batched = export(mixed_url, tmp_path / "batched", monkeypatch, batched=True)
    single = export(mixed_url, tmp_path / "single", monkeypatch, batched=False)
    streams = {meta["table"]: meta["streams"] for meta in batched.progress}
    assert streams["public.t_030_big"] == 2 and streams["public.t_060_toasted"] == 1
    ours, theirs = batched.sections(), single.sections()
    assert sorted(ours.pop("public.t_030_big")) == sorted(theirs.pop("public.t_030_big"))
    assert ours == theirs


def test_a_parallel_plan_is_refused_not_written(pg_server, tmp_path, monkeypatch):
    """Where the planner favours parallel plans, the batch's UNION ALL is planned as a Parallel
    Append, which runs its branches in any order (its leader, alone, runs them last first). The
    batch turns parallel workers off (and PostgreSQL 15 runs no plan in parallel inside its
    savepoint either): the document is the same. Without both, the backup fails with
    BATCH_OUT_OF_ORDER and leaves no file."""
    name = f"json_parallel_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    try:
        pg_server.execute(url, "".join(f"CREATE TABLE p{n} (id int); INSERT INTO p{n} VALUES ({n}), ({n});"
                                       for n in range(4)))
        pg_server.execute("postgres", "".join(f"ALTER DATABASE {name} SET {setting} = 0;" for setting in (
            "parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size",
            "max_parallel_workers")))  # a Parallel Append the leader runs alone: always last first
        batched = export(url, tmp_path / "batched", monkeypatch, batched=True)
        single = export(url, tmp_path / "single", monkeypatch, batched=False)
        assert batched.batches == [[f"public.p{n}" for n in range(4)]]
        assert batched.without_header() == single.without_header()
        monkeypatch.setattr(batch_copy, "BATCH_SETTINGS", ())
        monkeypatch.setattr(batch_copy, "locks_released", lambda raw, settings: contextlib.nullcontext())
        store = BackupStore(tmp_path / "parallel")
        with pytest.raises(errors.DumpError) as caught:
            create_backup(Target.from_url("parallel", url), store, format="json")
        assert caught.value.message == errors.BATCH_OUT_OF_ORDER
        assert store.list() == [] and not [path for path in store.folder.rglob("*") if path.is_file()]
    finally:
        pg_server.drop_database(name)


# --- the demultiplexer, without a server ----------------------------------------------------------------
class Recorded:
    """Sections that note what they were given: `events` in order, each table's bytes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.out: dict[str, io.BytesIO] = {}

    def open(self, key: str) -> RowLines:
        self.events.append(("open", key))
        self.out[key] = io.BytesIO()
        return RowLines(self.out[key])

    def close(self, key: str, rows: RowLines) -> None:
        rows.close_rows()
        self.events.append(("close", f"{key}:{rows.rows}"))


KEYS = [f"k{n}" for n in range(13)]  # two-digit positions: `1\x02` must not match `11\x02`
ROWS = {0: [b"[1]", b'["a\\u0002"]'], 2: [b"[]"], 3: [b"[3, 3]"] * 3, 11: [b"[11]"], 12: [b'["x\\ny"]', b"[12]"]}


def batch_stream(rows: dict[int, list[bytes]]) -> bytes:
    return b"".join(b"%d\x02%s\n" % (position, row) for position, lines in rows.items() for row in lines)


def fed(blocks: list[bytes], keys: list[str] = KEYS) -> Recorded:
    sections = Recorded()
    lines = BatchLines(keys, sections)
    for block in blocks:
        lines.write(block)
    lines.finish()
    return sections


def test_every_table_gets_its_rows_and_its_section_wherever_the_blocks_are_cut():
    stream = batch_stream(ROWS)
    whole = fed([stream])
    assert [event for event, _ in whole.events] == ["open", "close"] * len(KEYS)
    assert [key for event, key in whole.events if event == "open"] == KEYS
    for position, key in enumerate(KEYS):
        lines = ROWS.get(position, [])
        assert whole.out[key].getvalue() == b",\n".join(lines) + (b"\n" if lines else b"")
        assert ("close", f"{key}:{len(lines)}") in whole.events
    for cut in range(len(stream) + 1):
        for second in (cut, min(cut + 5, len(stream))):
            parts = fed([stream[:cut], stream[cut:second], stream[second:]])
            assert parts.events == whole.events, cut
            assert {key: out.getvalue() for key, out in parts.out.items()} == \
                {key: out.getvalue() for key, out in whole.out.items()}, cut


def test_a_batch_without_any_row_writes_every_section_empty():
    sections = fed([])
    assert sections.events == [event for key in KEYS for event in (("open", key), ("close", f"{key}:0"))]


@pytest.mark.parametrize("stream", [
    batch_stream({0: [b"[1]"], 2: [b"[2]"]}) + b"1\x02[1]\n",  # back in a later line
    b"0\x02[0]\n1\x02[1]\n0\x02[0]\n1\x02[1]\n",  # back and forth, the last position the same
    b"2\x02[2]\n0\x02[0]\n",
    b"0\x02[0]\n2\x02[2]\n1\x02[1]\n2\x02[2]\n",
    b"[1]\n",  # no position at all
    b"0\x02[0]\n[1]\n0\x02[0]\n",
    b"13\x02[13]\n",  # past the batch's tables
])
def test_a_position_that_goes_back_is_refused_wherever_the_blocks_are_cut(stream):
    for cut in range(len(stream) + 1):
        with pytest.raises(errors.DumpError) as caught:
            fed([stream[:cut], stream[cut:]])
        assert caught.value.message == errors.BATCH_OUT_OF_ORDER, cut


def test_a_refused_stream_takes_nothing_more():
    """A buffered writer flushes again when closed: after a refusal no line goes through."""
    sections = Recorded()
    lines = BatchLines(KEYS, sections)
    lines.write(b"0\x02[0]\n")
    with pytest.raises(errors.DumpError):
        lines.write(b"2\x02[2]\n1\x02[1]\n")
    with pytest.raises(errors.DumpError):
        lines.write(b"3\x02[3]\n")
    assert "k3" not in sections.out


def test_a_stream_cut_inside_a_row_is_refused():
    with pytest.raises(errors.DumpError, match="ended inside a row"):
        fed([b"0\x02[0]\n0\x02[1"])


def test_runs_of_small_tables_up_to_a_window_each_a_big_table_alone():
    tables = [f"s{n}" for n in range(70)]
    tables[40:40] = ["BIG1", "BIG2"]
    tables.insert(0, "BIG0")
    runs = list(batches(tables, lambda name: not name.startswith("BIG"), most=32))
    assert [(batched, len(run)) for batched, run in runs] == [
        (False, 1), (True, 32), (True, 8), (False, 1), (False, 1), (True, 30)]
    assert [name for _, run in runs for name in run] == tables
