"""A "rich" MariaDB database for round-trip tests, and ways to compare two databases.

Not a test module: a plain helper that tests import.

Building: `build_rich_database(server, database, rows=60, seed=0)` creates, in an existing empty
database on a `ThrowawayMariaDB`:
- `types_all`: every column type (signed and unsigned integers up to unsigned BIGINT's maximum,
  DECIMAL(65,30), FLOAT, DOUBLE, BIT(1/10/64), YEAR, DATE with zero dates, DATETIME(6),
  TIMESTAMP(3), TIME(6) beyond 24 hours and negative, CHAR, VARCHAR and TEXT in utf8mb4 with
  emoji, a latin1 and a binary-collation column, BINARY, VARBINARY and every BLOB, ENUM, SET,
  JSON, UUID, INET4, INET6, spatial columns), virtual and stored generated columns, an invisible
  column, a FULLTEXT index, a SPATIAL index, comments, values with quotes, backslashes, NUL,
  CR/LF, ^Z and `\\.`;
- foreign keys: parent/child with ON DELETE CASCADE, a self-reference, and a cycle between two
  tables; AUTO_INCREMENT positions moved beyond max(id); a RANGE-partitioned table; a MyISAM
  table; a table without a primary key; an empty table; a table and columns with odd names;
- a sequence; views (one on another, one calling a function, WITH CHECK OPTION, MERGE, SQL
  SECURITY INVOKER); procedures and functions; triggers (two on one event, ordered with
  FOLLOWS); events (enabled in the future, disabled, ON COMPLETION PRESERVE).

Comparing (compute on each database and compare with ==):
    database_state(conn, db)  -> per table: row count and a hash of its rows in order (every column,
                                 invisible and generated ones included, values as the server's
                                 text); AUTO_INCREMENT positions; sequence positions
    definitions(conn, db)     -> what information_schema says of tables, columns, indexes,
                                 constraints, partitions, views, routines, parameters, triggers
                                 and events (the database's own name replaced, timestamps left out)
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pymysql

from backup_engine.engines.mysql.connect import TEXT_CONVERSIONS

ODD_TABLE = "we`ird ta;ble select 表 ✓"  # identifiers are utf8mb3 in MariaDB: no emoji
ODD_COLUMN = "co`l; from 列 ✓"

SPECIAL_STRINGS = (
    "", "plain", "it's", 'say "hi"', "back\\slash", "C:\\path\\", "tab\there", "new\nline", "crlf\r\nend",
    "\\.", "\\N", "NULL", "nul\x00inside", "ctrl-z\x1a", "emoji 😀🎉👩‍💻", "CJK 漢字かなカナ한국어", "-- not a comment",
    "/* not a comment */", "semi;colon); DROP TABLE t; --", "trailing space ", "%s %d {0}", "ü" * 50,
)

SCHEMA = [
    """CREATE TABLE types_all (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        t_tiny TINYINT, t_tiny_u TINYINT UNSIGNED, t_small SMALLINT, t_medium MEDIUMINT UNSIGNED,
        t_int INT, t_big BIGINT, t_big_u BIGINT UNSIGNED, t_bool BOOLEAN,
        t_dec DECIMAL(65,30), t_money DECIMAL(10,2) UNSIGNED ZEROFILL, t_float FLOAT, t_double DOUBLE,
        t_bit1 BIT(1), t_bit10 BIT(10), t_bit64 BIT(64), t_year YEAR,
        t_date DATE, t_datetime DATETIME(6), t_ts TIMESTAMP(3) NULL DEFAULT NULL, t_time TIME(6),
        t_char CHAR(10), t_varchar VARCHAR(255) NOT NULL DEFAULT 'it''s \\\\ a default', t_tinytext TINYTEXT,
        t_text TEXT, t_medtext MEDIUMTEXT, t_longtext LONGTEXT,
        t_latin1 VARCHAR(40) CHARACTER SET latin1 COLLATE latin1_swedish_ci,
        t_binco VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
        t_binary BINARY(4), t_varbinary VARBINARY(16), t_tinyblob TINYBLOB, t_blob BLOB,
        t_medblob MEDIUMBLOB, t_longblob LONGBLOB,
        t_enum ENUM('small', 'médium', 'it''s large') DEFAULT 'small', t_set SET('a', 'b', 'c d'),
        t_json JSON, t_uuid UUID, t_inet6 INET6, t_inet4 INET4,
        t_point POINT, t_geom GEOMETRY, t_line LINESTRING,
        t_virtual BIGINT AS (t_int * 2) VIRTUAL, t_stored VARCHAR(300) AS (CONCAT(t_varchar, '!')) STORED,
        t_invisible INT INVISIBLE DEFAULT 7,
        t_created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'when ''written''',
        FULLTEXT KEY ft_text (t_text, t_varchar),
        KEY by_big (t_big_u, t_date),
        UNIQUE KEY by_uuid (t_uuid)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='every type'""",
    """CREATE TABLE places (id INT PRIMARY KEY, spot POINT NOT NULL, area POLYGON, SPATIAL INDEX sp (spot))
        ENGINE=InnoDB""",
    """CREATE TABLE customers (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL,
        referred_by BIGINT NULL, email VARCHAR(200) UNIQUE,
        CONSTRAINT fk_referrer FOREIGN KEY (referred_by) REFERENCES customers (id) ON DELETE SET NULL)""",
    """CREATE TABLE orders (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id BIGINT NOT NULL,
        total DECIMAL(12,2) NOT NULL DEFAULT 0.00, note TEXT, placed DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00',
        CONSTRAINT fk_order_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
            ON UPDATE CASCADE, CHECK (total >= 0))""",
    """CREATE TABLE cycle_a (id INT PRIMARY KEY, b_id INT NULL)""",
    """CREATE TABLE cycle_b (id INT PRIMARY KEY, a_id INT NULL,
        CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES cycle_a (id))""",
    """ALTER TABLE cycle_a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES cycle_b (id)""",
    """CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, what VARCHAR(200), at_step INT)""",
    """CREATE TABLE readings (id INT NOT NULL, taken DATE NOT NULL, value DOUBLE, PRIMARY KEY (id, taken))
        PARTITION BY RANGE (YEAR(taken)) (PARTITION p_old VALUES LESS THAN (2000),
        PARTITION p_new VALUES LESS THAN MAXVALUE)""",
    """CREATE TABLE legacy (id INT PRIMARY KEY, word VARCHAR(20)) ENGINE=MyISAM DEFAULT CHARSET=latin1""",
    """CREATE TABLE no_key (a INT, b VARCHAR(10))""",
    """CREATE TABLE empty_one (id INT PRIMARY KEY, v TEXT)""",
    f"""CREATE TABLE `{ODD_TABLE.replace('`', '``')}` (`{ODD_COLUMN.replace('`', '``')}` VARCHAR(50) PRIMARY KEY,
        `select` INT, `order` INT)""",
    """CREATE SEQUENCE ticket_seq START WITH 100 INCREMENT BY 5 CACHE 10""",
    """CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC COMMENT 'twice' RETURN x * 2""",
    """CREATE FUNCTION greet(who VARCHAR(50) CHARSET utf8mb4) RETURNS VARCHAR(80) CHARSET utf8mb4
        DETERMINISTIC READS SQL DATA
        BEGIN
          DECLARE prefix VARCHAR(10) DEFAULT 'hé ';
          RETURN CONCAT(prefix, who, ' 😀');
        END""",
    """CREATE PROCEDURE add_order(IN cust BIGINT, IN amount DECIMAL(12,2), OUT new_id BIGINT)
        MODIFIES SQL DATA SQL SECURITY INVOKER
        BEGIN
          INSERT INTO orders (customer_id, total) VALUES
          (cust, amount);
          SET new_id = LAST_INSERT_ID();
        END""",
    """CREATE PROCEDURE nothing() BEGIN END""",
    """CREATE VIEW customer_totals AS SELECT c.id, c.name, COUNT(o.id) AS n, SUM(o.total) AS total
        FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name""",
    """CREATE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW big_spenders AS
        SELECT id, name, total FROM customer_totals WHERE total > 100""",
    """CREATE VIEW doubled_ints AS SELECT id, doubled(t_int) AS d, greet(t_varchar) AS g FROM types_all""",
    """CREATE VIEW checked_orders AS SELECT id, customer_id, total FROM orders WHERE total < 1000
        WITH CASCADED CHECK OPTION""",
    """CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW
        SET NEW.note = COALESCE(NEW.note, 'auto')""",
    """CREATE TRIGGER orders_bi_2 BEFORE INSERT ON orders FOR EACH ROW FOLLOWS orders_bi
        SET NEW.total = NEW.total + 0""",
    """CREATE TRIGGER orders_au AFTER UPDATE ON orders FOR EACH ROW
        BEGIN
          INSERT INTO audit (what, at_step) VALUES (CONCAT('order ', NEW.id, ' updated; "quoted"'), 1);
        END""",
    """CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 03:00:00'
        ON COMPLETION PRESERVE ENABLE COMMENT 'nightly'
        DO DELETE FROM audit WHERE at_step < 0""",
    """CREATE EVENT parked ON SCHEDULE AT '2035-06-01 00:00:00' ON COMPLETION PRESERVE DISABLE
        DO INSERT INTO audit (what, at_step) VALUES ('parked', -1)""",
]


JSON_VALUES = (None, '{"k": [1, 2.50, "ü", null], "n": {"x": true}}', "[]", '"s"', "123.4500",
               '{"a":"\\\\ \\" \\n"}')


def random_uuid(rng: random.Random) -> str:
    return (f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
            f"a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}")


def random_numbers(rng: random.Random, index: int) -> list[Any]:
    """The numeric and temporal columns of one ordinary row of types_all."""
    day = f"{rng.randint(1000, 9999)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return [rng.randint(-128, 127), rng.randint(0, 255), rng.randint(-32768, 32767), rng.randint(0, 16777215),
            rng.randint(-2**31, 2**31 - 1), rng.randint(-2**63, 2**63 - 1), rng.randint(0, 2**64 - 1),
            rng.randint(0, 1), f"{rng.randint(-10**30, 10**30)}.{rng.randint(0, 10**29):030d}",
            f"{rng.randint(0, 10**7)}.{rng.randint(0, 99):02d}", rng.uniform(-1e6, 1e6),
            rng.uniform(-1e300, 1e300) if index % 3 else 0.1 + 0.2, rng.randint(0, 1), rng.randint(0, 1023),
            rng.randint(0, 2**64 - 1), rng.randint(1901, 2155), day, f"{day} {clock}.{rng.randint(0, 999999):06d}",
            f"20{rng.randint(10, 37)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 12:34:56.{rng.randint(0, 999):03d}",
            f"{rng.randint(-800, 800)}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}"]


def _rng_text(rng: random.Random, index: int) -> str:
    return SPECIAL_STRINGS[index % len(SPECIAL_STRINGS)] + ("" if index < len(SPECIAL_STRINGS) else f" #{index}")


def build_rich_database(server: Any, database: str, rows: int = 60, seed: int = 0) -> None:
    """Create the schema in `database` (which must exist and be empty) and fill it."""
    rng = random.Random(seed)
    conn = server.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")  # zero dates allowed
            for statement in SCHEMA:
                cur.execute(statement)
            populate(cur, rng, rows)
    finally:
        conn.close()


def populate(cur: Any, rng: random.Random, rows: int) -> None:
    extremes = [
        (127, 255, -32768, 16777215, -2147483648, -9223372036854775808, 18446744073709551615, 1,
         "99999999999999999999999999999999999.999999999999999999999999999999", "12345678.90", 3.4028234e38,
         1.7976931348623157e308, 1, 1023, 18446744073709551615, 2155, "0000-00-00", "0000-00-00 00:00:00",
         None, "838:59:59.000000"),
        (-128, 0, 32767, 0, 2147483647, 9223372036854775807, 0, 0,
         "-0.000000000000000000000000000001", "0.01", -1.17549435e-38, 5e-324, 0, 0, 0, 1901, "1000-01-01",
         "9999-12-31 23:59:59.999999", "2038-01-19 03:14:07.999", "-838:59:59.000000"),
    ]
    insert = ("INSERT INTO types_all (t_tiny, t_tiny_u, t_small, t_medium, t_int, t_big, t_big_u, t_bool, t_dec, "
              "t_money, t_float, t_double, t_bit1, t_bit10, t_bit64, t_year, t_date, t_datetime, t_ts, t_time, "
              "t_char, t_varchar, t_tinytext, t_text, t_medtext, t_longtext, t_latin1, t_binco, t_binary, "
              "t_varbinary, t_tinyblob, t_blob, t_medblob, t_longblob, t_enum, t_set, t_json, t_uuid, t_inet6, "
              "t_inet4, t_point, t_geom, t_line, t_invisible, t_created) VALUES (" + ", ".join(["%s"] * 40) +
              ", ST_GeomFromText(%s), ST_GeomFromText(%s), ST_GeomFromText(%s), %s, %s)")
    for index in range(rows):
        text = _rng_text(rng, index)
        numbers = list(extremes[index]) if index < len(extremes) else random_numbers(rng, index)
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        values = numbers + [
            text.replace("\x00", "")[:10].rstrip(" ") or None, text[:255], text[:255], text * 3, text * 10,
            text * 20, "åäö ÅÄÖ é ß"[: (index % 12)], text[:40],
            bytes([index % 256, 0, 255, 7]), blob[:16], blob, blob * 3, bytes(range(256)) * (index % 3), blob * 100,
            ["small", "médium", "it's large", None][index % 4], ["", "a", "a,b", "a,b,c d", None][index % 5],
            JSON_VALUES[index % len(JSON_VALUES)], None if index % 7 == 0 else random_uuid(rng),
            ["::1", "2001:db8::ff00:42:8329", None, "fe80::1"][index % 4], ["127.0.0.1", None, "10.1.2.3"][index % 3],
            f"POINT({index} {-index / 3})", ["POLYGON((0 0,10 0,10 10,0 10,0 0))", None, "POINT(1 1)"][index % 3],
            f"LINESTRING(0 0,{index} {index},{index * 2} 1)" if index % 2 else None,
            index * 11, f"2024-01-{index % 28 + 1:02d} 10:00:00.{index:06d}",
        ]
        cur.execute(insert, values)
    cur.execute("INSERT INTO places VALUES (1, POINT(1, 2), NULL), (2, POINT(-3.5, 4.25), "
                "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'))")
    customers = [(i, f"customer {i} {_rng_text(rng, i)[:40]}", None if i < 3 else rng.randint(1, i - 1),
                  None if i % 4 == 0 else f"c{i}@example.com") for i in range(1, rows + 1)]
    cur.executemany("INSERT INTO customers (id, name, referred_by, email) VALUES (%s, %s, %s, %s)", customers)
    for i in range(1, rows * 2 + 1):
        cur.execute("INSERT INTO orders (customer_id, total, note, placed) VALUES (%s, %s, %s, %s)",
                    (rng.randint(1, rows), f"{rng.randint(0, 5000)}.{rng.randint(0, 99):02d}",
                     None if i % 3 else _rng_text(rng, i), f"20{rng.randint(10, 30)}-01-01 00:00:00"))
    cur.execute("UPDATE orders SET total = total + 1 WHERE id <= 3")  # fires orders_au
    cur.execute("INSERT INTO customers (name) VALUES ('gone'), ('gone too')")
    cur.execute("DELETE FROM customers WHERE name LIKE 'gone%'")  # AUTO_INCREMENT beyond max(id)
    cur.execute("INSERT INTO cycle_a VALUES (1, NULL), (2, NULL)")
    cur.execute("INSERT INTO cycle_b VALUES (10, 1), (20, 2)")
    cur.execute("UPDATE cycle_a SET b_id = 10 WHERE id = 1")
    cur.execute("UPDATE cycle_a SET b_id = 20 WHERE id = 2")
    cur.executemany("INSERT INTO readings VALUES (%s, %s, %s)",
                    [(i, f"{1990 + i % 20}-0{i % 9 + 1}-15", rng.uniform(-50, 50)) for i in range(rows)])
    cur.executemany("INSERT INTO legacy VALUES (%s, %s)", [(i, "mot é" * (i % 4)) for i in range(rows // 2)])
    cur.executemany("INSERT INTO no_key VALUES (%s, %s)", [(i % 5, None if i % 2 else "x") for i in range(rows)])
    cur.executemany(f"INSERT INTO `{ODD_TABLE.replace('`', '``')}` VALUES (%s, %s, %s)",
                    [(f"k{i} {_rng_text(rng, i)[:30]}", i, -i) for i in range(10)])
    cur.execute("SELECT NEXTVAL(ticket_seq), NEXTVAL(ticket_seq)")
    cur.fetchall()


# --- comparing -------------------------------------------------------------------------------------------
def _connect(server: Any, database: str) -> Any:
    return pymysql.connect(host=server.host, port=server.port, user=server.superuser, password=server.password,
                           database=database, charset="utf8mb4", conv=TEXT_CONVERSIONS, autocommit=True)


def _rows(cur: Any, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cur.execute(query, args)
    return [tuple(v.hex() if isinstance(v, bytes | bytearray) else v for v in row) for row in cur.fetchall()]


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_names(cur: Any, database: str) -> list[str]:
    return [row[0] for row in _rows(cur, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                                         "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (database,))]


def row_counts(state: dict[str, Any]) -> dict[str, int]:
    """Rows per table of a `database_state`."""
    return {name: rows for name, (rows, _digest) in state["tables"].items()}


def database_state(server: Any, database: str) -> dict[str, Any]:
    """Rows (count and ordered hash of every column's text), AUTO_INCREMENT and sequence positions."""
    conn = _connect(server, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            tables: dict[str, Any] = {}
            state: dict[str, Any] = {"tables": tables}
            for name in table_names(cur, database):
                columns = [row[0] for row in _rows(cur, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
                                                        "TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY "
                                                        "ORDINAL_POSITION", (database, name))]
                listed = ", ".join(quote(c) for c in columns)
                rows = _rows(cur, f"SELECT {listed} FROM {quote(name)} ORDER BY {listed}")
                digest = hashlib.sha256(repr(rows).encode("utf-8")).hexdigest()
                tables[name] = (len(rows), digest)
            state["auto_increment"] = _rows(cur, "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                                                 "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME", (database,))
            sequences = [row[0] for row in _rows(cur, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                                                      "TABLE_SCHEMA = %s AND TABLE_TYPE = 'SEQUENCE'", (database,))]
            state["sequences"] = {name: _rows(cur, f"SELECT next_not_cached_value, start_value, increment, cache_size "
                                                   f"FROM {quote(name)}") for name in sorted(sequences)}
            return state
    finally:
        conn.close()


DEFINITION_QUERIES = {
    "tables": "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, ROW_FORMAT, TABLE_COLLATION, CREATE_OPTIONS, TABLE_COMMENT "
              "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
    "columns": "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, "
               "CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_KEY, EXTRA, COLUMN_COMMENT, IS_GENERATED, "
               "GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
               "ORDER BY TABLE_NAME, ORDINAL_POSITION",
    "indexes": "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, INDEX_TYPE, "
               "INDEX_COMMENT FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
               "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    "constraints": "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS "
                   "WHERE CONSTRAINT_SCHEMA = %s ORDER BY TABLE_NAME, CONSTRAINT_NAME",
    "foreign_keys": "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE, "
                    "UNIQUE_CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = %s ORDER BY TABLE_NAME, CONSTRAINT_NAME",
    "key_columns": "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, ORDINAL_POSITION, REFERENCED_TABLE_NAME, "
                   "REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                   "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
    "checks": "SELECT TABLE_NAME, CONSTRAINT_NAME, LEVEL, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
              "WHERE CONSTRAINT_SCHEMA = %s ORDER BY TABLE_NAME, CONSTRAINT_NAME",
    "partitions": "SELECT TABLE_NAME, PARTITION_NAME, PARTITION_ORDINAL_POSITION, PARTITION_METHOD, "
                  "PARTITION_EXPRESSION, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS "
                  "WHERE TABLE_SCHEMA = %s AND PARTITION_NAME IS NOT NULL ORDER BY TABLE_NAME, PARTITION_NAME",
    "views": "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, DEFINER, SECURITY_TYPE, "
             "CHARACTER_SET_CLIENT, COLLATION_CONNECTION, ALGORITHM FROM information_schema.VIEWS "
             "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
    "routines": "SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_BODY, ROUTINE_DEFINITION, "
                "IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT, DEFINER, "
                "CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
    "parameters": "SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER, "
                  "ROUTINE_TYPE FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = %s "
                  "ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION",
    "triggers": "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, ACTION_STATEMENT, "
                "ACTION_TIMING, SQL_MODE, DEFINER, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION "
                "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY TRIGGER_NAME",
    "events": "SELECT EVENT_NAME, DEFINER, TIME_ZONE, EVENT_BODY, EVENT_DEFINITION, EVENT_TYPE, EXECUTE_AT, "
              "INTERVAL_VALUE, INTERVAL_FIELD, SQL_MODE, STARTS, ENDS, STATUS, ON_COMPLETION, EVENT_COMMENT, "
              "CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION FROM information_schema.EVENTS "
              "WHERE EVENT_SCHEMA = %s ORDER BY EVENT_NAME",
}


def definitions(server: Any, database: str) -> dict[str, Any]:
    """What information_schema says of the database's objects, its own name replaced by `DB`."""
    conn = _connect(server, database)
    try:
        with conn.cursor() as cur:
            found = {kind: _rows(cur, query, (database,)) for kind, query in DEFINITION_QUERIES.items()}
    finally:
        conn.close()
    qualified = quote(database) + "."

    def plain(value: Any) -> Any:
        return value.replace(qualified, "`DB`.") if isinstance(value, str) else value

    return {kind: [tuple(plain(value) for value in row) for row in rows] for kind, rows in found.items()}
