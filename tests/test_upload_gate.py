"""The upload gate for untrusted PostgreSQL SQL (engines/postgresql/gate.py), against real things:
a hostile corpus, real pg_dump output of a rich database restored through the gate into a real
server, generated scripts with hostile statements spliced in, and large inputs.

Time is measured and printed (run with -s to see it), never asserted: tests assert behaviour.
"""

from __future__ import annotations

import io
import json
import pickle
import time
import tracemalloc
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_engine import errors
from backup_engine.engines.postgresql.gate import (
    GateLimits,
    check_expression,
    check_statement,
    check_type_name,
    check_upload,
    gate_statements,
)
from tests import richdb_pg
from tests.gate_helpers import (
    CORPUS,
    DUMP_VARIANTS,
    HostileFile,
    build_gate_database,
    clean_pieces,
    hostile_files,
    pg_dump,
    restore_through_gate,
)

HOSTILE = hostile_files()
FRAGMENTS = json.loads((CORPUS / "json_fragments.json").read_text())


def refusal(upload: bytes, limits: GateLimits = GateLimits()) -> errors.UploadRefused:
    with pytest.raises(errors.UploadRefused) as caught:
        check_upload(io.BytesIO(upload), limits)
    return caught.value


# --- the hostile corpus ----------------------------------------------------------------------------------
def test_the_corpus_is_broad():
    assert len(HOSTILE) >= 60 and len({f.name.split("_")[0] for f in HOSTILE}) >= 12
    assert (CORPUS / "README.md").exists()


def test_the_corpus_prelude_alone_passes():
    prelude = HOSTILE[0].data[:HOSTILE[0].data.index(b"CREATE TABLE public.t")] + b"CREATE TABLE public.t (id int);\n"
    assert check_upload(io.BytesIO(prelude)).statements == 8


@pytest.mark.parametrize("hostile", HOSTILE, ids=[f.name for f in HOSTILE])
def test_every_hostile_file_is_refused_with_its_reason(hostile: HostileFile):
    limits = GateLimits(hostile.limit) if hostile.limit else GateLimits()
    refused = refusal(hostile.data, limits)
    message = str(refused)
    assert message.startswith(f"{errors.UPLOAD_REFUSED} at line {refused.line}: "), message
    assert hostile.expect in message, message
    assert refused.line >= hostile.body_line, message  # the pg_dump-like prelude itself passed


@pytest.mark.parametrize("case", FRAGMENTS, ids=[f"{c['checker']}-{i}" for i, c in enumerate(FRAGMENTS)])
def test_hostile_json_fragments_are_refused(case):
    checker = {"type": check_type_name, "expression": check_expression}.get(case["checker"])
    with pytest.raises(errors.InvalidRequest) as caught:
        checker(case["text"]) if checker else check_statement(case["text"], case["kind"])
    assert str(caught.value).startswith(errors.FRAGMENT_REFUSED)
    assert case["expect"] in str(caught.value)


# --- messages ---------------------------------------------------------------------------------------------
def test_refusals_read_exactly_like_the_contract():
    upload = b"SET lock_timeout = 0;\n" + b"-- filler\n" * 810 + b"ALTER ROLE app SUPERUSER;\n"
    assert str(refusal(upload)) == "Refused upload statement at line 812: ALTER ROLE"
    upload = b"\n" * 11 + b"CREATE VIEW public.v AS\n  SELECT pg_catalog.pg_read_file('/etc/passwd');\n"
    refused = refusal(upload)
    assert str(refused) == "Refused upload statement at line 12: CREATE VIEW calls pg_catalog.pg_read_file"
    assert isinstance(refused, errors.InvalidRequest) and refused.message == errors.UPLOAD_REFUSED
    assert refused.detail == "CREATE VIEW calls pg_catalog.pg_read_file" and refused.line == 12
    again = pickle.loads(pickle.dumps(refused))
    assert str(again) == str(refused) and again.line == 12


# --- splitting ---------------------------------------------------------------------------------------------
def statements_of(upload: bytes) -> list:
    result = []
    for statement in gate_statements(io.BytesIO(upload)):
        data = statement.copy_data.read() if statement.copy_data is not None else None
        result.append((statement.line, statement.kind, statement.sql, data, statement.copy_rows))
    return result


def test_statements_are_the_exact_text_and_start_at_their_first_token():
    upload = (b"-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\n"
              b"CREATE TABLE public.t (a text DEFAULT 'x;y', b text DEFAULT $q$;$q$) ;\n"
              b"/* a ; comment */ COMMENT ON TABLE public.t IS E'it\\'s; fine'; SET lock_timeout = 0\n"
              b";\nCOPY public.t (a) FROM stdin;\nx\\ty\n\\\\.\n\\.\n"
              b"CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n"
              b"  SELECT CASE WHEN true THEN 2 END;\nEND;\nSELECT pg_catalog.setval('public.s', 3)")
    assert statements_of(upload) == [
        (4, "CreateStmt", "CREATE TABLE public.t (a text DEFAULT 'x;y', b text DEFAULT $q$;$q$) ", None, None),
        (5, "CommentStmt", "COMMENT ON TABLE public.t IS E'it\\'s; fine'", None, None),
        (5, "VariableSetStmt", "SET lock_timeout = 0\n", None, None),
        (7, "CopyStmt", "COPY public.t (a) FROM stdin", b"x\\ty\n\\\\.\n", 2),
        (11, "CreateFunctionStmt", "CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql\nBEGIN ATOMIC\n"
         "  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND", None, None),
        (16, "SelectStmt", "SELECT pg_catalog.setval('public.s', 3)", None, None),
    ]


def test_copy_data_reads_line_by_line_and_in_small_pieces():
    data = "".join(f"{i}\tvalue {i} ünï\\n\\\\.\n" for i in range(5000)).encode()
    upload = b"COPY public.t (a, b) FROM stdin;\n" + data + b"\\.\r\nSET lock_timeout = 0;\n"
    statements = gate_statements(io.BytesIO(upload))
    copy = next(statements)
    lines = list(iter(copy.copy_data.readline, b""))
    assert b"".join(lines) == data and len(lines) == 5000 and copy.copy_rows == 5000
    assert next(statements).kind == "VariableSetStmt"
    copy = next(gate_statements(io.BytesIO(upload)))
    assert b"".join(iter(lambda: copy.copy_data.read(7), b"")) == data


def test_an_unread_copy_block_is_skipped_and_counted():
    upload = b"COPY public.t FROM stdin;\n1\n2\n3\n\\.\nCOPY public.u FROM stdin;\n\\.\nSET lock_timeout = 0;\n"
    report = check_upload(io.BytesIO(upload))
    assert report.table_rows == {"public.t": 3, "public.u": 0} and report.statements == 3


class Trickle(io.RawIOBase):
    """A stream that returns a few bytes per read, like a slow socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.at:self.at + min(self.step, size if size >= 0 else self.step)]
        self.at += len(chunk)
        return chunk


def test_short_reads_split_the_same_way(gate_dumps):
    upload = gate_dumps["plain"]
    whole = statements_of(upload)
    for step in (1009, 4096 * 3 + 1):
        trickled = [(s.line, s.kind, s.sql, s.copy_data.read() if s.copy_data else None)
                    for s in gate_statements(Trickle(upload, step))]
        assert trickled == [row[:4] for row in whole]


def test_psql_restrict_lines_are_dropped_only_between_statements():
    upload = (b"--\n-- PostgreSQL database dump\n--\n\n\\restrict a1B2c3\n\nSET lock_timeout = 0;\r\n"
              b"CREATE TABLE public.t (a integer);\r\n\\unrestrict a1B2c3\r\n")
    report = check_upload(io.BytesIO(upload))
    assert report.restrict_lines == 2 and report.statements == 2
    assert check_upload(io.BytesIO(b"\\restrict k\nSET lock_timeout = 0;\n")).restrict_lines == 1
    assert "psql meta-command \\unrestrict" in str(refusal(b"SET lock_timeout = 0; \\unrestrict k\n"))
    assert "psql meta-command \\restrict" in str(refusal(b"SET lock_timeout =\n\\restrict k\n0;\n"))


def test_copy_edge_cases_crlf_end_of_file_and_rows_longer_than_the_statement_limit():
    crlf = b"SET lock_timeout = 0;\r\nCOPY public.t (a) FROM stdin;\r\nx\r\ny\r\n\\.\r\nSET lock_timeout = 0;\r\n"
    assert check_upload(io.BytesIO(crlf)).table_rows == {"public.t": 2}
    assert check_upload(io.BytesIO(b"COPY public.t (a) FROM stdin;\nx\n\\.")).table_rows == {"public.t": 1}
    row = b"1\t" + b"\\x" + b"ab" * 1_500_000 + b"\n"
    upload = b"COPY public.t (a, b) FROM stdin;\n" + row * 2 + b"\\.\nSET lock_timeout = 0;\n"
    statements = gate_statements(io.BytesIO(upload), GateLimits(1 << 20))
    copy = next(statements)
    assert copy.copy_data.read() == row * 2 and copy.copy_rows == 2
    assert next(statements).kind == "VariableSetStmt"


def test_ownership_and_privileges_are_skipped_and_relations_estimated():
    upload = (b"CREATE TABLE public.t (id integer PRIMARY KEY, u text UNIQUE);\n"
              b"ALTER TABLE public.t OWNER TO someone;\nALTER FUNCTION public.f() OWNER TO someone;\n"
              b"GRANT SELECT ON TABLE public.t TO reader;\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\n"
              b"CREATE SEQUENCE public.s;\nCREATE INDEX t_u ON public.t (u);\nCREATE VIEW public.v AS SELECT 1;\n"
              b"ALTER TABLE ONLY public.t ADD CONSTRAINT t_u2 UNIQUE (u);\n")
    skipped = [(s.kind, s.skipped) for s in gate_statements(io.BytesIO(upload))]
    assert skipped == [("CreateStmt", False), ("AlterTableStmt", True), ("AlterOwnerStmt", True),
                       ("GrantStmt", True), ("GrantStmt", True), ("CreateSeqStmt", False), ("IndexStmt", False),
                       ("ViewStmt", False), ("AlterTableStmt", False)]
    report = check_upload(io.BytesIO(upload))
    assert report.skipped == 4 and report.relations == 3 + 1 + 1 + 1 + 1


def test_a_last_statement_without_semicolon_and_trailing_comments_pass():
    report = check_upload(io.BytesIO(b"SET lock_timeout = 0;\nSET statement_timeout = 0\n-- end; of dump\n"))
    assert report.statements == 2
    assert check_upload(io.BytesIO(b"")).statements == 0
    assert check_upload(io.BytesIO(b"-- only; comments\n/* ; */\n")).statements == 0


STATEMENTS = [
    "SET lock_timeout = 0", "COMMENT ON TABLE public.t IS 'a;b'", "COMMENT ON TABLE public.t IS $$x;\ny$$",
    "COMMENT ON TABLE public.t IS $é$;'$é$", "COMMENT ON TABLE public.t IS E'it\\'s;'",
    "CREATE TABLE public.t (a text DEFAULT ';--', b text DEFAULT U&'\\0041;')",
    "CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n"
    " SELECT CASE WHEN true THEN 2 END;\nEND",
    "CREATE VIEW public.v AS SELECT 1 /* ; */ AS a", "SELECT pg_catalog.setval('public.s', 1)",
    "CREATE FUNCTION public.g() RETURNS integer LANGUAGE plpgsql AS $b$ BEGIN RETURN 1; END $b$",
]
SEPARATORS = [";\n", "; ", ";", ";\r\n", ";\n-- c; d\n", ";/* ; */", ";\n\n", ";\n/* multi\n;line */\n"]


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from(STATEMENTS), st.sampled_from(SEPARATORS)), max_size=25),
       last=st.sampled_from(["", "\n-- end", "SET lock_timeout = 0"]), step=st.sampled_from([None, 1, 7, 64]),
       batch=st.booleans())
def test_the_split_is_the_servers_split(parts, last, step, batch):
    """Without COPY data, the gate yields exactly the statements PostgreSQL's parser finds in the whole
    text, at the same lines, however the stream is cut and whether or not statements are batched."""
    from pglast import parser

    from backup_engine.engines.postgresql import gate_split

    text = ("-- head;\n" + "".join(statement + separator for statement, separator in parts) + last).encode()
    expected = []
    for found in json.loads(parser.parse_sql_json(text.decode()))["stmts"]:
        start = found.get("stmt_location", 0)
        end = start + (found.get("stmt_len") or len(text) - start)
        expected.append((text[:start].count(b"\n") + 1, text[start:end].decode()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gate_split, "BATCH_BYTES", gate_split.BATCH_BYTES if batch else 0)
        stream = Trickle(text, step) if step else io.BytesIO(text)
        assert [(s.line, s.sql) for s in gate_statements(stream)] == expected


# --- real pg_dump output ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gate_source(pg_server):
    """A rich database (richdb_pg plus EXTRA_SQL) and a role for its grants and policies."""
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DO $$ BEGIN CREATE ROLE gate_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    conn.close()
    name = f"gate_src_{uuid.uuid4().hex[:8]}"
    url = build_gate_database(pg_server, name)
    yield name, url
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def gate_dumps(pg_server, gate_source, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate_dumps")
    return {variant: pg_dump(pg_server, gate_source[0], flags, folder) for variant, flags in DUMP_VARIANTS.items()}


@pytest.mark.parametrize("variant", list(DUMP_VARIANTS))
def test_clean_pg_dump_output_passes_with_real_row_counts(gate_source, gate_dumps, variant):
    upload = gate_dumps[variant]
    started = time.perf_counter()
    report = check_upload(io.BytesIO(upload))
    print(f"\n{variant}: {len(upload)} bytes, {report.statements} statements in "
          f"{time.perf_counter() - started:.3f}s")
    real = richdb_pg.table_row_counts(gate_source[1])
    assert report.bytes == len(upload)
    assert report.relations >= len(real)
    if variant in ("plain", "clean-if-exists", "no-owner-no-privileges"):
        assert report.table_rows == {table: real[table] for table in report.table_rows}
        assert {table for table, rows in real.items() if rows} <= set(report.table_rows)
    if variant in ("inserts", "column-inserts-on-conflict"):
        assert report.kinds["InsertStmt"] == sum(real.values()) and not report.table_rows
    if variant == "clean-if-exists":
        assert report.kinds["DropStmt"] > 20
    if variant == "no-owner-no-privileges":
        assert report.skipped == 0 and "AlterOwnerStmt" not in report.kinds and "GrantStmt" not in report.kinds
    else:
        assert report.skipped == report.kinds.get("AlterOwnerStmt", 0) + report.kinds.get("GrantStmt", 0) + sum(
            1 for s in gate_statements(io.BytesIO(upload)) if s.kind == "AlterTableStmt" and s.skipped) > 0


@pytest.mark.parametrize("variant", ["plain", "inserts", "clean-if-exists"])
def test_restoring_through_the_gate_rebuilds_the_database(pg_server, gate_source, gate_dumps, make_pg_database,
                                                          variant):
    """The split is exact: sending each statement as the gate yields it rebuilds the same database."""
    target = make_pg_database("gate_dst")
    sent = restore_through_gate(target, gate_dumps[variant])
    assert sent > 100
    assert richdb_pg.database_state(target) == richdb_pg.database_state(gate_source[1])
    assert richdb_pg.schema_fingerprint(target) == richdb_pg.schema_fingerprint(gate_source[1])


def test_the_checkers_accept_what_the_catalog_renders_and_return_their_own_text(gate_source):
    """Column types, defaults/checks, and view/function/trigger/index definitions of the rich database."""
    conn = richdb_pg.connect(gate_source[1])
    with conn.cursor() as cur:
        cur.execute("""SELECT DISTINCT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                       JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname IN ('public', 'sales') AND a.attnum > 0 AND NOT a.attisdropped""")
        types = [row[0] for row in cur.fetchall()]
        cur.execute("""SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
                       UNION ALL SELECT pg_get_expr(conbin, conrelid) FROM pg_constraint WHERE contype = 'c'
                       AND connamespace::regnamespace::text IN ('public', 'sales')""")
        expressions = [row[0] for row in cur.fetchall() if row[0]]
        cur.execute("""SELECT 'CREATE VIEW v AS ' || pg_get_viewdef(c.oid), 'ViewStmt' FROM pg_class c
                       WHERE relkind = 'v' AND relnamespace::regnamespace::text IN ('public', 'sales')
                       UNION ALL SELECT pg_get_functiondef(p.oid), 'CreateFunctionStmt' FROM pg_proc p
                       WHERE pronamespace::regnamespace::text IN ('public', 'sales') AND prokind IN ('f', 'p')
                         AND prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
                         AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
                       UNION ALL SELECT pg_get_triggerdef(oid), 'CreateTrigStmt' FROM pg_trigger WHERE NOT tgisinternal
                       UNION ALL SELECT pg_get_indexdef(i.indexrelid), 'IndexStmt' FROM pg_index i
                       JOIN pg_class c ON c.oid = i.indexrelid WHERE relnamespace::regnamespace::text = 'public'""")
        definitions = cur.fetchall()
    conn.close()
    assert len(types) > 20 and len(expressions) > 10 and len(definitions) > 20
    for text in types:
        rendered = check_type_name(text)
        assert check_type_name(rendered) == rendered
    for text in expressions:
        rendered = check_expression(text)
        assert check_expression(rendered) == rendered
    for text, kind in definitions:
        rendered = check_statement(text, kind)
        assert rendered is not text and check_statement(rendered, kind) == rendered


# --- generated scripts ------------------------------------------------------------------------------------
# Every hostile file but those whose hostile part swallows what follows it (a truncated upload, COPY data
# without its end) or needs a smaller statement limit.
SPLICEABLE = [f for f in HOSTILE if f.limit is None and not f.name.startswith("truncated_")
              and f.name != "copy_data_without_terminator"]
DECORATIONS = [b"", b"\n", b"\n\n", b"-- comment; with; semicolons\n", b"/* block ; ' \" $$ comment */\n",
               b"--\n-- Name: x; Type: TABLE; Schema: public; Owner: -\n--\n\n", b"   \t\n"]


@pytest.fixture(scope="module")
def base_pieces(gate_dumps):
    return clean_pieces(gate_dumps["plain"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_generated_scripts_pass_when_clean_and_are_refused_at_the_spliced_statement(base_pieces, data):
    chosen = data.draw(st.lists(st.sampled_from(base_pieces), max_size=30), label="clean statements")
    spliced = data.draw(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(SPLICEABLE)), max_size=3),
                        label="hostile statements")
    segments: list[tuple[bytes, HostileFile | None]] = [(piece, None) for piece in chosen]
    for position, hostile in spliced:
        segments.insert(min(position, len(segments)), (hostile.body, hostile))
    script, placed = b"", []
    for text, hostile in segments:
        script += data.draw(st.sampled_from(DECORATIONS))
        if hostile is not None:
            placed.append((hostile, script.count(b"\n") + 1, script.count(b"\n") + 1 + text.count(b"\n")))
        script += text
    if not placed:
        report = check_upload(io.BytesIO(script))
        assert report.statements == len(chosen)
        return
    refused = refusal(script)
    # The first hostile statement is refused, unless a NUL byte further on was read first: a block
    # of input holding one is refused as soon as it is read, before any statement in it is parsed.
    nul_bearing = [entry for entry in placed if b"\x00" in entry[0].body]
    hostile, start, end = next((entry for entry in nul_bearing if entry[1] <= refused.line <= entry[2]), placed[0])
    assert hostile.expect in str(refused), (hostile.name, str(refused))
    assert start <= refused.line <= end, (hostile.name, str(refused), start, end)


# --- size, time, memory -----------------------------------------------------------------------------------
def timed(upload: bytes, limits: GateLimits = GateLimits()) -> tuple[float, object]:
    started = time.perf_counter()
    try:
        outcome: object = check_upload(io.BytesIO(upload), limits)
    except errors.UploadRefused as exc:
        outcome = exc
    return time.perf_counter() - started, outcome


def test_large_statements_and_many_statements_are_handled_in_one_pass():
    """Measured (printed), not asserted: each should take well under a second or two."""
    cases = {
        "2 MB COMMENT with 200k ; and non-ASCII": "COMMENT ON TABLE public.t IS '" + "é;ü;" * 250_000 + "';\n",
        "2 MB INSERT of 100k rows": "INSERT INTO public.t VALUES " + ",".join(
            f"({i}, 'ünï{i}')" for i in range(100_000)) + ";\n",
        "2 MB function body with 100k ;": "CREATE FUNCTION public.f() RETURNS integer LANGUAGE plpgsql AS $$\nBEGIN\n"
            + "  PERFORM 1;\n" * 150_000 + "  RETURN 1;\nEND\n$$;\n",
        "BEGIN ATOMIC with 20k statements": "CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql\nBEGIN ATOMIC\n"
            + "  SELECT CASE WHEN true THEN 1 END;\n" * 20_000 + "END;\n",
        "200k tiny statements": "SET lock_timeout = 0;\n" * 200_000,
        "200k statements on one line": "SET lock_timeout = 0;" * 200_000,
    }
    for name, text in cases.items():
        upload = text.encode()
        elapsed, outcome = timed(upload)
        assert not isinstance(outcome, errors.UploadRefused), (name, outcome)
        print(f"\n{name}: {len(upload) / 1e6:.1f} MB in {elapsed:.2f}s")
    elapsed, outcome = timed(("COMMENT ON TABLE public.t IS $x$" + ";\n" * 1_000_000).encode(), GateLimits(1 << 20))
    assert "longer than 1048576 bytes" in str(outcome)
    print(f"\nunterminated 2 MB literal over a 1 MB limit: refused in {elapsed:.2f}s")


@pytest.mark.parametrize("terminated", [True, False])
def test_a_30_mb_single_line_is_held_without_many_copies(terminated):
    size = 30 * 1024 * 1024
    line = b"COMMENT ON TABLE public.t IS '" + b"x" * size + (b"';\n" if terminated else b"")
    tracemalloc.start()
    try:
        elapsed, outcome = timed(line, GateLimits(40 * 1024 * 1024 if terminated else 16 * 1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n30 MB line ({'passed' if terminated else 'refused'}): {elapsed:.2f}s, peak {peak / size:.1f}x its size")
    assert isinstance(outcome, errors.UploadRefused) != terminated, outcome
    assert peak < (5 if terminated else 2) * size  # buffer, str for pglast, its UTF-8 copy, its JSON
