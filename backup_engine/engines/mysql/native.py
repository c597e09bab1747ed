"""mariadb-dump / mysqldump, streamed: the native `sql` backup of a MySQL or MariaDB target.

The dump runs inside one consistent snapshot (`--single-transaction`, no table locks) and is
streamed through the worker into the sink, hashed and scanned on the way, so the checksum and the
exact rows per table cost no second read (`DumpScanner` counts the rows of the INSERT statements
the dump holds: there is no way to share mariadb-dump's snapshot with a second session for a
COUNT(*)). A dump without the tool's completion line is a failure, never a backup.
"""

from __future__ import annotations

import contextlib
import fcntl
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

import pymysql

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult, Progress, dies_with_worker, no_progress
from backup_engine.engines.mysql import catalog
from backup_engine.engines.mysql.client import require_tool
from backup_engine.engines.mysql.connect import classify_exception, classify_failure, client_run, connect
from backup_engine.targets import Target

READ_SIZE = 1 << 20
AHEAD_BLOCKS = 8  # how far the reading thread may run ahead of the worker (8 MiB)
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in the module from Python 3.10 on
END_MARKER = b"-- Dump completed"
SANDBOX_LINE = re.compile(rb"^/\*M?!999999\\- enable the sandbox mode \*/ ?\r?\n")
BASE_FLAGS = ("--single-transaction", "--hex-blob", "--default-character-set=utf8mb4", "--skip-lock-tables",
              "--no-tablespaces")
INCLUDE_DATA_FLAGS = {"full": ("--routines", "--triggers", "--events"),
                      "schema": ("--no-data", "--routines", "--triggers", "--events"),
                      "data": ("--no-create-info", "--skip-triggers", "--skip-routines", "--skip-events")}
NAME = rb"`((?:[^`]|``)*)`"
COLUMNS = rb"(?: \((?:`(?:[^`]|``)*`(?:, ?)?)*\))?"
# Where a statement of interest starts (dumps put every statement at the start of a line).
STATEMENT = re.compile(
    rb"^(?:CREATE TABLE " + NAME + rb" \("
    rb"|-- Dumping data for table " + NAME + rb"$"
    rb"|INSERT INTO " + NAME + COLUMNS + rb" VALUES( ?\(|\n)"
    rb"|-- Temporary (?:table|view) structure for view " + NAME + rb"$"
    rb"|DELIMITER ;;$)", re.M)
DELIMITER_END = re.compile(rb"^DELIMITER ;$", re.M)
STRING_LITERAL = re.compile(rb"'(?:[^'\\]|\\.)*'", re.S)


def unquote(name: bytes) -> str:
    return name.replace(b"``", b"`").decode("utf-8")


def count_rows(text: bytes, start: int, stop: int) -> int:
    """Rows of an INSERT's VALUES between `start` and `stop` (whole lines): each line ends one row
    (rows are written `(..),\n(..);` or `(..),(..);`: a raw newline never occurs inside a value), and
    on a line that holds a whole statement every `),(` outside a string literal separates two more."""
    rows = text.count(b"\n", start, stop)
    if rows <= 1 and text.find(b"),(", start, stop) != -1:  # several lines: one row each, `),(` only in strings
        rows += STRING_LITERAL.sub(b"''", text[start:stop]).count(b"),(")
    return rows


class DumpScanner:
    """Counts rows per table in a mysqldump / mariadb-dump file as it streams past, chunk by chunk.

    Tables are named by `CREATE TABLE` and by the `-- Dumping data for table` comments (so a
    data-only dump names its empty tables too); view placeholders are left out. Rows are the
    INSERT statements' tuples: MariaDB writes one row per line (raw newlines never occur inside a
    value, the dump escapes them), MySQL all rows of a statement on one line.
    Routine, trigger and event bodies (`DELIMITER ;;` blocks) are skipped, so an INSERT in a
    procedure is never counted.
    """

    def __init__(self) -> None:
        self.table_rows: dict[str, int] = {}
        self.views: set[str] = set()
        self.tail = b""
        self.head = b""
        self.size = 0
        self._carry = b""
        self._insert: str | None = None  # inside a one-row-per-line INSERT of this table
        self._delimited = False  # inside a DELIMITER ;; block

    def feed(self, chunk: bytes) -> None:
        if self.size < 256:
            self.head = (self.head + chunk[:256])[:256]
        self.size += len(chunk)
        self.tail = (self.tail + chunk[-256:])[-256:]
        data = self._carry + chunk if self._carry else chunk
        cut = data.rfind(b"\n") + 1
        self._carry = data[cut:]
        self._scan(data, cut)

    def _scan(self, text: bytes, limit: int) -> None:
        """Scan `text[:limit]` (whole lines)."""
        pos = 0
        while pos < limit:
            if self._insert is not None:
                end = text.find(b");\n", pos, limit)
                stop = limit if end == -1 else end + 3
                self.table_rows[self._insert] += count_rows(text, pos, stop)
                if end == -1:
                    return
                self._insert = None
                pos = stop
                continue
            if self._delimited:
                found = DELIMITER_END.search(text, pos, limit)
                if found is None:
                    return
                self._delimited = False
                pos = found.end()
                continue
            match = STATEMENT.search(text, pos, limit)
            if match is None:
                return
            created, dumped, inserted, opening, view = match.group(1, 2, 3, 4, 5)
            pos = match.end()
            if created is not None or dumped is not None:
                self.table_rows.setdefault(unquote(created if created is not None else dumped), 0)
            elif view is not None:
                self.views.add(unquote(view))
            elif inserted is not None:
                self._insert = unquote(inserted)
                self.table_rows.setdefault(self._insert, 0)
                if opening != b"\n":
                    pos = match.start(4)  # the first row is on the VALUES line
            else:
                self._delimited = True

    @property
    def counts(self) -> dict[str, int]:
        """Rows per table, views' placeholders left out."""
        return {name: rows for name, rows in self.table_rows.items() if name not in self.views}

    def check_complete(self) -> None:
        if self.size == 0:
            raise errors.DumpError(errors.EMPTY_DUMP)
        if not script_complete(self.tail):
            raise errors.DumpError(errors.INCOMPLETE_DUMP)


def drained(stream: BinaryIO, ahead: int = AHEAD_BLOCKS) -> Iterator[bytes]:
    """The stream's blocks, read by a thread of their own up to `ahead` blocks ahead of the
    consumer: the tool never waits while the worker scans, hashes and stores (memory stays
    bounded by `ahead` blocks)."""
    blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def pump() -> None:
        try:
            while not stop.is_set() and (block := stream.read(READ_SIZE)):
                blocks.put(block)
            blocks.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            blocks.put(exc)

    reader = threading.Thread(target=pump, name="dump-reader", daemon=True)
    reader.start()
    try:
        while (item := blocks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue, so it can end
            with contextlib.suppress(queue.Empty):
                blocks.get(timeout=0.1)


def widen_pipe(fd: int) -> None:
    """Let the tool write a whole block ahead while the worker hashes and stores the previous one."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, READ_SIZE)


def script_complete(tail: bytes) -> bool:
    """Whether a script ends as a complete dump: its last line is the completion line
    (`-- Dump completed on ...` of the tools, or the fallback's own)."""
    lines = tail.rstrip().splitlines()
    return bool(lines) and lines[-1].startswith(END_MARKER)


def dump_argv(run_argv: list[str], database: str, include_data: str) -> list[str]:
    return [*run_argv, *BASE_FLAGS, *INCLUDE_DATA_FLAGS[include_data], "--", database]


def dump_sql(target: Target, out: ByteSink, include_data: str, tools: ClientTools,
             progress: Progress = no_progress) -> DumpResult:
    """Stream the target's dump into `out`; raise unless it is complete."""
    tool = require_tool(tools.get("mysqldump"), "mysqldump", errors.DumpError)
    database = target.url.database or ""
    try:
        with connect(target) as conn, conn.cursor() as cur:  # fails fast, as TargetUnavailable, when it is down
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
            qualified = catalog.qualified_triggers(cur, database) if include_data != "data" else []
    except pymysql.err.MySQLError as exc:
        raise classify_exception(exc, default=errors.DumpError, default_message=errors.NATIVE_BACKUP_FAILED,
                                 target=target) from exc
    if qualified:
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, "the definition of trigger(s) "
                               f"{', '.join(qualified[:5])} names its database, so the tool's dump would "
                               "create it in that database whatever the restore's target")
    scanner = DumpScanner()
    with client_run(target) as run, tempfile.TemporaryFile() as stderr:
        argv = dump_argv(run.argv(tool), database, include_data)
        process = subprocess.Popen(dies_with_worker(argv), stdout=subprocess.PIPE, stderr=stderr,
                                   stdin=subprocess.DEVNULL, env=run.env, pass_fds=run.pass_fds)
        assert process.stdout is not None
        widen_pipe(process.stdout.fileno())
        blocks = drained(process.stdout)
        try:
            for chunk in blocks:
                scanner.feed(chunk)
                out.write(chunk)
                progress(phase="dump", bytes=scanner.size, tables=len(scanner.table_rows))
        except BaseException:
            process.kill()  # the reading thread then meets the end of the pipe and stops
            raise
        finally:
            blocks.close()
            process.stdout.close()
            returncode = process.wait()
        if returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace") or f"{tool} exited with {returncode}"
            raise classify_failure(message, default=errors.DumpError, default_message=errors.NATIVE_BACKUP_FAILED,
                                   target=target)
    scanner.check_complete()
    return DumpResult(method="mysqldump", server_version=version, table_rows=scanner.counts)
