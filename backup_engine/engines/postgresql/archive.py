"""The `pgdump` format: pg_dump's directory archive, dumped and restored by N jobs in parallel.

For a big database one pg_dump is one core reading one table at a time; `pg_dump -Fd -j N`
reads N tables at once from one exported snapshot, and `pg_restore -j N` loads them (and builds
their indexes) N at a time. The archive is a folder, so it is stored as one object: a tar stream
of its files, written once the dump is complete, which the store's stages compress (pg_dump's
own compression is off: zstd does better and hashes on the way).

Row counts come from the archive itself: each table's data file is COPY text ending in `\\.`,
counted as the tar stream reads it, and named through the archive's table of contents (the
table's oid) and the catalog read in the dump's own snapshot, so counts and names describe the
same state as the data.

A restore unpacks the stream into a private scratch folder (only the file names pg_dump
writes, only regular files), checks the checksum, then runs `pg_restore -j N` into a database
built beside the target: no transaction could hold a parallel restore, so all or nothing comes
from the swap, as for every restore of a PostgreSQL target. Archives are never taken from
uploads: only our own signed backups are in this format.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult, Progress, dies_with_worker, no_progress
from backup_engine.engines.base import ArtifactSource
from backup_engine.engines.postgresql.connect import classify_failure, client_run, connect
from backup_engine.engines.postgresql.native import server_version
from backup_engine.engines.postgresql.psql import require_tool
from backup_engine.engines.postgresql.restore import SYSTEM_SCHEMAS
from backup_engine.scratch import private_folder
from backup_engine.targets import Target

BLOCK = 1 << 20
ARCHIVE_FOLDER = "archive"
# The files pg_dump writes into a directory archive (uncompressed), and nothing else.
MEMBER_NAME = re.compile(r"toc\.dat|blobs\.toc|[0-9]{1,10}\.dat|blob_[0-9]{1,10}\.dat")
TABLE_DATA_FILE = re.compile(r"([0-9]{1,10})\.dat")
# `pg_restore -l`: "3350; 0 16386 TABLE DATA schema name owner": dump id, then the table's oid.
TABLE_DATA_ENTRY = re.compile(rb"^([0-9]+); 0 ([0-9]+) TABLE DATA ", re.M)
COPY_END = b"\\.\n\n\n"  # how pg_dump ends every table data file
INCLUDE_DATA_FLAGS = {"full": [], "schema": ["--schema-only"]}
PARALLEL_MIN_BYTES = 64 << 20  # below this much table data, an archive is restored by one job
# The user tables by oid, under the names table_rows uses everywhere (pg_dump's quote_ident form).
TABLES_BY_OID = """
    SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'"""


def restore_jobs(directory: Path, jobs: int) -> int:
    """`jobs`, or one job for an archive with less than PARALLEL_MIN_BYTES of table data: parallel
    jobs help only where there is data to load side by side, and on thousands of tiny tables
    their per-item handoff costs more than it saves (`pg_restore -j 2` of 5,000 tables: 5.9 s,
    against 3.5 s with one job)."""
    data = sum(entry.stat().st_size for entry in directory.iterdir() if TABLE_DATA_FILE.fullmatch(entry.name))
    return jobs if data >= PARALLEL_MIN_BYTES else 1


def default_jobs() -> int:
    """Parallel jobs when none are configured: the cores, at least 2, at most 4 (each job is a
    server connection and a server process)."""
    return max(2, min(4, os.cpu_count() or 2))


def dump_archive(target: Target, out: ByteSink, include_data: str, tools: ClientTools, jobs: int,
                 scratch_dir: Path, progress: Progress = no_progress) -> DumpResult:
    """`pg_dump -Fd -j jobs` of the target from a snapshot of ours, streamed into `out` as tar."""
    if include_data not in INCLUDE_DATA_FLAGS:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, errors.PGDUMP_DATA_ONLY)
    pg_dump = require_tool(tools.get("pg_dump"), "pg_dump")
    version = server_version(target)
    with private_folder(scratch_dir) as folder, connect(target) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
            cur.execute(TABLES_BY_OID, (SYSTEM_SCHEMAS,))
            names = {oid: display for oid, display in cur.fetchall()}
        directory = folder / ARCHIVE_FOLDER
        progress(phase="dump", jobs=jobs)
        # --no-sync: the folder is scratch, read once into the store (which syncs what it keeps)
        run_tool(target, [pg_dump, "--format=directory", f"--jobs={jobs}", "--compress=0", f"--snapshot={snapshot}",
                          "--no-sync", "--no-owner", "--no-privileges", "--no-password", "--file", str(directory),
                          *INCLUDE_DATA_FLAGS[include_data]], errors.DumpError, errors.NATIVE_BACKUP_FAILED)
        conn.rollback()  # the snapshot may go: the dump is complete
        tables = table_files(tools, directory, names)
        table_rows = {display: 0 for display in names.values()}
        table_rows.update(write_tar(directory, out, tables, progress))
    return DumpResult(method="pg_dump", server_version=version, table_rows=table_rows)


def table_files(tools: ClientTools, directory: Path, names: dict[int, str]) -> dict[str, str]:
    """Data file name -> the table it fills, from the archive's table of contents."""
    pg_restore = require_tool(tools.get("pg_restore"), "pg_restore")
    listing = subprocess.run([pg_restore, "--list", str(directory)], capture_output=True, stdin=subprocess.DEVNULL,
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"})
    if listing.returncode != 0:
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, listing.stderr.decode("utf-8", "replace").strip())
    files = {}
    for dump_id, oid in TABLE_DATA_ENTRY.findall(listing.stdout):
        if int(oid) not in names:
            raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"table data of an unknown table (oid {int(oid)})")
        files[f"{int(dump_id)}.dat"] = names[int(oid)]
    return files


class _RowCounter:
    """A data file read through for the tar stream, counting its COPY lines on the way."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.newlines = 0
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self.newlines += chunk.count(b"\n")
        self.tail = (self.tail + chunk)[-len(COPY_END):]
        return chunk

    def rows(self, name: str) -> int:
        if self.tail != COPY_END:
            raise errors.DumpError(errors.INCOMPLETE_DUMP, f"table data file {name} does not end its COPY")
        return self.newlines - COPY_END.count(b"\n")


def write_tar(directory: Path, out: ByteSink, tables: dict[str, str], progress: Progress) -> dict[str, int]:
    """The archive's files as one tar stream (the table of contents first); rows per table."""
    names = sorted(os.listdir(directory), key=lambda name: (name != "toc.dat", name))
    rows: dict[str, int] = {}
    written = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=BLOCK) as tar:  # type: ignore[call-overload]
        tar.copybufsize = BLOCK  # tarfile's 16 KiB default costs a pass through every stage per block
        for name in names:
            path = directory / name
            if not MEMBER_NAME.fullmatch(name) or not path.is_file():
                raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"unexpected file in pg_dump's archive: {name!r}")
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o600
            with path.open("rb") as handle:
                counter = _RowCounter(handle)
                tar.addfile(info, counter)  # type: ignore[arg-type]
            if name in tables:
                rows[tables[name]] = counter.rows(name)
            written += info.size
            progress(phase="archive", bytes=written)
    return rows


def unpack(content: BinaryIO, directory: Path) -> None:
    """A stored archive's tar stream into `directory`: only pg_dump's own file names, only
    regular files, each created new (a name given twice is refused)."""
    directory.mkdir(mode=0o700)
    try:
        with tarfile.open(fileobj=content, mode="r|", bufsize=BLOCK) as tar:
            for member in tar:
                if not member.isreg() or not MEMBER_NAME.fullmatch(member.name):
                    raise errors.ArtifactError(errors.BAD_ARCHIVE, f"member {member.name!r}")
                source = tar.extractfile(member)
                assert source is not None
                with open(directory / member.name, "xb") as handle:
                    while block := source.read(BLOCK):
                        handle.write(block)
    except (tarfile.TarError, FileExistsError) as exc:
        raise errors.ArtifactError(errors.BAD_ARCHIVE, str(exc)) from exc
    while content.read(BLOCK):
        pass  # tar's end blocks may stop short of the stream's end: read it all for the checksum
    if not (directory / "toc.dat").is_file():
        raise errors.ArtifactError(errors.BAD_ARCHIVE, "no toc.dat")


def restore_archive(database: Target, source: ArtifactSource, tools: ClientTools, jobs: int,
                    scratch_dir: Path, progress: Progress = no_progress) -> None:
    """The archive into `database` (new and empty), by `jobs` parallel jobs, once its checksum
    has been checked: nothing is loaded from a file that does not match its manifest."""
    pg_restore = require_tool(tools.get("pg_restore"), "pg_restore", errors.RestoreError)
    with private_folder(scratch_dir) as folder:
        directory = folder / ARCHIVE_FOLDER
        with source.open() as content:
            unpack(content, directory)
            source.verify()
        jobs = restore_jobs(directory, jobs)
        progress(phase="restore", jobs=jobs)
        run_tool(database, [pg_restore, "--format=directory", f"--jobs={jobs}", "--no-owner", "--no-privileges",
                            "--exit-on-error", "--no-password", "--dbname", conninfo_dbname(database),
                            str(directory)], errors.RestoreError, errors.RESTORE_FAILED)


def conninfo_dbname(database: Target) -> str:
    """`--dbname` as a libpq conninfo naming only the database (a bare name holding `=` would be
    read as a connection string); host, user and password come from client_run's environment."""
    name = (database.url.database or "postgres").replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{name}'"


def run_tool(target: Target, argv: list[str], error: type[errors.BackupError], message: str) -> None:
    """pg_dump or pg_restore with the target's connection; its failure classified like psql's."""
    with client_run(target) as run, tempfile.TemporaryFile() as stderr:
        returncode = subprocess.run(dies_with_worker(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=stderr,
                                    env=run.env, pass_fds=run.pass_fds).returncode
        if returncode != 0:
            stderr.seek(0)
            text = stderr.read().decode("utf-8", "replace") or f"{Path(argv[0]).name} exited with {returncode}"
            raise classify_failure(text, default=error, default_message=message, target=target)
