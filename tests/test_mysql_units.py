"""The MySQL engine's pure parts, without a server: the dump scanner on every INSERT layout the tools
write (and split anywhere), literals, kinds, defaults, the trigger-header check, the option file,
the sandbox line and the vetting of untrusted documents."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from backup_engine import errors
from backup_engine.engines.mysql import catalog, kinds, literals, native, vetting
from backup_engine.engines.mysql.client import strip_sandbox_line
from backup_engine.engines.mysql.connect import option_file, scrub
from backup_engine.engines.mysql.engine import MysqlEngine, mysql_unescape
from backup_engine.formats.json_values import ValueError_
from backup_engine.formats.values import PortableDefault
from backup_engine.targets import Target

DUMP = b"""/*M!999999\\- enable the sandbox mode */\x20
-- MariaDB dump 10.19
/*!40101 SET NAMES utf8mb4 */;
--
-- Table structure for table `plain`
--
CREATE TABLE `plain` (
  `id` int(11) NOT NULL
) ENGINE=InnoDB;
--
-- Dumping data for table `plain`
--
INSERT INTO `plain` VALUES
(1,'a),(b'),
(2,'x);\\nnot an end'),
(3,'\\'),(\\'');
INSERT INTO `plain` VALUES
(4,NULL);
--
-- Table structure for table `odd``name`
--
CREATE TABLE `odd``name` (
  `v` int(11) INVISIBLE
);
INSERT INTO `odd``name` (`v`, `w`) VALUES (1,'one'),
(2,'two'),
(3,'th),(ree');
INSERT INTO `odd``name` VALUES (4,'a'),(5,'b'),(6,'c),(d');
--
-- Dumping data for table `empty`
--
--
-- Temporary view structure for view `v`
--
CREATE TABLE `v` (
  `x` tinyint NOT NULL
);
DELIMITER ;;
CREATE PROCEDURE `p`()
BEGIN
INSERT INTO `plain` VALUES
(99);
CREATE TABLE `ghost` (
  `id` int
);
END ;;
DELIMITER ;
-- Dump completed on 2026-01-01 00:00:00
"""
EXPECTED = {"plain": 4, "odd`name": 6, "empty": 0}


def scan(data: bytes, cuts: list[int]) -> native.DumpScanner:
    scanner = native.DumpScanner()
    start = 0
    for cut in [*cuts, len(data)]:
        scanner.feed(data[start:cut])
        start = cut
    return scanner


def test_the_scanner_counts_rows_of_every_layout_wherever_the_stream_is_cut():
    assert scan(DUMP, []).counts == EXPECTED
    rng = random.Random(5)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(DUMP)), rng.randint(1, 30)))
        scanner = scan(DUMP, cuts)
        assert scanner.counts == EXPECTED, cuts
        scanner.check_complete()
    single_bytes = scan(DUMP, list(range(1, len(DUMP))))
    assert single_bytes.counts == EXPECTED


def test_a_dump_without_its_completion_line_is_refused():
    scanner = scan(DUMP.rsplit(b"-- Dump completed", 1)[0], [])
    with pytest.raises(errors.DumpError, match="no end marker"):
        scanner.check_complete()
    with pytest.raises(errors.DumpError, match="empty"):
        native.DumpScanner().check_complete()
    assert native.script_complete(b"...\n-- Dump completed (backup worker, SQLAlchemy fallback)\n\n")
    assert not native.script_complete(b"-- Dump completed\nINSERT INTO t VALUES (1);\n")


def test_the_sandbox_line_is_left_out_for_a_mysql_client_only():
    assert strip_sandbox_line(DUMP).startswith(b"-- MariaDB dump")
    assert strip_sandbox_line(b"-- MySQL dump\n") == b"-- MySQL dump\n"


def test_server_text_literals():
    assert literals.mysql_string("it's \\ \x00 \n\r \x1a 😀") == "'it\\'s \\\\ \\0 \\n\\r \\Z 😀'"
    assert literals.server_literal("18446744073709551615", literals.NUMBER) == "18446744073709551615"
    assert literals.server_literal(b"\x00\xff", literals.BINARY) == "0x00FF"
    assert literals.server_literal(b"", literals.BINARY) == "''"
    assert literals.server_literal("0000-00-00", literals.TEMPORAL) == "'0000-00-00'"
    assert literals.server_literal(None, literals.STRING) == "NULL"
    assert literals.renderer("raw:number")("1.50") == "1.50"
    assert literals.renderer("sql")("'x'") == "'x'" and literals.renderer("sql")(None) == "NULL"
    assert [literals.storage_of(name) for name in ("BIGINT", "bit", "datetime", "json", "point")] == \
        [literals.NUMBER, literals.BINARY, literals.TEMPORAL, literals.STRING, literals.BINARY]


def test_portable_literals_check_their_kind():
    assert literals.portable_literal(True, "boolean") == "1"
    assert literals.portable_literal(-0.0, "float") == "-0.0"
    assert literals.portable_literal(Decimal("1.50"), "numeric") == "1.50"
    assert literals.portable_literal(b"\x01", "bytes") == "0x01"
    assert literals.portable_literal("ü", "bytes") == "0xC3BC"
    assert literals.portable_literal("2024-01-02T03:04:05.5+02:00", "timestamptz") == "'2024-01-02 01:04:05.500000'"
    assert literals.portable_literal("0000-00-00T00:00:00+00:00", "timestamptz") == "'0000-00-00 00:00:00'"
    assert literals.portable_literal("2024-01-02T03:04:05", "timestamp") == "'2024-01-02 03:04:05'"
    for value, kind in ((float("nan"), "float"), (Decimal("Infinity"), "numeric"), (b"\x00", "text"),
                        ("abc", "integer")):
        with pytest.raises(ValueError_):
            literals.portable_literal(value, kind)


def test_kinds_and_json_values():
    assert kinds.kind_of("bigint", "bigint(20) unsigned") == "numeric"
    assert kinds.kind_of("bit", "bit(64)") == "numeric" and kinds.kind_of("bit", "bit(10)") == "integer"
    assert kinds.kind_of("longtext", "longtext", json_column=True) == "json"
    assert kinds.kind_of("timestamp", "timestamp(3)") == "timestamptz"
    assert kinds.kind_of("point", "point") == "bytes" and kinds.kind_of("inet6", "inet6") == "other"
    assert kinds.json_encoder("numeric", "decimal")("0012.50") == "12.50"
    assert kinds.json_encoder("integer", "bit")(b"\x02\xaa") == "682"
    assert kinds.json_encoder("bytes", "blob")(b"\x00\xff") == '"\\\\x00ff"'
    assert kinds.json_encoder("timestamptz", "timestamp")("2024-01-02 03:04:05.12") == '"2024-01-02T03:04:05.12+00:00"'
    assert kinds.json_encoder("text", "varchar")(None) == "null"
    assert kinds.column_type("text", "character varying(40)") == "VARCHAR(40)"
    assert kinds.column_type("numeric", "numeric(10,2)") == "DECIMAL(10,2)"
    assert kinds.column_type("numeric", "numeric") == "DECIMAL(65,30)"
    assert kinds.column_type("array", "integer[]") == "JSON"


def test_defaults_both_ways():
    assert MysqlEngine.portable_default("'it''s \\\\ x'") == PortableDefault("string", "it''s \\ x")
    assert MysqlEngine.portable_default("current_timestamp(6)") == PortableDefault("now")
    assert MysqlEngine.portable_default("NULL") is None and MysqlEngine.portable_default("b'101'") is None
    assert MysqlEngine.portable_default("-1.5") == PortableDefault("number", "-1.5")
    assert MysqlEngine.render_default(PortableDefault("string", "it''s \\ x"), "text") == "'it\\'s \\\\ x'"
    assert MysqlEngine.render_default(PortableDefault("now"), "timestamptz") == "CURRENT_TIMESTAMP(6)"
    assert MysqlEngine.render_default(PortableDefault("now"), "text") is None
    assert MysqlEngine.render_default(PortableDefault("boolean", "true"), "boolean") == "1"
    assert mysql_unescape("a\\nb''c\\\\") == "a\nb'c\\"


@pytest.mark.parametrize(("statement", "qualified"), [
    ("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1", False),
    ("CREATE DEFINER=`u`@`%` trigger `db`.`t` before insert on x for each row set @a = 1", True),
    ("create trigger t before insert on db.x for each row set @a = 1", True),
    ("CREATE TRIGGER IF NOT EXISTS `a.b` AFTER UPDATE ON `c.d` FOR EACH ROW SET @x = 'db.t'", False),
    ("CREATE /* db.t */ TRIGGER t -- x.y\n BEFORE DELETE ON `t` FOR EACH ROW DELETE FROM other.t", False),
    ("CREATE DEFINER='u'@'%' TRIGGER `s` . `t` BEFORE INSERT ON t FOR EACH ROW SET @a = 1", True),
])
def test_trigger_headers_that_name_a_database(statement, qualified):
    assert catalog.header_names_database(statement) is qualified


def test_the_option_file_quotes_everything_and_the_scrubber_hides_the_password():
    target = Target.from_url("x", 'mysql://us%22er:p%22w%5C%23%20x@db.example:3307/app?ssl_ca=/etc/ca.pem')
    text = option_file(target.url)
    assert 'user="us\\"er"' in text and 'password="p\\"w\\\\# x"' in text
    assert 'host="db.example"' in text and "port=3307" in text and 'ssl-ca="/etc/ca.pem"' in text
    assert scrub('ERROR 1045 (28000): Access denied for user with password p"w\\# x', target).count("***") == 1


def test_untrusted_mysql_documents_are_vetted():
    column = {"name": "c", "type": "varchar(20)", "kind": "text", "default": "'it''s \\\\ fine'"}
    schema = {"dialect": "mysql", "tables": [{"key": "t", "columns": [column], "checks": []}],
              "extras": {"table_ddl": {"t": "CREATE TABLE t (c varchar(20)) -- anything"}}}
    vetted = vetting.vet_schema(schema)
    assert vetted["extras"]["table_ddl"] == {} and schema["extras"]["table_ddl"]
    for bad in ({"type": "varchar(20) CHARACTER SET x; DROP DATABASE d"}, {"default": "(SELECT 1)"},
                {"default": "'unclosed"}, {"generated": {"sqltext": "1", "persisted": True}}):
        with pytest.raises(errors.InvalidRequest, match=errors.FRAGMENT_REFUSED):
            vetting.vet_schema({**schema, "tables": [{"key": "t", "columns": [{**column, **bad}], "checks": []}]})
    with pytest.raises(errors.InvalidRequest, match="views, triggers"):
        vetting.vet_schema({**schema, "extras": {"raw_post_data": ["-- view `v`\n..."]}})
    other = {"dialect": "postgresql", "tables": [], "extras": {"views": [{"definition": "anything"}]}}
    assert vetting.vet_schema(other) is other  # another engine's SQL is never pasted into a MySQL script


def test_datetime_literals_in_other_zones():
    assert literals.mysql_datetime("2024-06-30T23:30:00-01:30") == "2024-07-01 01:00:00"
    assert literals.mysql_datetime("not a date") == "not a date"
    assert dt.date(2024, 1, 1).isoformat() == literals.mysql_datetime("2024-01-01")


def test_text_columns_of_other_engines_fit_mysql_keys():
    import io

    from sqlalchemy import Column, Index, MetaData, Table, UniqueConstraint
    from sqlalchemy.schema import CreateIndex, CreateTable

    from backup_engine.engines.mysql.writer import MysqlScriptWriter, make_dialect
    from backup_engine.formats.model import CatalogType

    table = Table("t", MetaData(), *(Column(name, CatalogType("LONGTEXT")) for name in "abcd"),
                  UniqueConstraint("d", "c"))
    dialect = make_dialect()
    assert str(CreateIndex(Index("ix", table.c.a, table.c.b)).compile(dialect=dialect)).strip() == \
        "CREATE INDEX `ix` ON `t` (`a`(255), `b`(255))"
    MysqlScriptWriter(io.BytesIO()).fit_keys(table)
    ddl = str(CreateTable(table).compile(dialect=dialect))
    assert "`c` VARCHAR(384)" in ddl and "`d` VARCHAR(384)" in ddl and "`a` LONGTEXT" in ddl
