"""A PostgreSQL JSON document's rows as COPY text (`json_copy.copy_blocks`), with the server as the
ground truth: our text loaded by `COPY ... FROM STDIN` into a copy of the table must read back
exactly as the original does (`COPY ... TO STDOUT`).

The converter decodes a block of rows at a time and escapes whole columns at once; a block with
a bad row is decoded again line by line to name it. These tests cut the document into tiny blocks
(so rows cross block boundaries), feed it awkward values, and check that the text is the same
whatever the blocks, and that a bad row is named by its number whichever block it is in.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

from backup_engine import errors
from backup_engine.engines.postgresql.json_copy import copy_blocks
from backup_engine.formats import json_document
from backup_engine.formats.json_document import read_document
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, create_backup

SETUP = r"""
CREATE TABLE awkward (
    id bigint PRIMARY KEY, label text, note text, flag boolean, amount numeric, ratio double precision,
    nums int[], words text[], grid int[], raw bytea, doc jsonb, at timestamptz);
INSERT INTO awkward VALUES
  (1, 'plain', NULL, true, 1.2300, 0.1, '{1,2,3}', '{a,b}', '{{1,2},{3,4}}', '\x00ff',
    '{"a": [1, "x"]}', '2024-01-01 00:00:00+00'),
  (2, E'tab\there', E'new\nline', false, -0, 1e300, '{1,NULL,3}', '{"with space",NULL,"q\"uote"}',
    '[0:1]={7,8}', '\x', '"s"', NULL),
  (3, E'back\\slash', E'cr\rhere', NULL, 12345678901234567890.5, -0.5, '{}', '{}', NULL, NULL,
    'null', '1999-12-31 23:59:59.999999+00'),
  (4, 'ünïcödé 𝄞 ' || chr(8232) || ' end', '', true, 'NaN', 'Infinity', NULL, '{"\\",""}',
    '{{5}}', '\x5c', '[]', 'infinity'),
  (5, E'\\x00 not bytes', E'mix\\ \t \n \r', false, 0, '-Infinity', '{-1}', '{"{}",","}', '{1}',
    '\x0a0d09', '{"k": "a\tb"}', '-infinity');
CREATE TABLE no_columns ();
INSERT INTO no_columns SELECT FROM generate_series(1, 3);
"""


@pytest.fixture(scope="module")
def document(pg_server, tmp_path_factory) -> tuple[str, Path]:
    name = f"json_copy_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    pg_server.execute(url, SETUP)
    store = BackupStore(tmp_path_factory.mktemp("json_copy"))
    manifest = create_backup(Target.from_url("awkward", url), store, format="json")
    yield url, Path(manifest["path"])
    pg_server.drop_database(name)


def server_copy(url: str, table: str, columns: list[str]) -> str:
    conn = richdb_pg.connect(url)
    try:
        out = io.StringIO()
        with conn.cursor() as cur:
            cols = ", ".join(f'"{c}"' for c in columns)
            cur.copy_expert(f'COPY public."{table}" ({cols}) TO STDOUT' if columns
                            else f'COPY public."{table}" TO STDOUT', out)
        return out.getvalue()
    finally:
        conn.close()


def converted(path: Path, key: str, columns: list[str]) -> str:
    return "".join(copy_blocks(read_document(path), key, columns))


def loaded_back(url: str, table: str, columns: list[str], text: str) -> str:
    """`text` loaded into an empty copy of `table`, read back by the server."""
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE TEMP TABLE loaded (LIKE public."{table}")')
            cols = ", ".join(f'"{c}"' for c in columns)
            cur.copy_expert(f"COPY loaded ({cols}) FROM STDIN" if columns else "COPY loaded FROM STDIN",
                            io.StringIO(text))
            out = io.StringIO()
            cur.copy_expert(f"COPY loaded ({cols}) TO STDOUT" if columns else "COPY loaded TO STDOUT", out)
        return out.getvalue()
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("block", [200, 7])
def test_rows_load_back_as_the_original_whatever_the_block_size(document, monkeypatch, block):
    url, path = document
    columns = list(read_document(path).tables["public.awkward"].columns)
    whole = converted(path, "public.awkward", columns)
    assert loaded_back(url, "awkward", columns, whole) == server_copy(url, "awkward", columns)
    monkeypatch.setattr(json_document, "BLOCK", block)  # rows across block boundaries: the same text
    assert converted(path, "public.awkward", columns) == whole
    assert converted(path, "public.no_columns", []) == "\n\n\n"
    assert loaded_back(url, "no_columns", [], "\n\n\n") == server_copy(url, "no_columns", [])


def test_columns_picked_in_another_order(document):
    url, path = document
    columns = ["words", "id", "raw", "label"]
    text = converted(path, "public.awkward", columns)
    assert loaded_back(url, "awkward", columns, text) == server_copy(url, "awkward", columns)


@pytest.mark.parametrize("block", [json_document.BLOCK, 7])
@pytest.mark.parametrize("bad, message", [
    (b'[4, "x]', "row 4: not valid JSON"),
    (b"[4]", "row 4: expected an array of 12 values"),
    (b'[4, "a"],[5, "b"]', "row 4: not valid JSON"),
])
def test_a_bad_row_is_named_by_its_number_in_any_block(document, tmp_path, monkeypatch, block, bad, message):
    _, path = document
    monkeypatch.setattr(json_document, "BLOCK", block)
    lines = path.read_bytes().split(b"\n")
    row4 = next(i for i, line in enumerate(lines) if line.startswith(b"[4,"))
    lines[row4] = bad + b","
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\n".join(lines))
    reader = read_document(broken)
    with pytest.raises(errors.ConversionError, match=message):
        "".join(copy_blocks(reader, "public.awkward", list(reader.tables["public.awkward"].columns)))


def test_a_value_of_the_wrong_shape_is_named_by_row_and_column(document, tmp_path):
    _, path = document
    lines = path.read_bytes().split(b"\n")
    row3 = next(i for i, line in enumerate(lines) if line.startswith(b"[3,"))
    assert lines[row3].startswith(b'[3, "back\\\\slash", ')
    lines[row3] = lines[row3].replace(b'"back\\\\slash"', b'{"not": "text"}', 1)
    broken = tmp_path / "shape.json"
    broken.write_bytes(b"\n".join(lines))
    reader = read_document(broken)
    with pytest.raises(errors.ConversionError) as caught:
        "".join(copy_blocks(reader, "public.awkward", list(reader.tables["public.awkward"].columns)))
    assert "row 3" in str(caught.value) and "label" in str(caught.value)


@pytest.mark.parametrize("byte", [b"\x00", b"\x01", b"\t", b"\r", b"\x1f"])
def test_a_raw_control_byte_in_a_row_is_refused(document, tmp_path, byte):
    _, path = document
    data = path.read_bytes().replace(b'"plain"', b'"pl' + byte + b'ain"', 1)
    broken = tmp_path / "control.json"
    broken.write_bytes(data)
    reader = read_document(broken)
    with pytest.raises(errors.ConversionError, match="raw control character"):
        "".join(copy_blocks(reader, "public.awkward", list(reader.tables["public.awkward"].columns)))


@pytest.mark.parametrize("block", [json_document.BLOCK, 7])
def test_a_row_that_is_not_utf8_is_named(document, tmp_path, monkeypatch, block):
    _, path = document
    monkeypatch.setattr(json_document, "BLOCK", block)
    data = path.read_bytes().replace(b'"plain"', b'"pl\xffain"', 1)
    broken = tmp_path / "latin.json"
    broken.write_bytes(data)
    reader = read_document(broken)
    with pytest.raises(errors.ConversionError, match="row 1: not valid UTF-8"):
        "".join(copy_blocks(reader, "public.awkward", list(reader.tables["public.awkward"].columns)))
