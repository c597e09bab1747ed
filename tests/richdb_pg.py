"""A "rich" PostgreSQL database for round-trip tests, and ways to compare two databases.

Not a test module: a plain helper that tests import.

Building:
    build_rich_database(url_or_conn, rows_per_table=200, seed=0)
        = create_rich_schema(conn) + populate(conn, rows_per_table=..., seed=...)

The schema covers what a dump/restore path tends to get wrong: many column types (numeric
with NaN/Infinity, float specials, intervals, uuid, json and jsonb, bytea, arrays with empty
arrays and NULL elements, an enum whose labels were reordered, domains with CHECKs), a
generated STORED column, serial and IDENTITY columns, a range-partitioned table, views, a
plpgsql trigger function and its trigger, foreign keys (one self-referencing, one across
schemas), unique/check constraints, expression/partial/GIN indexes, a second schema, comments,
and a table and columns whose names hold a space, a double quote, a reserved word, unicode
and `;`. Values include NULLs, emoji, CJK, quotes, backslashes, tabs, newlines, `\\.`, `\\N`
and empty strings. Sequences are advanced beyond max(id), and one is left un-called, so that
sequence positions are meaningful to compare.

Comparing (compute both on each database and compare with ==):
    database_state(conn)      -> row count and ordered md5 of every user table; every
                                 sequence's (last_value, is_called)
    schema_fingerprint(conn)  -> catalog description of schemas, columns, constraints,
                                 indexes, views, functions, triggers, enums, domains,
                                 sequences, partitions and comments
    table_row_counts(conn)    -> {qualified name: count(*) FROM ONLY table}, names quoted the
                                 way pg_dump prints them (quote_ident), e.g. `sales.invoices`
    total_rows(conn)          -> sum of table_row_counts (every row counted once)

Every function accepts a psycopg2 connection or a URL (SQLAlchemy URL or string); with a URL
it opens and closes its own connection. Read-only functions roll back the transaction they
opened, so they never leave a connection "idle in transaction".
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json, execute_values

DEFAULT_ROWS = 200

# Names that need quoting: a space, a double quote, `;`, a reserved word, unicode.
ODD_TABLE = 'we"ird ta;ble select 表 🎉'
ODD_COLUMN = 'co"l; from 列 ✓'
ODD_TABLE_QUALIFIED = 'public."we""ird ta;ble select 表 🎉"'

SPECIAL_STRINGS: tuple[str, ...] = (
    "",
    "plain ascii",
    "it's",
    'say "hi"',
    "back\\slash",
    "C:\\path\\to\\file\\",
    "tab\there",
    "new\nline",
    "\\.",
    "\\.\nafter a copy terminator",
    "line\n\\.\nline",
    "\\N",
    "NULL",
    "emoji 😀🎉👩‍💻",
    "CJK 漢字かなカナ한국어",
    "mixed '\"\\\t\n; all at once",
    "-- not a comment",
    "/* not a comment */",
    "crlf\r\nend",
    "$$dollar$$ $tag$",
    "semi;colon); DROP TABLE customers; --",
    "trailing space ",
    " leading space",
    "ünïcödé ß",
    "\u00a0nbsp",
    "rtl עברית العربية",
)

SCHEMA_SQL = r"""
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'Sales: it''s a "second" schema';

CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'ünïcode label', 'with space');
CREATE DOMAIN public.email_address AS varchar(254) CHECK (VALUE LIKE '%_@_%');
CREATE DOMAIN sales.positive_amount AS numeric(12, 2) CHECK (VALUE > 0);

CREATE SEQUENCE sales.invoice_number_seq START WITH 1000 INCREMENT BY 7;
CREATE SEQUENCE sales.never_called_seq;

CREATE TABLE public.customers (
    id serial PRIMARY KEY,
    email public.email_address NOT NULL,
    name text,
    status public.mood DEFAULT 'ok',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    birthday date,
    referrer_id integer REFERENCES public.customers (id) ON DELETE SET NULL,
    balance numeric(12, 2) DEFAULT 0 CHECK (balance > -1000),
    score numeric,
    tags text[] DEFAULT '{}',
    prefs jsonb,
    CONSTRAINT customers_email_key UNIQUE (email)
);
COMMENT ON TABLE public.customers IS 'People; note the self-referencing "referrer" FK \ and quotes''';
COMMENT ON COLUMN public.customers.score IS 'may be NaN';
CREATE INDEX customers_lower_email_idx ON public.customers (lower(email::text));

CREATE TABLE public.products (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku varchar(32) NOT NULL UNIQUE,
    title text NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price >= 0),
    qty integer NOT NULL DEFAULT 0,
    weight double precision,
    total_value numeric GENERATED ALWAYS AS (price * qty) STORED,
    attrs json,
    photo bytea,
    dims integer[]
);

CREATE TABLE public.orders (
    id bigserial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES public.customers (id) ON DELETE CASCADE,
    ordered_at timestamp without time zone NOT NULL,
    shipping_window interval,
    order_uuid uuid NOT NULL,
    status varchar(16) NOT NULL DEFAULT 'new',
    note text,
    CONSTRAINT orders_order_uuid_key UNIQUE (order_uuid),
    CONSTRAINT orders_status_check CHECK (status::text IN ('new', 'paid', 'shipped', 'cancelled'))
);
CREATE INDEX orders_with_note_idx ON public.orders (customer_id) WHERE note IS NOT NULL;

CREATE TABLE public.order_items (
    order_id bigint NOT NULL REFERENCES public.orders (id) ON DELETE CASCADE,
    line_no integer NOT NULL,
    product_id integer NOT NULL REFERENCES public.products (id),
    quantity smallint NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE public.events (
    id bigserial,
    happened_at timestamptz NOT NULL,
    kind text NOT NULL,
    payload jsonb,
    PRIMARY KEY (id, happened_at)
) PARTITION BY RANGE (happened_at);
CREATE TABLE public.events_2023 PARTITION OF public.events
    FOR VALUES FROM ('2023-01-01 00:00:00+00') TO ('2024-01-01 00:00:00+00');
CREATE TABLE public.events_2024 PARTITION OF public.events
    FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00');
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
CREATE INDEX events_kind_idx ON public.events (kind, happened_at);

CREATE TABLE public.audit_log (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    op text NOT NULL,
    row_data jsonb,
    logged_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE public.documents (
    id uuid PRIMARY KEY,
    title varchar(200) NOT NULL,
    body text,
    raw bytea,
    meta jsonb,
    created date
);
CREATE INDEX documents_title_lower_idx ON public.documents (lower(title));
CREATE INDEX documents_meta_gin_idx ON public.documents USING gin (meta);
CREATE INDEX documents_body_partial_idx ON public.documents (created) WHERE body IS NOT NULL AND body <> '';

CREATE TABLE public.type_zoo (
    id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    c_smallint smallint,
    c_int integer,
    c_bigint bigint,
    c_numeric numeric(20, 6),
    c_numeric_free numeric,
    c_real real,
    c_float8 double precision,
    c_text text,
    c_varchar varchar(10),
    c_char char(3),
    c_bool boolean,
    c_date date,
    c_ts timestamp,
    c_tstz timestamptz,
    c_time time,
    c_interval interval,
    c_uuid uuid,
    c_json json,
    c_jsonb jsonb,
    c_bytea bytea,
    c_int_arr integer[],
    c_text_arr text[],
    c_int_matrix integer[][],
    c_mood public.mood,
    c_email public.email_address,
    c_inet inet
);

CREATE TABLE public.empty_table (
    id integer PRIMARY KEY,
    note text
);

CREATE TABLE public."we""ird ta;ble select 表 🎉" (
    id integer PRIMARY KEY,
    "co""l; from 列 ✓" text,
    "select" integer,
    "Mixed Case" boolean DEFAULT false
);
CREATE INDEX "we""ird idx; 索引" ON public."we""ird ta;ble select 表 🎉" ("co""l; from 列 ✓");
COMMENT ON COLUMN public."we""ird ta;ble select 表 🎉"."co""l; from 列 ✓" IS 'odd; "quoted" 列';

CREATE TABLE sales.regions (
    code char(2) PRIMARY KEY,
    name text NOT NULL UNIQUE
);

CREATE TABLE sales.invoices (
    id serial PRIMARY KEY,
    invoice_no bigint NOT NULL DEFAULT nextval('sales.invoice_number_seq'),
    region_code char(2) NOT NULL REFERENCES sales.regions (code),
    customer_id integer REFERENCES public.customers (id) ON DELETE SET NULL,
    amount sales.positive_amount NOT NULL,
    issued_on date NOT NULL,
    paid boolean,
    CONSTRAINT invoices_no_key UNIQUE (invoice_no)
);
ALTER SEQUENCE sales.invoice_number_seq OWNED BY sales.invoices.invoice_no;

CREATE FUNCTION public.audit_products() RETURNS trigger
    LANGUAGE plpgsql
AS $fn$
BEGIN
    INSERT INTO public.audit_log (table_name, op, row_data)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP,
            to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END));
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$fn$;
COMMENT ON FUNCTION public.audit_products() IS 'writes one audit_log row per change';

CREATE TRIGGER products_audit
    AFTER INSERT OR UPDATE OR DELETE ON public.products
    FOR EACH ROW EXECUTE FUNCTION public.audit_products();

CREATE FUNCTION sales.invoice_total(p_customer integer) RETURNS numeric
    LANGUAGE sql STABLE
AS $$ SELECT coalesce(sum(amount), 0) FROM sales.invoices WHERE customer_id = p_customer $$;

CREATE VIEW public.customer_order_totals AS
    SELECT c.id, c.email, count(o.id) AS orders, max(o.ordered_at) AS last_order
    FROM public.customers c LEFT JOIN public.orders o ON o.customer_id = c.id
    GROUP BY c.id, c.email;

CREATE VIEW sales.unpaid_invoices AS
    SELECT i.id, i.invoice_no, r.name AS region, i.amount
    FROM sales.invoices i JOIN sales.regions r ON r.code = i.region_code
    WHERE i.paid IS NOT TRUE;
"""

# Run after SCHEMA_SQL commits: a label added BEFORE another gets a fractional sort order,
# which a restore must turn back into the same label order.
ENUM_SQL = "ALTER TYPE public.mood ADD VALUE 'meh' BEFORE 'ok'"

REGIONS = [("EU", "Europe"), ("NA", "North America"), ("AS", "Asia 亚洲"), ("XX", "It's \"nowhere\" \\ here")]


# --- connections -------------------------------------------------------------------------------------------
def connect(url: Any):
    """A psycopg2 connection from a SQLAlchemy URL (object or string)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url) if isinstance(url, str) else url
    kwargs: dict[str, Any] = {"dbname": parsed.database or "postgres"}
    for key, value in (("host", parsed.host), ("port", parsed.port), ("user", parsed.username),
                       ("password", parsed.password)):
        if value is not None:
            kwargs[key] = value
    return psycopg2.connect(**kwargs)


@contextmanager
def _connection(url_or_conn: Any) -> Iterator[Any]:
    if isinstance(url_or_conn, psycopg2.extensions.connection):
        yield url_or_conn
        return
    conn = connect(url_or_conn)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def _read_only(url_or_conn: Any) -> Iterator[Any]:
    """A cursor; rolls back afterwards when this call opened the transaction."""
    with _connection(url_or_conn) as conn:
        was_idle = conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            if was_idle and not conn.autocommit and not conn.closed:
                conn.rollback()


# --- building ----------------------------------------------------------------------------------------------
def build_rich_database(url_or_conn: Any, rows_per_table: int = DEFAULT_ROWS, seed: int = 0) -> None:
    """Create the rich schema in an empty database and fill it (committed)."""
    with _connection(url_or_conn) as conn:
        create_rich_schema(conn)
        populate(conn, rows_per_table=rows_per_table, seed=seed)


def create_rich_schema(conn) -> None:
    """Create every schema object (committed). The database must not hold them yet."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL)
    conn.commit()
    with conn.cursor() as cur:
        cur.execute(ENUM_SQL)
    conn.commit()


def populate(conn, rows_per_table: int = DEFAULT_ROWS, seed: int = 0) -> None:
    """Fill the rich schema with deterministic (per seed) awkward values, then advance sequences.

    Can be called again with another seed to add different rows. Most tables get
    `rows_per_table` rows (at least the number of special strings, so every one is used);
    `empty_table` stays empty; `sales.never_called_seq` is never called.
    """
    rng = random.Random(seed)
    n = max(rows_per_table, len(SPECIAL_STRINGS))
    tag = f"s{seed}"

    def special(i: int) -> str | None:
        if i % 11 == 5:
            return None
        return SPECIAL_STRINGS[i % len(SPECIAL_STRINGS)]

    base_ts = datetime(2023, 6, 1, 12, 0, 0, tzinfo=UTC)
    moods = ["sad", "meh", "ok", "happy", "ünïcode label", "with space"]
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        # customers: self-referencing FK filled in after insert
        rows = []
        for i in range(n):
            rows.append((
                f"user{i}.{tag}@example.com",
                special(i),
                None if i % 13 == 0 else moods[i % len(moods)],
                i % 3 != 0,
                base_ts + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(10**6)),
                None if i % 7 == 0 else date(1950, 1, 1) + timedelta(days=rng.randrange(25000)),
                Decimal(rng.randrange(-99999, 10**8)) / 100,
                ["NaN", "0.000000000000000000001", "-12345678901234567890.5", None,
                 str(Decimal(rng.randrange(10**6)) / 8)][i % 5],
                [[], None, ["a", None, ""], [special(i + 1) or "x", "NULL", "{braces}", 'q"uote', "com,ma"]][i % 4],
                None if i % 6 == 0 else Json({"theme": special(i + 2), "n": i, "nested": {"list": [1, None, "ü"]}}),
            ))
        customer_ids = [r[0] for r in execute_values(
            cur,
            "INSERT INTO public.customers (email, name, status, is_active, created_at, birthday, balance, score,"
            " tags, prefs) VALUES %s RETURNING id",
            rows, template="(%s, %s, %s::public.mood, %s, %s, %s, %s, %s::numeric, %s::text[], %s)", fetch=True)]
        referrals = [(customer_ids[rng.randrange(i)], cid) for i, cid in enumerate(customer_ids) if i and i % 3]
        execute_values(cur, "UPDATE public.customers c SET referrer_id = v.ref FROM (VALUES %s) AS v(ref, id)"
                       " WHERE c.id = v.id", referrals)

        # products (IDENTITY ALWAYS, generated column, trigger writes audit_log)
        float_specials = [0.1, -0.0, 1e300, float("inf"), float("-inf"), float("nan"), None, 2.5]
        rows = []
        for i in range(n):
            rows.append((
                f"SKU-{tag}-{i:05d}",
                special(i) or f"product {i}",
                Decimal(rng.randrange(0, 10**7)) / 100,
                rng.randrange(0, 500),
                float_specials[i % len(float_specials)] if i % 2 else rng.random() * 1000,
                None if i % 5 == 0 else Json({"b": 1, "a": [special(i), None], "i": i}),
                [None, b"", b"\x00\\.\n\t'\"", bytes(range(256)), rng.randbytes(rng.randrange(1, 64))][i % 5],
                [None, [], [1, None, 3], [-2147483648, 2147483647, 0]][i % 4],
            ))
        product_ids = [r[0] for r in execute_values(
            cur,
            "INSERT INTO public.products (sku, title, price, qty, weight, attrs, photo, dims) VALUES %s RETURNING id",
            rows, template="(%s, %s, %s, %s, %s, %s, %s, %s::integer[])", fetch=True)]
        # raw json text keeps whitespace, key order and duplicate keys
        cur.execute("UPDATE public.products SET attrs = %s::json WHERE id = %s",
                    ('{"b" : 1,   "a": [1, 2, {"x": null}], "a": "dup \\u00e9 \\"q\\""}', product_ids[0]))
        cur.execute("UPDATE public.products SET qty = qty + 1 WHERE id % 4 = 0")
        cur.execute("DELETE FROM public.products WHERE id = %s", (product_ids[-1],))
        product_ids.pop()

        # orders and order_items
        statuses = ["new", "paid", "shipped", "cancelled"]
        intervals = [None, timedelta(days=2, hours=3), timedelta(seconds=-90), timedelta(0),
                     timedelta(days=400, microseconds=1)]
        rows = []
        for i in range(n):
            rows.append((
                customer_ids[rng.randrange(len(customer_ids))],
                datetime(2024, 1, 1) + timedelta(minutes=rng.randrange(10**6)),
                intervals[i % len(intervals)],
                str(uuid.UUID(int=rng.getrandbits(128))),
                statuses[i % 4],
                special(i + 3),
            ))
        order_ids = [r[0] for r in execute_values(
            cur, "INSERT INTO public.orders (customer_id, ordered_at, shipping_window, order_uuid, status, note)"
                 " VALUES %s RETURNING id", rows, fetch=True)]
        cur.execute("UPDATE public.orders SET shipping_window = interval '1 year 2 mons 3 days 04:05:06.789'"
                    " WHERE id = %s", (order_ids[0],))
        rows = []
        for i in range(n):
            order_id = order_ids[i % len(order_ids)]
            rows.append((order_id, i, product_ids[rng.randrange(len(product_ids))], rng.randrange(1, 20),
                         None if i % 9 == 0 else Decimal(rng.randrange(10**6)) / 100))
        execute_values(cur, "INSERT INTO public.order_items (order_id, line_no, product_id, quantity, unit_price)"
                            " VALUES %s", rows)

        # events across the three partitions (2022 and 2025 land in the default partition)
        rows = []
        for i in range(n * 2):
            ts = datetime(2022, 7, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            rows.append((ts, ["login", "logout", "purchase", "error"][i % 4],
                         None if i % 8 == 0 else Json({"i": i, "s": special(i), "f": 1.5})))
        execute_values(cur, "INSERT INTO public.events (happened_at, kind, payload) VALUES %s", rows)

        # documents (uuid PK)
        rows = []
        for i in range(n):
            rows.append((str(uuid.UUID(int=rng.getrandbits(128))), f"Doc {tag} {i} {special(i) or ''}"[:200],
                         special(i + 5),
                         None if i % 4 == 0 else rng.randbytes(rng.randrange(0, 200)),
                         None if i % 3 == 0 else Json({"k": special(i), "tags": ["a", "b"][: i % 3]}),
                         date(2020, 1, 1) + timedelta(days=i)))
        execute_values(cur, "INSERT INTO public.documents (id, title, body, raw, meta, created) VALUES %s", rows)

        # type_zoo: every type, NULLs in every column now and then
        cur.execute("SELECT coalesce(max(id), 0) FROM public.type_zoo")
        start = cur.fetchone()[0]
        # strings, cast in SQL: psycopg2 adapts every non-finite Decimal as NaN
        numerics = ["NaN", "Infinity", "-Infinity", "0", "-0.000001", "12345678901234567890.123456789012345"]
        dates = [date(2000, 2, 29), "infinity", "-infinity", "0044-03-15 BC", date(1970, 1, 1)]
        stamps = [datetime(1999, 12, 31, 23, 59, 59, 999999), "infinity", "-infinity",
                  datetime(2038, 1, 19, 3, 14, 8)]
        rows = []
        for i in range(n):
            def maybe(value: Any, i: int = i, col: int = 0) -> Any:
                return None if (i + col) % 10 == 0 else value

            rows.append((
                start + i + 1,
                maybe([-32768, 32767, 0][i % 3], col=1),
                maybe(rng.randrange(-2**31, 2**31), col=2),
                maybe([-2**63, 2**63 - 1, rng.randrange(-2**63, 2**63)][i % 3], col=3),
                maybe(Decimal(rng.randrange(-10**19, 10**19)) / 10**6, col=4),
                maybe(numerics[i % len(numerics)], col=5),
                maybe([1.5, float("nan"), float("inf"), -0.0, 3.4e38][i % 5], col=6),
                maybe([0.1, 1e-300, -1e300, float("-inf"), 2**53 + 1.0][i % 5], col=7),
                maybe(special(i), col=8),
                maybe((special(i) or "")[:10], col=9),
                maybe(["a", "ab ", "é"][i % 3], col=1),
                maybe([True, False][i % 2], col=2),
                maybe(dates[i % len(dates)], col=3),
                maybe(stamps[i % len(stamps)], col=4),
                maybe(base_ts + timedelta(hours=rng.randrange(10**5), microseconds=rng.randrange(10**6)), col=5),
                maybe(f"{i % 24:02d}:{i % 60:02d}:{i % 60:02d}.{i:06d}"[:15], col=6),
                maybe(["1 day", "-3 hours 2 minutes", "1 year 2 mons", "00:00:00.000001", "-1000 years 3 days"][i % 5],
                      col=7),
                maybe(str(uuid.UUID(int=rng.getrandbits(128))), col=8),
                maybe(['{"b": 1,  "a": 2, "a": 3}', '[]', '"str \\" \\\\ \\u00e9"', 'null', '{"e":"😀"}'][i % 5],
                      col=9),
                maybe(Json({"k": special(i), "n": [1, 2.5, None, True], "ü": {"deep": "\t"}}), col=1),
                maybe([b"", b"\x00", b"\\.", bytes(range(256)), b"\xff\xfe"][i % 5], col=2),
                maybe([[], [None], [1, None, 3], [0]][i % 4], col=3),
                maybe([[], [None], ["", "NULL", None, special(i) or "z"], ['a"b', "c\\d", "{x}", "e,f"]][i % 4], col=4),
                maybe([[1, 2], [3, None]], col=5),
                maybe(moods[i % len(moods)], col=6),
                maybe(f"zoo{i}@{tag}.example", col=7),
                maybe(["127.0.0.1", "::1", "10.0.0.0/8", "2001:db8::/32"][i % 4], col=8),
            ))
        execute_values(
            cur,
            "INSERT INTO public.type_zoo VALUES %s",
            rows,
            template="(%s, %s, %s, %s, %s, %s::numeric, %s, %s, %s, %s, %s, %s, %s::date, %s::timestamp, %s, %s::time,"
                     " %s::interval, %s, %s::json, %s, %s, %s::integer[], %s::text[], %s::integer[], %s::public.mood,"
                     " %s, %s::inet)",
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('public.type_zoo', 'id'), %s)", (start + n,))

        # the odd table
        cur.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM public.{}").format(sql.Identifier(ODD_TABLE)))
        start = cur.fetchone()[0]
        rows = [(start + i + 1, special(i), None if i % 4 == 0 else i * 10, i % 2 == 0) for i in range(n)]
        execute_values(cur, sql.SQL("INSERT INTO public.{} (id, {}, {}, {}) VALUES %s").format(
            sql.Identifier(ODD_TABLE), sql.Identifier(ODD_COLUMN), sql.Identifier("select"),
            sql.Identifier("Mixed Case")).as_string(conn), rows)

        # sales schema
        execute_values(cur, "INSERT INTO sales.regions (code, name) VALUES %s ON CONFLICT DO NOTHING", REGIONS)
        rows = []
        for i in range(n):
            rows.append((REGIONS[i % len(REGIONS)][0],
                         None if i % 10 == 0 else customer_ids[rng.randrange(len(customer_ids))],
                         Decimal(rng.randrange(1, 10**7)) / 100,
                         date(2023, 1, 1) + timedelta(days=rng.randrange(700)),
                         [True, False, None][i % 3]))
        execute_values(cur, "INSERT INTO sales.invoices (region_code, customer_id, amount, issued_on, paid)"
                            " VALUES %s", rows)

        # advance every used sequence beyond max(id): a restore must carry the positions, not max(id)
        cur.execute(
            """SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'S' AND n.nspname IN ('public', 'sales') AND c.relname <> 'never_called_seq'
               ORDER BY 1""")
        for (seq,) in cur.fetchall():
            for _ in range(3 + rng.randrange(3)):
                cur.execute("SELECT nextval(%s::regclass)", (seq,))
        cur.execute("RESET TIME ZONE")
    conn.commit()


# --- inspecting --------------------------------------------------------------------------------------------
USER_SCHEMA_FILTER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


def user_tables(url_or_conn: Any) -> list[str]:
    """Qualified names (quote_ident style) of every ordinary and partitioned table, sorted."""
    with _read_only(url_or_conn) as cur:
        cur.execute(f"""
            SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA_FILTER}
            ORDER BY 1""")
        return [name for (name,) in cur.fetchall()]


def table_row_counts(url_or_conn: Any) -> dict[str, int]:
    """{qualified table: count(*) FROM ONLY table}: each row counted once (a partitioned parent is 0)."""
    counts: dict[str, int] = {}
    with _read_only(url_or_conn) as cur:
        for name in user_tables(cur.connection):
            cur.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.SQL(name)))
            counts[name] = cur.fetchone()[0]
    return counts


def total_rows(url_or_conn: Any) -> int:
    """Every row of every user table, counted once."""
    return sum(table_row_counts(url_or_conn).values())


def database_state(url_or_conn: Any) -> dict[str, Any]:
    """Contents of the database, comparable with ==.

    {"tables": {qualified: {"rows": count(*), "md5": md5 of the rows' text, sorted}},
     "sequences": {qualified: {"last_value": ..., "is_called": ...}}}
    The hash is computed by the server (rows never come to Python). A partitioned parent is
    read through the parent (all its partitions), and each partition is also listed itself.
    """
    state: dict[str, Any] = {"tables": {}, "sequences": {}}
    with _read_only(url_or_conn) as cur:
        for name in user_tables(cur.connection):
            cur.execute(sql.SQL("SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM {} AS t")
                        .format(sql.SQL(name)))
            count, digest = cur.fetchone()
            state["tables"][name] = {"rows": count, "md5": digest}
        cur.execute(f"""
            SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'S' AND {USER_SCHEMA_FILTER}
            ORDER BY 1""")
        for (name,) in cur.fetchall():
            cur.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name)))
            last_value, is_called = cur.fetchone()
            state["sequences"][name] = {"last_value": last_value, "is_called": is_called}
    return state


def _rows(cur, query: str, params: Any = None) -> list[tuple]:
    cur.execute(query, params)
    return [tuple(row) for row in cur.fetchall()]


def schema_fingerprint(url_or_conn: Any) -> dict[str, Any]:
    """Catalog description of every user schema object, comparable with ==.

    Owners, privileges and OIDs are left out (a restore into a database owned by another
    role must still compare equal); everything is sorted by name.
    """
    relname = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
    with _read_only(url_or_conn) as cur:
        fp: dict[str, Any] = {}
        fp["schemas"] = [r[0] for r in _rows(cur, f"""
            SELECT n.nspname FROM pg_namespace n WHERE {USER_SCHEMA_FILTER} ORDER BY 1""")]

        relations: dict[str, Any] = {}
        for name, kind, persistence in _rows(cur, f"""
                SELECT {relname}, c.relkind::text, c.relpersistence::text
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA_FILTER} ORDER BY 1"""):
            relations[name] = {"kind": kind, "persistence": persistence, "columns": []}
        for name, column, coltype, notnull, default, identity, generated, collation in _rows(cur, f"""
                SELECT {relname}, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                       pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
                       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                            THEN a.attcollation::regcollation::text END
                FROM pg_attribute a
                JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_type t ON t.oid = a.atttypid
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA_FILTER}
                  AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY 1, a.attnum"""):
            relations[name]["columns"].append({"name": column, "type": coltype, "not_null": notnull,
                                               "default": default, "identity": identity, "generated": generated,
                                               "collation": collation})
        fp["relations"] = relations

        fp["partitions"] = {r[0]: {"parent": r[1], "bound": r[2]} for r in _rows(cur, f"""
            SELECT {relname}, i.inhparent::regclass::text, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_inherits i ON i.inhrelid = c.oid
            WHERE c.relispartition AND c.relkind IN ('r', 'p') AND {USER_SCHEMA_FILTER} ORDER BY 1""")}
        fp["partition_keys"] = {r[0]: r[1] for r in _rows(cur, f"""
            SELECT {relname}, pg_get_partkeydef(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'p' AND {USER_SCHEMA_FILTER} ORDER BY 1""")}

        fp["constraints"] = sorted(_rows(cur, f"""
            SELECT {relname}, co.conname, co.contype::text, pg_get_constraintdef(co.oid, true),
                   co.condeferrable, co.condeferred, co.convalidated
            FROM pg_constraint co
            JOIN pg_class c ON c.oid = co.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE {USER_SCHEMA_FILTER}"""))
        fp["indexes"] = sorted(_rows(cur, """
            SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%'"""))
        fp["views"] = {r[0]: r[1] for r in _rows(cur, f"""
            SELECT {relname}, pg_get_viewdef(c.oid, true)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA_FILTER} ORDER BY 1""")}
        fp["functions"] = {f"{r[0]}({r[1]})": r[2] for r in _rows(cur, f"""
            SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname),
                   pg_get_function_identity_arguments(p.oid),
                   CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE p.prokind::text END
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE {USER_SCHEMA_FILTER} ORDER BY 1, 2""")}
        fp["triggers"] = sorted(_rows(cur, f"""
            SELECT {relname}, t.tgname, pg_get_triggerdef(t.oid, true), t.tgenabled::text
            FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND {USER_SCHEMA_FILTER}"""))
        enums: dict[str, list[str]] = {}
        for name, label in _rows(cur, f"""
                SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), e.enumlabel
                FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE {USER_SCHEMA_FILTER} ORDER BY 1, e.enumsortorder"""):
            enums.setdefault(name, []).append(label)
        fp["enums"] = enums
        domains: dict[str, Any] = {}
        for name, base, notnull, default in _rows(cur, f"""
                SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname),
                       format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault
                FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE t.typtype = 'd' AND {USER_SCHEMA_FILTER} ORDER BY 1"""):
            domains[name] = {"base": base, "not_null": notnull, "default": default, "checks": []}
        for name, conname, definition in _rows(cur, f"""
                SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), co.conname,
                       pg_get_constraintdef(co.oid, true)
                FROM pg_constraint co JOIN pg_type t ON t.oid = co.contypid
                JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE {USER_SCHEMA_FILTER} ORDER BY 1, 2"""):
            domains[name]["checks"].append((conname, definition))
        fp["domains"] = domains
        fp["sequences"] = {f"{r[0]}.{r[1]}": r[2:] for r in _rows(cur, """
            SELECT quote_ident(schemaname), quote_ident(sequencename), data_type::text, start_value, min_value,
                   max_value, increment_by, cycle, cache_size
            FROM pg_sequences
            WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%'
            ORDER BY 1, 2""")}
        fp["sequence_owners"] = sorted(_rows(cur, f"""
            SELECT {relname}, d.refobjid::regclass::text, a.attname, d.deptype::text
            FROM pg_depend d
            JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE c.relkind = 'S' AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
              AND {USER_SCHEMA_FILTER}"""))
        fp["comments"] = sorted(_rows(cur, f"""
            SELECT d.classoid::regclass::text,
                   CASE d.classoid
                     WHEN 'pg_class'::regclass THEN (SELECT {relname} FROM pg_class c
                                                     JOIN pg_namespace n ON n.oid = c.relnamespace
                                                     WHERE c.oid = d.objoid)
                     WHEN 'pg_namespace'::regclass THEN (SELECT nspname FROM pg_namespace WHERE oid = d.objoid)
                     WHEN 'pg_proc'::regclass THEN d.objoid::regprocedure::text
                     ELSE d.objoid::text
                   END,
                   d.objsubid, d.description
            FROM pg_description d
            WHERE d.classoid IN ('pg_class'::regclass, 'pg_namespace'::regclass, 'pg_proc'::regclass)
              AND NOT EXISTS (SELECT 1 FROM pg_namespace s WHERE s.oid = d.objoid
                              AND d.classoid = 'pg_namespace'::regclass AND s.nspname = 'public')
              AND (d.classoid <> 'pg_class'::regclass OR EXISTS (
                   SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.oid = d.objoid AND {USER_SCHEMA_FILTER}))
              AND (d.classoid <> 'pg_proc'::regclass OR EXISTS (
                   SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE p.oid = d.objoid AND {USER_SCHEMA_FILTER}))
              AND (d.classoid <> 'pg_namespace'::regclass OR EXISTS (
                   SELECT 1 FROM pg_namespace n WHERE n.oid = d.objoid AND {USER_SCHEMA_FILTER}))"""))
    return fp
