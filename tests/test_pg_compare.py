"""The catalog zoo and its comparer, proven against real pg_dump and psql.

1. Every kind of object the zoo promises is in it (catalog rows counted per kind).
2. A plain `pg_dump --no-owner --no-privileges` of the zoo restored with
   `psql -X -v ON_ERROR_STOP=1 --single-transaction` compares equal: `compare(A, B) == []`.
3. The comparer is not blind: for each kind, B damaged in one way makes it report that kind,
   and only the kinds that damage really touches.
4. What pg_dump itself does not carry is pinned down exactly (`build_pg_dump_gaps`, the
   database-level objects, large objects inside --single-transaction).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from tests import catalog_zoo, pg_compare
from tests.richdb_pg import connect
from tests.servers import ThrowawayPostgres

PG_DUMP, PSQL = shutil.which("pg_dump"), shutil.which("psql")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (PG_DUMP and PSQL), reason="pg_dump/psql not installed")]


# --- client tools against the throwaway server --------------------------------------------------------------
class Tools:
    """pg_dump and psql as the superuser, the password in a 0600 PGPASSFILE (never in argv or env)."""

    def __init__(self, server: ThrowawayPostgres, folder: Path) -> None:
        self.server = server
        passfile = folder / "pgpass"
        escaped = server.password.replace("\\", "\\\\").replace(":", "\\:")
        passfile.write_text(f"{server.host}:{server.port}:*:{server.superuser}:{escaped}\n")
        passfile.chmod(0o600)
        self.env = {**os.environ, "PGPASSFILE": str(passfile)}
        self.env.pop("PGPASSWORD", None)
        self.common = ["-h", server.host, "-p", str(server.port), "-U", server.superuser, "--no-password"]

    def dump(self, dbname: str, path: Path) -> None:
        subprocess.run([PG_DUMP, *self.common, "--no-owner", "--no-privileges", "-f", str(path), dbname],
                       check=True, env=self.env, capture_output=True)

    def restore(self, path: Path, dbname: str) -> subprocess.CompletedProcess:
        return subprocess.run([PSQL, "-X", "-q", *self.common, "-v", "ON_ERROR_STOP=1", "--single-transaction",
                               "-f", str(path), "-d", dbname], env=self.env, capture_output=True, text=True)


@dataclass
class Zoo:
    server: ThrowawayPostgres
    tools: Tools
    folder: Path
    a: str  # database names
    b: str
    features: catalog_zoo.Features
    state_a: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return self.server.url(name)

    def new_database(self, prefix: str, template: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = self.server.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
            cur.execute(statement)
        conn.close()
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        self.server.drop_database(name)
        self.created.remove(name)

    def run(self, name: str, statements: tuple[str, ...]) -> None:
        conn = connect(self.url(name))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def round_trip(self, source: str, prefix: str) -> str:
        """pg_dump `source` and restore it into a fresh database; its name."""
        path = self.folder / f"{source}.sql"
        self.tools.dump(source, path)
        target = self.new_database(prefix)
        result = self.tools.restore(path, target)
        assert result.returncode == 0, result.stderr
        return target


@pytest.fixture(scope="module")
def zoo(pg_server: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    """Zoo A built once, and B = A through pg_dump and psql; damage cases clone B (CREATE DATABASE TEMPLATE)."""
    folder = tmp_path_factory.mktemp("zoo")
    holder = Zoo(server=pg_server, tools=Tools(pg_server, folder), folder=folder, a="", b="",
                 features=catalog_zoo.zoo_features(pg_server.url()), state_a={})
    try:
        holder.a = holder.new_database("zoo_a")
        started = time.monotonic()
        catalog_zoo.build_zoo(holder.url(holder.a), seed=7, rows=20)
        holder.timings["build_zoo"] = time.monotonic() - started
        started = time.monotonic()
        holder.b = holder.round_trip(holder.a, "zoo_b")
        holder.timings["pg_dump + psql"] = time.monotonic() - started
        started = time.monotonic()
        holder.state_a = pg_compare.catalog_state(holder.url(holder.a))
        holder.timings["catalog_state"] = time.monotonic() - started
        yield holder
    finally:
        for name in list(holder.created):
            holder.drop(name)


# --- 1. the zoo holds every kind ----------------------------------------------------------------------------------
# name -> (query counting catalog rows of that kind in the zoo, what it needs from the server or None)
USER = "n.nspname IN ('zoo', 'ledger')"
REL_IN_ZOO = f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER}"
ZOO_KINDS: dict[str, tuple[str, str | None]] = {
    "schemas": ("SELECT count(*) FROM pg_namespace WHERE nspname IN ('zoo', 'ledger', 'ext')", None),
    "extensions": ("SELECT count(*) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                   " WHERE n.nspname = 'ext'", None),
    "libc collations": ("SELECT count(*) FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace"
                        f" WHERE {USER} AND co.collprovider = 'c'", None),
    "ICU collations (one nondeterministic)": (
        "SELECT count(*) FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace"
        f" WHERE {USER} AND co.collprovider = 'i' AND NOT co.collisdeterministic", "icu"),
    "enum with a fractional sort order": ("SELECT count(*) FROM pg_enum WHERE enumsortorder <> round(enumsortorder)"
                                          " AND enumtypid = 'zoo.mood'::regtype", None),
    "empty enum": ("SELECT count(*) FROM pg_type WHERE oid = 'ledger.empty_enum'::regtype"
                   " AND NOT EXISTS (SELECT 1 FROM pg_enum WHERE enumtypid = 'ledger.empty_enum'::regtype)", None),
    "composite types": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'c'", None),
    "range with subtype_diff and multirange": ("SELECT count(*) FROM pg_range WHERE rngsubdiff <> 0"
                                               " AND rngtypid = 'zoo.float8range'::regtype", None),
    "range with collation": ("SELECT count(*) FROM pg_range WHERE rngcollation <> 0"
                             " AND rngtypid = 'zoo.textrange_c'::regtype", None),
    "domains with named checks": ("SELECT count(*) FROM pg_constraint co JOIN pg_type t ON t.oid = co.contypid"
                                  " JOIN pg_namespace n ON n.oid = t.typnamespace"
                                  f" WHERE {USER} AND co.contype = 'c'", None),
    "NOT VALID domain constraint": ("SELECT count(*) FROM pg_constraint WHERE contypid <> 0 AND NOT convalidated",
                                    None),
    "domain over composite and over array": ("SELECT count(*) FROM pg_type WHERE typtype = 'd' AND oid IN"
                                             " ('zoo.valid_address'::regtype, 'zoo.small_ints'::regtype)", None),
    "typed table": (f"SELECT count(*) {REL_IN_ZOO} AND c.reloftype <> 0", None),
    "identity ALWAYS": ("SELECT count(*) FROM pg_attribute WHERE attidentity = 'a'"
                        " AND attrelid = 'zoo.tickets'::regclass", None),
    "identity BY DEFAULT": ("SELECT count(*) FROM pg_attribute WHERE attidentity = 'd'"
                            " AND attrelid IN ('zoo.tickets'::regclass, 'zoo.all_types'::regclass)", None),
    "identity with CYCLE and CACHE": ("SELECT count(*) FROM pg_sequence WHERE seqcycle AND seqcache > 1"
                                      " AND seqrelid = pg_get_serial_sequence('zoo.tickets', 'id')::regclass", None),
    "generated columns": ("SELECT count(*) FROM pg_attribute WHERE attgenerated = 's'"
                          " AND attrelid = 'zoo.all_types'::regclass", None),
    "serial columns": ("SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid WHERE c.relkind = 'S'"
                       " AND d.deptype = 'a' AND d.refobjid = 'zoo.tickets'::regclass", None),
    "unlogged sequence": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'S' AND c.relpersistence = 'u'", None),
    "sequence never called / reset uncalled": (
        "SELECT count(*) FROM ledger.reset_uncalled WHERE NOT is_called AND last_value = 500", None),
    "aggregate with sfunc/finalfunc/initcond": (
        "SELECT count(*) FROM pg_aggregate WHERE aggfinalfn <> 0 AND agginitval IS NOT NULL"
        " AND aggfnoid = 'zoo.root_sum_sq'::regproc", None),
    "parallel aggregate (combine/serial/deserial)": (
        "SELECT count(*) FROM pg_aggregate WHERE aggcombinefn <> 0 AND aggserialfn <> 0 AND aggdeserialfn <> 0"
        " AND aggfnoid = 'zoo.par_avg'::regproc", None),
    "moving aggregate": ("SELECT count(*) FROM pg_aggregate WHERE aggmtransfn <> 0 AND aggminvtransfn <> 0"
                         " AND aggfnoid = 'zoo.moving_sum'::regproc", None),
    "ordered-set aggregate": ("SELECT count(*) FROM pg_aggregate WHERE aggkind = 'o'"
                              " AND aggfnoid = 'zoo.my_percentile'::regproc", None),
    "hypothetical-set aggregate": ("SELECT count(*) FROM pg_aggregate WHERE aggkind = 'h'"
                                   " AND aggfnoid = 'zoo.my_rank'::regproc", None),
    "view using a custom aggregate": ("SELECT count(*) FROM pg_depend WHERE classid = 'pg_rewrite'::regclass"
                                      " AND refobjid = 'zoo.root_sum_sq'::regproc", None),
    "default calling a user function": ("SELECT count(*) FROM pg_attrdef WHERE adrelid = 'zoo.tickets'::regclass"
                                        " AND pg_get_expr(adbin, adrelid) LIKE '%zoo.next_code()%'", None),
    "function taking a composite": ("SELECT count(*) FROM pg_proc WHERE 'zoo.address'::regtype = ANY(proargtypes)",
                                    None),
    "function returning a table row type": (
        "SELECT count(*) FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype"
        " WHERE t.typrelid <> 0 AND p.proname = 'accounts_of'", None),
    "SQL-standard (BEGIN ATOMIC) function": ("SELECT count(*) FROM pg_proc WHERE prosqlbody IS NOT NULL", None),
    "procedures": ("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                   f" WHERE {USER} AND p.prokind = 'p'", None),
    "binary operators": ("SELECT count(*) FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace"
                         f" WHERE {USER} AND o.oprkind = 'b' AND o.oprcanhash", None),
    "prefix operator": ("SELECT count(*) FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace"
                        f" WHERE {USER} AND o.oprkind = 'l'", None),
    "operator classes": ("SELECT count(*) FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace"
                         f" WHERE {USER}", None),
    "operator family with loose members": (
        "SELECT count(*) FROM pg_amop WHERE amopfamily = (SELECT oid FROM pg_opfamily WHERE opfname = 'loose_family')"
        " AND amoplefttype <> amoprighttype", None),
    "casts": ("SELECT count(*) FROM pg_cast WHERE castsource IN ('ledger.money_amount'::regtype,"
              " 'zoo.address'::regtype)", None),
    "text search configuration and dictionary": (
        "SELECT (SELECT count(*) FROM pg_ts_config WHERE cfgname = 'zoo_english')"
        " * (SELECT count(*) FROM pg_ts_dict WHERE dictname = 'english_stem_keep')", None),
    "conversion": ("SELECT count(*) FROM pg_conversion WHERE conname = 'utf8_to_latin1_zoo'", None),
    "foreign data wrapper, servers, user mappings": (
        "SELECT (SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'zoo_dummy_fdw')"
        " * (SELECT count(*) FROM pg_foreign_server) * (SELECT count(*) FROM pg_user_mapping)", "postgres_fdw"),
    "foreign tables": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'f'", "file_fdw"),
    "exclusion constraints (one deferrable)": (
        "SELECT count(*) FROM pg_constraint WHERE contype = 'x' AND condeferrable", None),
    "exclusion constraint with btree_gist": (
        "SELECT count(*) FROM pg_constraint WHERE conname = 'reservations_no_overlap'"
        " AND pg_get_constraintdef(oid) LIKE '%room WITH =%'", "btree_gist"),
    "plain inheritance (multi-level, multiple parents)": (
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE NOT c.relispartition AND i.inhrelid = 'ledger.amphibians'::regclass", None),
    "NO INHERIT check": ("SELECT count(*) FROM pg_constraint WHERE connoinherit AND contype = 'c'", None),
    "NOT VALID check with violating rows": (
        "SELECT count(*) FROM pg_constraint WHERE conname = 'orphans_qty_check' AND NOT convalidated"
        " AND EXISTS (SELECT 1 FROM zoo.orphans WHERE qty < 0)", None),
    "NOT VALID foreign key with violating rows": (
        "SELECT count(*) FROM pg_constraint WHERE conname = 'orphans_parent_fk' AND NOT convalidated"
        " AND EXISTS (SELECT 1 FROM zoo.orphans o WHERE NOT EXISTS"
        " (SELECT 1 FROM zoo.parents p WHERE p.a = o.pa AND p.b = o.pb))", None),
    "range partitioning": ("SELECT count(*) FROM pg_partitioned_table WHERE partstrat = 'r'", None),
    "list partitioning with an expression key": (
        "SELECT count(*) FROM pg_partitioned_table WHERE partstrat = 'l' AND partexprs IS NOT NULL", None),
    "hash partitioning": ("SELECT count(*) FROM pg_partitioned_table WHERE partstrat = 'h'", None),
    "partition with its own column order": (
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'ledger.measurements_2024'::regclass"
        " AND attname = 'unit' AND attnum = 1", None),
    "default partitions": ("SELECT count(*) FROM pg_partitioned_table WHERE partdefid <> 0", None),
    "sub-partitioning": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'p' AND c.relispartition", None),
    "unlogged partition": (f"SELECT count(*) {REL_IN_ZOO} AND c.relispartition AND c.relpersistence = 'u'", None),
    "row-level security enabled and forced": (f"SELECT count(*) {REL_IN_ZOO} AND c.relforcerowsecurity", None),
    "permissive and restrictive policies": (
        "SELECT count(DISTINCT polpermissive) - 1 FROM pg_policy WHERE polrelid = 'zoo.accounts'::regclass", None),
    "policies for ALL, SELECT, INSERT, UPDATE, DELETE": (
        "SELECT count(DISTINCT polcmd) - 4 FROM pg_policy WHERE polrelid = 'zoo.accounts'::regclass", None),
    "policy with USING and WITH CHECK for a role": (
        "SELECT count(*) FROM pg_policy WHERE polqual IS NOT NULL AND polwithcheck IS NOT NULL"
        " AND polroles <> '{0}'", None),
    "rule DO INSTEAD on a view": ("SELECT count(*) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class"
                                  " WHERE c.relkind = 'v' AND r.is_instead AND r.rulename <> '_RETURN'", None),
    "rule DO ALSO on a table": ("SELECT count(*) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class"
                                " WHERE c.relkind = 'r' AND NOT r.is_instead", None),
    "disabled rule": ("SELECT count(*) FROM pg_rewrite WHERE ev_enabled = 'D'", None),
    "statistics objects (with kinds and an expression)": (
        "SELECT count(*) FROM pg_statistic_ext WHERE stxexprs IS NOT NULL OR array_length(stxkind, 1) > 1", None),
    "statistics object with a target": ("SELECT count(*) FROM pg_statistic_ext WHERE stxstattarget >= 0", None),
    "table storage parameters": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'r' AND c.reloptions IS NOT NULL",
                                 None),
    "toast storage parameters": ("SELECT count(*) FROM pg_class WHERE reloptions IS NOT NULL AND oid ="
                                 " (SELECT reltoastrelid FROM pg_class WHERE oid = 'zoo.tuned'::regclass)", None),
    "column SET STORAGE": ("SELECT count(DISTINCT attstorage) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                           " WHERE a.attrelid = 'zoo.tuned'::regclass AND a.attstorage <> t.typstorage", None),
    "column SET STATISTICS": ("SELECT count(*) FROM pg_attribute WHERE attstattarget > 0"
                              " AND attrelid = 'zoo.tuned'::regclass", None),
    "column SET COMPRESSION": ("SELECT count(*) FROM pg_attribute WHERE attcompression <> ''"
                               " AND attrelid = 'zoo.tuned'::regclass", None),
    "column lz4 compression": ("SELECT count(*) FROM pg_attribute WHERE attcompression = 'l'", "lz4"),
    "column attribute options": ("SELECT count(*) FROM pg_attribute WHERE attrelid = 'zoo.tuned'::regclass"
                                 " AND array_to_string(attoptions, ',') LIKE '%n_distinct=%'", None),
    "large objects with data": ("SELECT count(*) FROM pg_largeobject_metadata m"
                                " WHERE length(lo_get(m.oid)) > 0", None),
    "materialized view with indexes": (
        f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'm' AND c.relhasindex", None),
    "materialized view WITH NO DATA": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'm' AND NOT c.relispopulated",
                                       None),
    "triggers enabled, disabled, replica, always": (
        "SELECT count(DISTINCT tgenabled) - 3 FROM pg_trigger WHERE NOT tgisinternal", None),
    "statement trigger with transition table": ("SELECT count(*) FROM pg_trigger WHERE tgnewtable IS NOT NULL",
                                                None),
    "constraint trigger": ("SELECT count(*) FROM pg_trigger WHERE tgconstraint <> 0 AND NOT tgisinternal", None),
    "INSTEAD OF trigger on a view": ("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                                     " WHERE c.relkind = 'v'", None),
    "trigger on a partitioned table, a clone disabled": (
        "SELECT count(*) FROM pg_trigger WHERE tgparentid <> 0 AND tgenabled = 'D'", None),
    "views with check option and security_barrier": (
        f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'v'"
        " AND 'check_option=cascaded' = ANY(c.reloptions) AND 'security_barrier=true' = ANY(c.reloptions)", None),
    "LOCAL check option, security_invoker, recursive view": (
        "SELECT (SELECT count(*) FROM pg_class WHERE 'check_option=local' = ANY(reloptions))"
        " * (SELECT count(*) FROM pg_class WHERE 'security_invoker=true' = ANY(reloptions))"
        " * (SELECT count(*) FROM pg_views WHERE viewname = 'countdown_view')", None),
    "unlogged table": (f"SELECT count(*) {REL_IN_ZOO} AND c.relkind = 'r' AND c.relpersistence = 'u'", None),
    "CLUSTER ON": ("SELECT count(*) FROM pg_index WHERE indisclustered", None),
    "replica identity FULL, USING INDEX, NOTHING": (
        f"SELECT count(DISTINCT c.relreplident) - 2 {REL_IN_ZOO} AND c.relreplident <> 'd'", None),
    "foreign keys with ON DELETE/UPDATE actions and MATCH FULL": (
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND (confdeltype <> 'a' OR confupdtype <> 'a')"
        " AND confmatchtype = 'f'", None),
    "ON DELETE SET NULL (column list)": ("SELECT count(*) FROM pg_constraint WHERE confdelsetcols IS NOT NULL", None),
    "deferrable foreign key cycle": (
        "SELECT count(*) FROM pg_constraint a JOIN pg_constraint b ON a.conrelid = b.confrelid"
        " AND a.confrelid = b.conrelid WHERE a.contype = 'f' AND b.contype = 'f' AND a.condeferrable"
        " AND a.conrelid <> a.confrelid", None),
    "UNIQUE NULLS NOT DISTINCT": ("SELECT count(*) FROM pg_index WHERE indnullsnotdistinct", None),
    "btree index with INCLUDE": ("SELECT count(*) FROM pg_index WHERE indnkeyatts < indnatts", None),
    "partial index": ("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                      f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER} AND i.indpred IS NOT NULL", None),
    "expression index with a statistics target": (
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'zoo.all_types_expr_idx'::regclass"
        " AND attstattarget > 0", None),
    "DESC NULLS LAST and ASC NULLS FIRST index": (
        "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%DESC NULLS LAST%NULLS FIRST%'", None),
    "index with opclass parameters": ("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%siglen=%'", None),
    "index using a custom opclass": ("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%zoo.int4_reverse_ops%'",
                                     None),
    "indexes of access method hash": ("SELECT count(*) FROM pg_class WHERE relam = (SELECT oid FROM pg_am"
                                      " WHERE amname = 'hash') AND relnamespace = 'zoo'::regnamespace", None),
    "indexes of access method gist": ("SELECT count(*) FROM pg_class WHERE relam = (SELECT oid FROM pg_am"
                                      " WHERE amname = 'gist') AND relnamespace = 'zoo'::regnamespace", None),
    "indexes of access method gin": ("SELECT count(*) FROM pg_class WHERE relam = (SELECT oid FROM pg_am"
                                     " WHERE amname = 'gin') AND relnamespace = 'zoo'::regnamespace", None),
    "indexes of access method brin": ("SELECT count(*) FROM pg_class WHERE relam = (SELECT oid FROM pg_am"
                                      " WHERE amname = 'brin') AND relnamespace = 'zoo'::regnamespace", None),
    "indexes of access method spgist": ("SELECT count(*) FROM pg_class WHERE relam = (SELECT oid FROM pg_am"
                                        " WHERE amname = 'spgist') AND relnamespace = 'zoo'::regnamespace", None),
    "indexes of access method bloom": ("SELECT count(*) FROM pg_class WHERE relam = (SELECT oid FROM pg_am"
                                       " WHERE amname = 'bloom') AND relnamespace = 'zoo'::regnamespace", "bloom"),
    "pg_trgm and hstore indexes": ("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'", "pg_trgm"),
    "float8 array holding -0": ("SELECT count(*) FROM zoo.all_types WHERE c_float8_arr::text LIKE '%-0%'", None),
    "numeric NaN and ±Infinity": ("SELECT count(DISTINCT c_numeric) FROM zoo.all_types"
                                  " WHERE c_numeric IN ('NaN', 'Infinity', '-Infinity')", None),
    "json with duplicate keys and whitespace": (
        "SELECT count(*) FROM zoo.all_types WHERE c_json::text LIKE '%\"a\"%\"a\"%' AND c_json::text LIKE '%  %'",
        None),
    "BC and infinite dates/timestamps": (
        "SELECT count(*) FROM zoo.all_types WHERE c_date::text LIKE '% BC' OR c_timestamp = 'infinity'", None),
    "multi-dimensional arrays with NULL elements": (
        "SELECT count(*) FROM zoo.all_types WHERE array_ndims(c_int_arr) = 2 AND c_int_arr::text LIKE '%NULL%'", None),
    "array with a custom lower bound": ("SELECT count(*) FROM zoo.all_types WHERE array_lower(c_int_arr, 1) = 0",
                                        None),
}


def _need(zoo: Zoo, need: str | None) -> None:
    if need == "icu" and not zoo.features.icu:
        pytest.skip("server built without ICU")
    if need == "lz4" and not zoo.features.lz4:
        pytest.skip("server built without lz4")
    if need not in (None, "icu", "lz4") and not zoo.features.has(need):
        pytest.skip(f"extension {need} not installed on this server")


@pytest.mark.parametrize("kind", list(ZOO_KINDS))
def test_zoo_holds_every_kind(zoo: Zoo, kind: str) -> None:
    query, need = ZOO_KINDS[kind]
    _need(zoo, need)
    conn = connect(zoo.url(zoo.a))
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            assert cur.fetchone()[0] > 0, f"the zoo has no {kind}"
    finally:
        conn.close()


REQUIRED_COMMENTED = {
    "schema", "table", "table column", "view", "view column", "materialized view", "materialized view column",
    "index", "sequence", "function", "procedure", "aggregate", "type", "composite type column", "domain",
    "domain constraint", "table constraint", "trigger", "rule", "policy", "operator", "operator class",
    "operator family", "collation", "statistics object", "cast", "text search configuration",
    "text search dictionary", "conversion", "foreign-data wrapper", "server",
}


def test_zoo_comments_every_commentable_kind(zoo: Zoo) -> None:
    """Comments keys are "<pg_identify_object type> <identity>"; large objects' comments sit with their content."""
    keys = zoo.state_a["comments"]
    missing = sorted(kind for kind in REQUIRED_COMMENTED if not any(key.startswith(kind + " ") for key in keys))
    assert missing == []
    assert any(entry["comments"] != [None] for entry in zoo.state_a["large_objects"].values())
    if zoo.features.has("hstore"):
        assert "extension hstore" in zoo.state_a["comments"]
    if zoo.features.has("file_fdw"):
        assert "foreign table zoo.null_device" in zoo.state_a["comments"]


def test_every_comparer_kind_is_populated_by_the_zoo(zoo: Zoo) -> None:
    """Each kind the comparer reads has rows in the zoo, except the database-level ones (built separately)."""
    database_level = {"event_triggers", "publications", "access_methods", "languages", "transforms", "database"}
    empty = sorted(kind for kind, found in zoo.state_a.items() if not found and kind not in database_level)
    assert empty == []


def test_zoo_is_deterministic_from_its_seed(zoo: Zoo) -> None:
    again = zoo.new_database("zoo_again")
    try:
        catalog_zoo.build_zoo(zoo.url(again), seed=7, rows=20)
        assert pg_compare.diff_states(zoo.state_a, pg_compare.catalog_state(zoo.url(again))) == []
        other = zoo.new_database("zoo_other_seed")
        catalog_zoo.build_zoo(zoo.url(other), seed=8, rows=20)
        differences = pg_compare.diff_states(zoo.state_a, pg_compare.catalog_state(zoo.url(other)))
        assert pg_compare.kinds_of(differences) <= {"table_data", "large_objects"}, differences
        assert "table_data" in pg_compare.kinds_of(differences)
        zoo.drop(other)
    finally:
        zoo.drop(again)


def test_zoo_skips_are_named(zoo: Zoo) -> None:
    """On a server lacking an extension, ICU or lz4, the zoo says what it left out (here: print it)."""
    notes = catalog_zoo.zoo_skips(zoo.features)
    print("zoo skips on this server:", notes or "none")
    assert all(isinstance(note, str) and ":" in note for note in notes)


# --- 2. pg_dump round trip compares equal -------------------------------------------------------------------------
def test_pg_dump_round_trip_compares_equal(zoo: Zoo) -> None:
    print("timings (s):", {name: round(value, 2) for name, value in zoo.timings.items()})
    assert pg_compare.compare(zoo.url(zoo.a), zoo.url(zoo.b)) == []


def test_compare_is_symmetric_and_names_sides(zoo: Zoo) -> None:
    name = zoo.new_database("zoo_sym", template=zoo.b)
    try:
        zoo.run(name, ("CREATE SCHEMA only_in_b",))
        assert pg_compare.compare(zoo.url(zoo.a), zoo.url(name)) == ["schemas: only_in_b: only in B: 'schema'"]
        assert pg_compare.compare(zoo.url(name), zoo.url(zoo.a)) == ["schemas: only_in_b: only in A: 'schema'"]
    finally:
        zoo.drop(name)


# --- 3. one damage per kind ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    """One change to B. Run in a transaction that is read and rolled back, or, when it moves a sequence
    (setval/nextval ignore rollbacks), in a clone of B made with CREATE DATABASE ... TEMPLATE."""

    kind: str
    what: str
    statements: tuple[str, ...]
    also: frozenset[str] = frozenset()  # other kinds the same change necessarily touches
    need: str | None = None
    clone: bool = False


def damage(kind: str, what: str, *statements: str, also: tuple[str, ...] = (), need: str | None = None,
           clone: bool = False) -> Damage:
    return Damage(kind, what, statements, frozenset(also), need, clone)


LO_WITH_COMMENT = "(SELECT oid FROM pg_largeobject_metadata WHERE obj_description(oid, 'pg_largeobject') IS NOT NULL)"
DAMAGES: tuple[Damage, ...] = (
    # comments
    damage("comments", "trigger comment dropped", "COMMENT ON TRIGGER prices_touch ON zoo.prices IS NULL"),
    damage("comments", "column comment changed", "COMMENT ON COLUMN zoo.all_types.c_float8 IS 'changed'"),
    damage("comments", "policy comment dropped", "COMMENT ON POLICY accounts_tenant ON zoo.accounts IS NULL"),
    damage("comments", "opclass comment changed",
           "COMMENT ON OPERATOR CLASS zoo.int4_reverse_ops USING btree IS 'reversed!'"),
    damage("comments", "domain constraint comment dropped",
           "COMMENT ON CONSTRAINT posint_positive ON DOMAIN zoo.posint IS NULL"),
    damage("comments", "composite attribute comment added", "COMMENT ON COLUMN zoo.contact.name IS 'new'"),
    damage("comments", "extension comment changed", "COMMENT ON EXTENSION hstore IS 'other'", need="hstore"),
    damage("comments", "schema comment changed", "COMMENT ON SCHEMA ledger IS 'second schema '"),
    # constraints
    damage("constraints", "NOT VALID check validated",
           "ALTER TABLE zoo.children VALIDATE CONSTRAINT children_qty_positive"),
    damage("constraints", "NOT VALID foreign key validated after removing its violator",
           "DELETE FROM zoo.orphans WHERE id = -1", "ALTER TABLE zoo.orphans VALIDATE CONSTRAINT orphans_parent_fk",
           also=("table_data",)),
    damage("constraints", "foreign key no longer deferrable",
           "ALTER TABLE zoo.employees ALTER CONSTRAINT employees_department_fk NOT DEFERRABLE"),
    damage("constraints", "foreign key action changed",
           "ALTER TABLE zoo.employees DROP CONSTRAINT employees_mentor_fk",
           "ALTER TABLE zoo.employees ADD CONSTRAINT employees_mentor_fk FOREIGN KEY (mentor_id)"
           " REFERENCES zoo.employees (id) ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE"),
    damage("constraints", "NULLS NOT DISTINCT lost",
           "ALTER TABLE zoo.employees DROP CONSTRAINT employees_email_tenant_key",
           "ALTER TABLE zoo.employees ADD CONSTRAINT employees_email_tenant_key UNIQUE (email, tenant)",
           also=("indexes",)),
    damage("constraints", "exclusion constraint dropped",
           "ALTER TABLE zoo.reservations DROP CONSTRAINT reservations_slot_excl", also=("indexes",)),
    damage("constraints", "NO INHERIT check made inheritable",
           "ALTER TABLE ledger.vehicles DROP CONSTRAINT vehicles_id_only_here",
           "ALTER TABLE ledger.vehicles ADD CONSTRAINT vehicles_id_only_here CHECK (id > 0)"),
    # policies and row-level security
    damage("policies", "USING changed", "ALTER POLICY accounts_delete ON zoo.accounts USING (false)"),
    damage("policies", "roles changed", "ALTER POLICY accounts_update ON zoo.accounts TO PUBLIC"),
    damage("policies", "permissive made restrictive", "DROP POLICY accounts_insert ON zoo.accounts",
           "CREATE POLICY accounts_insert ON zoo.accounts AS RESTRICTIVE FOR INSERT WITH CHECK (balance >= 0)"),
    damage("relations", "row-level security disabled", "ALTER TABLE zoo.accounts DISABLE ROW LEVEL SECURITY"),
    damage("relations", "row-level security no longer forced", "ALTER TABLE zoo.accounts NO FORCE ROW LEVEL SECURITY"),
    # relations
    damage("relations", "replica identity reset", "ALTER TABLE zoo.prices REPLICA IDENTITY DEFAULT"),
    damage("relations", "fillfactor changed", "ALTER TABLE zoo.tuned SET (fillfactor = 80)"),
    damage("relations", "toast option changed", "ALTER TABLE zoo.tuned SET (toast.autovacuum_enabled = true)"),
    damage("relations", "unlogged table made logged", "ALTER TABLE zoo.scratch SET LOGGED",
           also=("indexes", "sequences")),
    damage("relations", "view check option removed", "ALTER VIEW zoo.very_rich_accounts RESET (check_option)"),
    damage("relations", "view security_barrier off", "ALTER VIEW zoo.rich_accounts SET (security_barrier = false)"),
    damage("relations", "materialized view emptied", "REFRESH MATERIALIZED VIEW zoo.ticket_totals WITH NO DATA",
           also=("table_data",)),
    damage("relations", "foreign table option changed",
           "ALTER FOREIGN TABLE zoo.null_device OPTIONS (SET format 'text')",
           need="file_fdw"),
    damage("relations", "typed table no longer typed", "ALTER TABLE zoo.address_book NOT OF", also=("columns",)),
    # columns
    damage("columns", "storage changed", "ALTER TABLE zoo.tuned ALTER COLUMN body SET STORAGE EXTENDED"),
    damage("columns", "statistics target reset", "ALTER TABLE zoo.tuned ALTER COLUMN score SET STATISTICS -1"),
    damage("columns", "compression changed", "ALTER TABLE zoo.tuned ALTER COLUMN body SET COMPRESSION pglz",
           need="lz4"),
    damage("columns", "attribute option reset", "ALTER TABLE zoo.tuned ALTER COLUMN blob RESET (n_distinct)"),
    damage("columns", "default changed", "ALTER TABLE zoo.tickets ALTER COLUMN code SET DEFAULT 'x'"),
    damage("columns", "NOT NULL dropped", "ALTER TABLE zoo.departments ALTER COLUMN name DROP NOT NULL"),
    damage("columns", "generated column made plain",
           "ALTER TABLE zoo.all_types ALTER COLUMN c_text_len DROP EXPRESSION"),
    damage("columns", "identity ALWAYS made BY DEFAULT",
           "ALTER TABLE zoo.tickets ALTER COLUMN id SET GENERATED BY DEFAULT"),
    damage("columns", "collation changed", "ALTER TABLE zoo.scratch ALTER COLUMN v TYPE text COLLATE \"C\""),
    damage("columns", "foreign table column option dropped",
           "ALTER FOREIGN TABLE zoo.null_device ALTER COLUMN id OPTIONS (DROP force_not_null)", need="file_fdw"),
    # column order (a partition re-created with two columns swapped, attached again)
    damage("column_order", "partition columns swapped",
           "ALTER TABLE ledger.measurements DETACH PARTITION ledger.measurements_2024",
           "ALTER TABLE ledger.measurements_2024 RENAME TO measurements_2024_old",
           "CREATE TABLE ledger.measurements_2024 (peak_temp numeric(5, 2), unit text DEFAULT 'C',"
           " logdate date NOT NULL, city_id integer NOT NULL)",
           "INSERT INTO ledger.measurements_2024 SELECT peak_temp, unit, logdate, city_id"
           " FROM ledger.measurements_2024_old",
           "DROP TABLE ledger.measurements_2024_old",
           "ALTER TABLE ledger.measurements ATTACH PARTITION ledger.measurements_2024"
           " FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
           "COMMENT ON TABLE ledger.measurements_2024 IS 'attached partition with its own column order'",
           also=("table_data",)),
    damage("column_order", "column added at the end", "ALTER TABLE zoo.prices ADD COLUMN extra integer",
           also=("columns", "table_data")),
    # sequences and identity
    damage("sequences", "identity increment changed", "ALTER TABLE zoo.tickets ALTER COLUMN id SET INCREMENT BY 6"),
    damage("sequences", "position moved", "SELECT setval('zoo.invoice_seq', 5000)", clone=True),
    damage("sequences", "uncalled sequence called", "SELECT setval('ledger.reset_uncalled', 500, true)",
           clone=True),
    damage("sequences", "OWNED BY removed", "ALTER SEQUENCE zoo.invoice_seq OWNED BY NONE"),
    damage("sequences", "cycle dropped", "ALTER SEQUENCE zoo.countdown NO CYCLE"),
    # table data
    damage("table_data", "-0 in a float8 array made 0",
           "UPDATE zoo.all_types SET c_float8_arr = '{0}' WHERE c_float8_arr::text = '{-0}'"),
    damage("table_data", "float8 -0 made 0", "UPDATE zoo.all_types SET c_float8 = 0 WHERE c_float8::text = '-0'"),
    damage("table_data", "float4 NaN made Infinity",
           "UPDATE zoo.all_types SET c_float4 = 'Infinity' WHERE c_float4 = 'NaN'"),
    damage("table_data", "numeric NaN made Infinity",
           "UPDATE zoo.all_types SET c_numeric = 'Infinity' WHERE c_numeric = 'NaN'"),
    damage("table_data", "numeric scale changed",
           "UPDATE zoo.all_types SET c_numeric = 0.0 WHERE c_numeric::text = '0'"),
    damage("table_data", "json whitespace normalised",
           "UPDATE zoo.all_types SET c_json = c_json::jsonb::json WHERE c_json::text LIKE '%\"a\"%\"a\"%'"),
    damage("table_data", "text trailing space trimmed",
           "UPDATE zoo.all_types SET c_text = rtrim(c_text) WHERE c_text LIKE '% '"),
    damage("table_data", "BC date moved to AD",
           "UPDATE zoo.all_types SET c_date = '4713-01-01' WHERE c_date = '4713-01-01 BC'"),
    damage("table_data", "row deleted in a partition",
           "DELETE FROM ledger.measurements_2024 WHERE city_id = (SELECT min(city_id) FROM ledger.measurements_2024)"),
    damage("table_data", "row added to an unlogged table", "INSERT INTO zoo.scratch (v) VALUES ('new')",
           also=("sequences",), clone=True),
    damage("table_data", "row of an inheritance child changed",
           "UPDATE ledger.pickups SET bed_length = 0 WHERE bed_length::text = '-0'"),
    damage("table_data", "large text changed", "UPDATE zoo.tuned SET body = body || 'x' WHERE id = 3"),
    # indexes
    damage("indexes", "index dropped", "DROP INDEX zoo.all_types_uuid_hash_idx"),
    damage("indexes", "opclass parameter changed", "DROP INDEX zoo.all_types_tsv_gist_idx",
           "CREATE INDEX all_types_tsv_gist_idx ON zoo.all_types USING gist (c_tsvector tsvector_ops (siglen = 128))"),
    damage("indexes", "CLUSTER ON removed", "ALTER TABLE zoo.tickets SET WITHOUT CLUSTER"),
    damage("indexes", "index column statistics changed",
           "ALTER INDEX zoo.all_types_expr_idx ALTER COLUMN 2 SET STATISTICS 100"),
    damage("indexes", "index storage parameter changed",
           "ALTER INDEX zoo.all_types_id_include_idx SET (fillfactor = 70)"),
    damage("indexes", "partition index detached from its parent", "DROP INDEX ledger.measurements_temp_idx",
           "CREATE INDEX measurements_2023_peak_temp_idx ON ledger.measurements_2023 (peak_temp DESC NULLS LAST)",
           "COMMENT ON INDEX ledger.measurements_2023_peak_temp_idx IS 'partition''s clone of measurements_temp_idx'"),
    # triggers and rules
    damage("triggers", "trigger disabled", "ALTER TABLE zoo.prices DISABLE TRIGGER prices_touch"),
    damage("triggers", "replica trigger made always", "ALTER TABLE zoo.prices ENABLE ALWAYS TRIGGER prices_replica"),
    damage("triggers", "cloned partition trigger enabled",
           "ALTER TABLE ledger.measurements_old ENABLE TRIGGER measurements_touch"),
    damage("triggers", "trigger WHEN changed", "DROP TRIGGER prices_touch ON zoo.prices",
           "CREATE TRIGGER prices_touch BEFORE UPDATE OF price ON zoo.prices FOR EACH ROW EXECUTE FUNCTION zoo.touch()",
           "COMMENT ON TRIGGER prices_touch ON zoo.prices IS 'row trigger with WHEN'"),
    damage("rules", "rule dropped", "DROP RULE cheap_prices_insert ON zoo.cheap_prices"),
    damage("rules", "disabled rule enabled", "ALTER TABLE zoo.prices ENABLE RULE prices_no_delete"),
    # views, functions, aggregates, operators
    damage("views", "view definition changed",
           "CREATE OR REPLACE VIEW zoo.invoker_view WITH (security_invoker = true) AS"
           " SELECT id, zoo.address_text(c_address) || '' AS address FROM zoo.all_types"),
    damage("functions", "function body changed",
           "CREATE OR REPLACE FUNCTION zoo.is_even(n integer) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT LEAKPROOF"
           " AS $$ SELECT n % 2 <> 1 $$"),
    damage("functions", "function SET removed", "ALTER FUNCTION zoo.secured_count() RESET work_mem"),
    damage("functions", "procedure body changed",
           "CREATE OR REPLACE PROCEDURE zoo.bump(INOUT n integer, step integer DEFAULT 2) LANGUAGE plpgsql"
           " AS $$ BEGIN n := n + step; END $$"),
    damage("aggregates", "initial condition changed",
           "CREATE OR REPLACE AGGREGATE zoo.root_sum_sq(numeric) (SFUNC = zoo.sum_sq_step, STYPE = numeric,"
           " FINALFUNC = zoo.sum_sq_final, INITCOND = '1')"),
    damage("aggregates", "no longer parallel safe",
           "CREATE OR REPLACE AGGREGATE zoo.par_avg(numeric) (SFUNC = numeric_avg_accum, STYPE = internal,"
           " FINALFUNC = numeric_avg, COMBINEFUNC = numeric_avg_combine, SERIALFUNC = numeric_avg_serialize,"
           " DESERIALFUNC = numeric_avg_deserialize)"),
    damage("aggregates", "moving inverse dropped",
           "CREATE OR REPLACE AGGREGATE zoo.moving_sum(integer) (SFUNC = zoo.int_add, STYPE = bigint, INITCOND = '0')"),
    damage("operators", "restriction estimator changed",
           "ALTER OPERATOR zoo.=== (text, text) SET (RESTRICT = scalarltsel)"),
    damage("opfamilies", "loose member dropped",
           "ALTER OPERATOR FAMILY ledger.loose_family USING btree DROP OPERATOR 5 (integer, bigint)"),
    damage("opclasses", "operator class renamed",
           "ALTER OPERATOR CLASS ledger.int4_plain_ops USING btree RENAME TO int4_plain_ops2"),
    damage("casts", "cast dropped", "DROP CAST (zoo.address AS text)"),
    # types
    damage("collations", "collation renamed", "ALTER COLLATION ledger.unused_c RENAME TO unused_c2"),
    damage("extensions", "extension moved to another schema", "ALTER EXTENSION pgcrypto SET SCHEMA zoo",
           need="pgcrypto"),
    damage("enums", "label added", "ALTER TYPE ledger.status ADD VALUE 'refunded'"),
    damage("enums", "label renamed", "ALTER TYPE zoo.mood RENAME VALUE 'meh' TO 'meh!'", also=("table_data",)),
    damage("composite_types", "attribute renamed", "ALTER TYPE zoo.contact RENAME ATTRIBUTE name TO full_name",
           also=("comments",)),
    damage("range_types", "range type added", "CREATE TYPE zoo.extra_range AS RANGE (subtype = bigint)",
           also=("functions", "casts")),
    damage("domains", "domain default changed", "ALTER DOMAIN ledger.code SET DEFAULT 'Y'"),
    damage("domains", "NOT VALID domain constraint validated after fixing the data",
           "UPDATE ledger.counters SET n = n * 2", "ALTER DOMAIN ledger.even_int VALIDATE CONSTRAINT even_int_check",
           also=("table_data",)),
    damage("statistics", "statistics target changed", "ALTER STATISTICS zoo.all_types_mcv SET STATISTICS 100"),
    damage("statistics", "statistics object dropped", "DROP STATISTICS ledger.orders_expr"),
    # partitions and inheritance
    damage("partitions", "partition bound changed", "ALTER TABLE ledger.orders DETACH PARTITION ledger.orders_eu",
           "ALTER TABLE ledger.orders ATTACH PARTITION ledger.orders_eu FOR VALUES IN ('eu', 'uk', 'fr')"),
    damage("partitions", "partition detached", "ALTER TABLE ledger.sessions DETACH PARTITION ledger.sessions_3",
           also=("columns", "constraints", "indexes")),
    damage("inheritance", "parent removed", "ALTER TABLE ledger.amphibians NO INHERIT ledger.boats",
           also=("columns",)),
    # large objects
    damage("large_objects", "content changed", f"SELECT lo_put({LO_WITH_COMMENT}, 0, '\\x01')"),
    damage("large_objects", "comment dropped",
           f"DO $$ BEGIN EXECUTE format('COMMENT ON LARGE OBJECT %s IS NULL', {LO_WITH_COMMENT}); END $$"),
    damage("large_object_oids", "same content under another oid",
           "SELECT lo_from_bytea(0, lo_get(oid)), lo_unlink(oid) FROM pg_largeobject_metadata"
           " WHERE length(lo_get(oid)) = 0"),
    # everything else
    damage("schemas", "schema added", "CREATE SCHEMA extra"),
    damage("text_search", "mapping changed",
           "ALTER TEXT SEARCH CONFIGURATION zoo.zoo_english ALTER MAPPING FOR word WITH simple"),
    damage("conversions", "conversion dropped", "DROP CONVERSION zoo.utf8_to_latin1_zoo", also=("comments",)),
    damage("foreign_data_wrappers", "wrapper option changed",
           "ALTER FOREIGN DATA WRAPPER zoo_dummy_fdw OPTIONS (SET flavour 'some')"),
    damage("foreign_servers", "server option changed", "ALTER SERVER zoo_dummy_server OPTIONS (SET region 'here')"),
    damage("user_mappings", "user mapping option changed",
           "ALTER USER MAPPING FOR PUBLIC SERVER zoo_loopback OPTIONS (SET user 'somebody')", need="postgres_fdw"),
)


@pytest.mark.parametrize("case", DAMAGES, ids=[f"{d.kind}-{d.what.replace(' ', '_')}" for d in DAMAGES])
def test_compare_reports_each_damage(zoo: Zoo, case: Damage) -> None:
    _need(zoo, case.need)
    if case.clone:
        name = zoo.new_database("zoo_dmg", template=zoo.b)
        try:
            zoo.run(name, case.statements)
            differences = pg_compare.diff_states(zoo.state_a, pg_compare.catalog_state(zoo.url(name)))
        finally:
            zoo.drop(name)
    else:
        conn = connect(zoo.url(zoo.b))
        try:
            with conn.cursor() as cur:
                for statement in case.statements:
                    cur.execute(statement)
            differences = pg_compare.diff_states(zoo.state_a, pg_compare.catalog_state(conn))
        finally:
            conn.rollback()
            conn.close()
    kinds = pg_compare.kinds_of(differences)
    assert case.kind in kinds, differences
    assert kinds <= {case.kind} | case.also, differences


def test_rolled_back_damage_left_b_untouched(zoo: Zoo) -> None:
    """Runs after the damage cases: B still equals A, so no case leaked into the next one."""
    assert pg_compare.compare(zoo.url(zoo.a), zoo.url(zoo.b)) == []


def test_catalog_state_refuses_an_autocommit_connection(zoo: Zoo) -> None:
    conn = connect(zoo.url(zoo.b))
    conn.autocommit = True
    try:
        with pytest.raises(ValueError, match="autocommit"):
            pg_compare.catalog_state(conn)
    finally:
        conn.close()


def test_there_are_many_damage_cases() -> None:
    assert len(DAMAGES) >= 40
    assert len({d.kind for d in DAMAGES}) >= 30


def test_compare_reports_database_level_objects(zoo: Zoo) -> None:
    name = zoo.new_database("zoo_dblevel", template=zoo.a)
    try:
        catalog_zoo.build_zoo_database_level(zoo.url(name))
        kinds = pg_compare.kinds_of(pg_compare.compare(zoo.url(zoo.a), zoo.url(name)))
    finally:
        zoo.drop(name)
    assert {"event_triggers", "publications", "access_methods", "languages", "database"} <= kinds


# --- 4. what pg_dump itself does not carry --------------------------------------------------------------------------
def test_database_level_objects_through_pg_dump(zoo: Zoo) -> None:
    """As a superuser pg_dump carries event triggers, publications, access methods and languages, but
    without --create not the database's own settings and comment."""
    source = zoo.new_database("zoo_dblevel_src")
    try:
        catalog_zoo.build_zoo_database_level(zoo.url(source))
        restored = zoo.round_trip(source, "zoo_dblevel_dst")
        differences = pg_compare.compare(zoo.url(source), zoo.url(restored))
        zoo.drop(restored)
    finally:
        zoo.drop(source)
    assert differences == [
        "database: comment: only in A: 'zoo database, level up'",
        "database: settings for all roles: only in A: ['work_mem=7MB']",
        "database: settings for zoo_auditor: only in A: ['statement_timeout=42s']",
    ]


PG_DUMP_GAPS = [
    "column_order: gaps.adopted: A=['b', 'z', 'a'] B=['a', 'b', 'z']",
    "column_order: gaps.child: A=['a', 'b', 'own', 'late'] B=['a', 'b', 'late', 'own']",
    "comments: table constraint checked_a_positive on gaps.checked_child: only in A:"
    " 'comment on an inherited constraint'",
    "comments: table constraint parted_ref_fk on gaps.parted_1: only in A: 'comment on a cloned foreign key'",
    "comments: trigger parted_noop on gaps.parted_1: only in A: 'comment on a cloned trigger'",
]


def test_what_pg_dump_does_not_round_trip(zoo: Zoo) -> None:
    """Pinned exactly: if a PostgreSQL upgrade fixes one, this fails and the list (and the report) shrinks."""
    source = zoo.new_database("zoo_gaps_src")
    try:
        catalog_zoo.build_pg_dump_gaps(zoo.url(source))
        restored = zoo.round_trip(source, "zoo_gaps_dst")
        differences = pg_compare.compare(zoo.url(source), zoo.url(restored))
        zoo.drop(restored)
    finally:
        zoo.drop(source)
    structural = [line for line in differences if not line.startswith("table_data:")]
    assert structural == PG_DUMP_GAPS
    # the same rows, but each row's text follows the column order
    assert sorted(line.split(".md5")[0] for line in differences if line.startswith("table_data:")) == [
        "table_data: gaps.adopted", "table_data: gaps.child"]


def test_language_with_a_catalog_handler_does_not_restore(zoo: Zoo) -> None:
    """pg_dump writes a bare CREATE LANGUAGE when the handler is not dumpable (a pg_catalog or extension
    function); PostgreSQL 15 reads that as CREATE EXTENSION, which fails: the whole restore fails."""
    source = zoo.new_database("zoo_lang_src")
    target = zoo.new_database("zoo_lang_dst")
    try:
        zoo.run(source, ("CREATE LANGUAGE zoo_alias HANDLER plpgsql_call_handler VALIDATOR plpgsql_validator",))
        path = zoo.folder / "lang.sql"
        zoo.tools.dump(source, path)
        assert "CREATE OR REPLACE PROCEDURAL LANGUAGE zoo_alias;" in path.read_text()
        result = zoo.tools.restore(path, target)
        assert result.returncode != 0
        assert 'extension "zoo_alias" is not available' in result.stderr
    finally:
        zoo.drop(target)
        zoo.drop(source)


def test_large_objects_break_psql_single_transaction(zoo: Zoo) -> None:
    """A plain dump wraps its large objects in BEGIN; ... COMMIT;. Under `psql --single-transaction`
    that COMMIT ends the outer transaction: a later failure leaves the pre-blob part committed."""
    source = zoo.new_database("zoo_lo_src")
    target = zoo.new_database("zoo_lo_dst")
    try:
        zoo.run(source, ("CREATE TABLE public.kept (id integer)", "INSERT INTO public.kept VALUES (1), (2)",
                         "CREATE INDEX kept_idx ON public.kept (id)", "SELECT lo_from_bytea(0, '\\x00ff')"))
        path = zoo.folder / "lo.sql"
        zoo.tools.dump(source, path)
        text = path.read_text()
        assert "\nBEGIN;\n" in text and "\nCOMMIT;\n" in text
        # make the post-data section fail: a relation already named like the index
        zoo.run(target, ("CREATE SEQUENCE public.kept_idx",))
        result = zoo.tools.restore(path, target)
        assert result.returncode != 0
        conn = connect(zoo.url(target))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM public.kept")
                assert cur.fetchone()[0] == 2  # committed although the restore failed
        finally:
            conn.close()
    finally:
        zoo.drop(target)
        zoo.drop(source)
