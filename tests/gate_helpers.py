"""Helpers for the upload-gate tests: a richer database than richdb_pg alone, real pg_dump runs,
a minimal executor that restores through the gate exactly as the worker will (psycopg2, one
statement per execute, COPY data through copy_expert, one transaction), and the hostile corpus.

Not a test module.
"""

from __future__ import annotations

import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from backup_engine.engines.postgresql.gate import SESSION_SETTINGS, GateLimits, gate_statements
from tests import richdb_pg

CORPUS = Path(__file__).parent / "hostile_corpus"
PRELUDE_END = b"CREATE TABLE public.t (\n    id integer NOT NULL,\n    note text\n);\n\n"

# Objects richdb_pg does not make and pg_dump writes: extensions, composite and range types,
# collations, aggregates, operators, casts, BEGIN ATOMIC and RETURN bodies, procedures, a
# materialized view, rules, row level security and policies, statistics, text search, a
# PL/pgSQL trigger function with assignments, loops and RAISE, inheritance, grants.
EXTRA_SQL = r"""
CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE TYPE public.pair AS (a integer, b text);
CREATE TYPE public.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE COLLATION public.c_copy FROM "C";
CREATE FUNCTION public.add_pair(public.pair, integer) RETURNS public.pair LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
  SELECT ROW(($1).a + $2, ($1).b)::public.pair;
  SELECT CASE WHEN $2 > 0 THEN ROW(($1).a, 'positive; still one statement')::public.pair ELSE $1 END;
END;
CREATE FUNCTION public.int_sum_state(integer, integer) RETURNS integer LANGUAGE sql IMMUTABLE RETURN $1 + $2;
CREATE AGGREGATE public.my_sum(integer) (SFUNC = public.int_sum_state, STYPE = integer, INITCOND = '0');
CREATE FUNCTION public.approx_eq(double precision, double precision) RETURNS boolean LANGUAGE sql IMMUTABLE
AS $$ SELECT abs($1 - $2) < 1e-9 $$;
CREATE OPERATOR public.=~= (LEFTARG = double precision, RIGHTARG = double precision, FUNCTION = public.approx_eq,
                            COMMUTATOR = OPERATOR(public.=~=));
CREATE FUNCTION public.text_to_pair(text) RETURNS public.pair LANGUAGE sql IMMUTABLE
AS 'SELECT ROW(length($1), $1)::public.pair';
CREATE CAST (text AS public.pair) WITH FUNCTION public.text_to_pair(text);
CREATE PROCEDURE public.bump_qty(p integer) LANGUAGE plpgsql
AS $$ BEGIN UPDATE public.products SET qty = qty + p; END $$;
CREATE MATERIALIZED VIEW public.product_stats AS SELECT count(*) AS n, sum(price) AS total FROM public.products;
CREATE UNIQUE INDEX product_stats_n_idx ON public.product_stats (n);
CREATE RULE documents_no_delete AS ON DELETE TO public.documents WHERE old.title = 'keep' DO INSTEAD NOTHING;
CREATE RULE orders_log AS ON UPDATE TO public.orders
    DO ALSO INSERT INTO public.audit_log (table_name, op) VALUES ('orders', 'rule; with a semicolon');
ALTER TABLE public.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_visible ON public.documents FOR SELECT TO gate_reader USING (created > '2000-01-01'::date);
CREATE STATISTICS public.orders_stats (dependencies) ON customer_id, status FROM public.orders;
CREATE TEXT SEARCH CONFIGURATION public.my_english (COPY = pg_catalog.english);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  n integer := 0;
  r record;
BEGIN
  NEW.label := upper(NEW.label::text);
  n := n + 1;
  FOR r IN SELECT id FROM public.tagged WHERE id = NEW.id LOOP
    n := n + r.id;
  END LOOP;
  IF n > 100 THEN
    RAISE NOTICE 'many: % (%;)', n, format('%s', n);
  END IF;
  RETURN NEW;
END
$$;
CREATE TABLE public.tagged (id integer PRIMARY KEY, label public.citext, r public.floatrange, p public.pair,
                            CONSTRAINT tagged_label_check CHECK (length(label::text) < 100));
INSERT INTO public.tagged VALUES (1, 'Hello', '[1.5,2.5)', ROW(1, 'x')),
                                 (2, E'World; COPY x FROM stdin;\n\\.', NULL, NULL);
CREATE INDEX tagged_label_trgm_idx ON public.tagged USING gin ((label::text) public.gin_trgm_ops);
ALTER TABLE public.tagged ALTER COLUMN label SET STATISTICS 200;
ALTER TABLE public.tagged CLUSTER ON tagged_pkey;
ALTER TABLE public.tagged REPLICA IDENTITY FULL;
CREATE TRIGGER tagged_touch BEFORE UPDATE ON public.tagged FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
  EXECUTE FUNCTION public.touch();
ALTER TABLE public.tagged DISABLE TRIGGER tagged_touch;
CREATE TABLE public.child_of_tagged (extra text) INHERITS (public.tagged);
INSERT INTO public.child_of_tagged VALUES (3, 'child', NULL, NULL, 'extra');
GRANT SELECT ON public.customers TO gate_reader;
GRANT USAGE ON SCHEMA sales TO gate_reader;
REVOKE ALL ON FUNCTION public.touch() FROM PUBLIC;
COMMENT ON MATERIALIZED VIEW public.product_stats IS 'stats; with a semicolon';
ALTER TABLE public.orders ADD CONSTRAINT orders_note_len CHECK (length(note) < 10000) NOT VALID;
CREATE TABLE public.cache (k text PRIMARY KEY, v jsonb) WITH (fillfactor = 70);
ALTER TABLE public.cache ALTER COLUMN v SET STORAGE EXTERNAL;
CREATE VIEW public.secure_docs WITH (security_barrier) AS
    SELECT id, title FROM public.documents WHERE created IS NOT NULL;
"""

DUMP_VARIANTS = {
    "plain": [],
    "inserts": ["--inserts"],
    "column-inserts-on-conflict": ["--column-inserts", "--on-conflict-do-nothing"],
    "clean-if-exists": ["--clean", "--if-exists"],
    "no-owner-no-privileges": ["--no-owner", "--no-privileges"],
    "schema-only": ["--schema-only"],
}


def build_gate_database(pg_server, name: str) -> str:
    """The rich database plus EXTRA_SQL; returns its URL. Needs the role `gate_reader`."""
    url = pg_server.create_database(name)
    richdb_pg.build_rich_database(url, rows_per_table=60, seed=5)
    pg_server.execute(name, EXTRA_SQL)
    return url


def pg_dump(pg_server, database: str, flags: list[str], folder: Path) -> bytes:
    """A plain dump from the real pg_dump; the password goes through a 0600 PGPASSFILE."""
    passfile = folder / "pgpass"
    passfile.write_text(f"{pg_server.host}:{pg_server.port}:*:{pg_server.superuser}:"
                        + pg_server.password.replace("\\", "\\\\").replace(":", "\\:") + "\n")
    passfile.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGPASSFILE"] = str(passfile)
    return subprocess.run(["pg_dump", "-h", pg_server.host, "-p", str(pg_server.port), "-U", pg_server.superuser,
                           *flags, database], env=env, capture_output=True, check=True).stdout


def restore_through_gate(url: str, upload: bytes | BinaryIO, limits: GateLimits = GateLimits()) -> int:
    """Execute an upload the way the worker will; returns how many statements were sent."""
    stream = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    conn = richdb_pg.connect(url)
    sent = 0
    try:
        with conn.cursor() as cur:
            for name, value in SESSION_SETTINGS:
                cur.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
            for statement in gate_statements(stream, limits):
                if statement.skipped:
                    continue
                if statement.copy_data is not None:
                    cur.copy_expert(statement.sql, statement.copy_data, size=1 << 16)
                else:
                    cur.execute(statement.sql)
                sent += 1
        conn.commit()
    finally:
        conn.close()
    return sent


@dataclass(frozen=True)
class HostileFile:
    name: str
    data: bytes
    expect: str
    limit: int | None
    body_line: int   # first line of the hostile part (after the pg_dump-like prelude)

    @property
    def body(self) -> bytes:
        return self.data[self.data.index(PRELUDE_END) + len(PRELUDE_END):]


def hostile_files() -> list[HostileFile]:
    files = []
    for path in sorted(CORPUS.glob("*.sql")):
        data = path.read_bytes()
        first, second = data.split(b"\n", 2)[:2]
        expect = first.decode().removeprefix("-- expect: ")
        limit = int(second.decode().removeprefix("-- limit: ")) if second.startswith(b"-- limit:") else None
        body_line = data[:data.index(PRELUDE_END) + len(PRELUDE_END)].count(b"\n") + 1
        files.append(HostileFile(path.stem, data, expect, limit, body_line))
    return files


def clean_pieces(dump: bytes) -> list[bytes]:
    """The statements of a clean dump, each as runnable text (`sql;` and, for COPY, its data and `\\.`)."""
    pieces = []
    for statement in gate_statements(io.BytesIO(dump)):
        text = statement.sql.encode() + b";\n"
        if statement.copy_data is not None:
            text += statement.copy_data.read() + b"\\.\n"
        pieces.append(text)
    return pieces
