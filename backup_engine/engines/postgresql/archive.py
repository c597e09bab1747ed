"""The `pgdump` format: pg_dump's directory archive, dumped and restored by N jobs in parallel.

For a big database one pg_dump is one core reading one table at a time; `pg_dump -Fd -j N`
reads N tables at once from one exported snapshot, and `pg_restore -j N` loads them (and builds
their indexes) N at a time. The archive is a folder, so it is stored as one object: a tar stream
of its files, written once the dump is complete, which the store's stages compress (pg_dump's
own compression is off: zstd does better and hashes on the way). Jobs pay only for big tables:
a database without enough data in big tables (`parallel_worth`) is dumped by one pg_dump as tar
on its standard output and restored by one pg_restore fed as the object is read, with no folder
of thousands of files (`archive_stream`); the stored object is the same either way.

Row counts come from the archive itself: each table's data file is COPY text ending in `\\.`,
counted as the tar stream passes, and named through the archive's table of contents (the
table's oid) and the catalog read in the dump's own snapshot, so counts and names describe the
same state as the data.

A restore reads the stream's members (only the file names pg_dump writes, only regular files)
into a database built beside the target: no transaction could hold a parallel restore, so all
or nothing comes from the swap, as for every restore of a PostgreSQL target. The object was
checked against its manifest before the restore began (`Catalogue.check`), and is checked again
as it is read (it could be changed in between): an unpacked archive before pg_restore starts, a
streamed one by the end of the stream, a mismatch failing the restore before the swap (the
database beside, into which pg_restore may have loaded it, is dropped). Archives are never taken
from uploads: only our own signed backups are in this format.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult, Progress, dies_with_worker, no_progress
from backup_engine.engines.base import ArtifactSource
from backup_engine.engines.clients import feed_client
from backup_engine.engines.postgresql import archive_stream
from backup_engine.engines.postgresql.archive_members import (
    BLOCK,
    READ_BUFFER,
    TABLE_DATA_FILE,
    TOC,
    RowCounter,
    TarOut,
    checked_member,
    copy_member,
    unexpected_in_dump,
)
from backup_engine.engines.postgresql.connect import classify_failure, client_run, connect
from backup_engine.engines.postgresql.psql import require_tool
from backup_engine.engines.postgresql.restore import SYSTEM_SCHEMAS
from backup_engine.engines.postgresql.table_sizes import large_object_bytes, table_sizes
from backup_engine.scratch import private_folder
from backup_engine.targets import Target

ARCHIVE_FOLDER = "archive"
# `pg_restore -l`: "3350; 0 16386 TABLE DATA schema name owner": dump id, then the table's oid.
TABLE_DATA_ENTRY = re.compile(rb"^([0-9]+); 0 ([0-9]+) TABLE DATA ", re.M)
# Large objects in the table of contents (their files follow blobs.toc's order, not the table of contents').
LARGE_OBJECTS_ENTRY = re.compile(rb"^[0-9]+; [0-9]+ [0-9]+ (BLOBS|LARGE OBJECTS) ", re.M)
INCLUDE_DATA_FLAGS = {"full": [], "schema": ["--schema-only"]}
# Parallel jobs order an archive's items by the dependencies pg_dump records, and a NOT VALID
# CHECK of a domain (post-data) depends on its domain only: in the same run it may come before the
# rows of a table that uses the domain, which it then refuses ("violates check constraint"). So a
# parallel restore loads the data in a run of its own, then what comes after it.
PARALLEL_PASSES = [["--section=pre-data", "--section=data"], ["--section=post-data"]]
# Parallel jobs pay only for big tables: a job per table of a few pages costs more in handoffs than
# it saves (`pg_restore -j 2` of 5,000 tiny tables: 5.9 s, one job 3.5 s; `pg_dump -Fd -j 2` 4.2 s,
# `-Ft` to a pipe 3.0 s). Jobs are used when tables of at least PARALLEL_TABLE_BYTES hold
# PARALLEL_MIN_BYTES in all; else one job, and a dump streamed as tar.
PARALLEL_MIN_BYTES = 64 << 20
PARALLEL_TABLE_BYTES = 1 << 20
# The user tables by oid, under the names table_rows uses everywhere (pg_dump's quote_ident form).
TABLES_BY_OID = """
    SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'"""


def parallel_worth(sizes: Iterable[int]) -> bool:
    """Whether tables of these sizes (bytes) are worth parallel jobs (see PARALLEL_MIN_BYTES)."""
    return sum(size for size in sizes if size >= PARALLEL_TABLE_BYTES) >= PARALLEL_MIN_BYTES


def restore_jobs(directory: Path, jobs: int) -> int:
    """`jobs` when the archive's table data files are worth them (`parallel_worth`), else one."""
    sizes = (entry.stat().st_size for entry in directory.iterdir() if TABLE_DATA_FILE.fullmatch(entry.name))
    return jobs if parallel_worth(sizes) else 1


def default_jobs() -> int:
    """Parallel jobs when none are configured: the cores, at least 2, at most 4 (each job is a
    server connection and a server process)."""
    return max(2, min(4, os.cpu_count() or 2))


def dump_archive(target: Target, out: ByteSink, include_data: str, tools: ClientTools, jobs: int,
                 scratch_dir: Path, progress: Progress = no_progress) -> DumpResult:
    """pg_dump's archive of the target, from a snapshot of ours, streamed into `out` as tar: by
    `jobs` in parallel (`-Fd`, through a folder) when its big tables are worth it, else as tar
    on pg_dump's standard output (`archive_stream`)."""
    if include_data not in INCLUDE_DATA_FLAGS:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, errors.PGDUMP_DATA_ONLY)
    pg_dump = require_tool(tools.get("pg_dump"), "pg_dump")
    with private_folder(scratch_dir) as folder, connect(target) as conn, contextlib.ExitStack() as stack:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot(), pg_catalog.current_setting('server_version')")
            snapshot, version = cur.fetchone()
            cur.execute(TABLES_BY_OID, (SYSTEM_SCHEMAS,))
            names = dict(cur.fetchall())
        directory = folder / ARCHIVE_FOLDER
        directory.mkdir(mode=0o700)

        listings: list[TocListing] = []

        def list_toc() -> None:  # once the folder holds toc.dat: it runs while the data files come
            listings.append(stack.enter_context(TocListing(tools, directory)))

        common = [f"--snapshot={snapshot}", "--no-owner", "--no-privileges", "--no-password",
                  *INCLUDE_DATA_FLAGS[include_data]]
        with archive_stream.TarDump(target, [pg_dump, "--format=tar", *common]) as tar_dump:
            parallel = include_data != "schema" and _parallel_worth(conn)  # while pg_dump reads its catalog
            if not parallel:
                progress(phase="dump", jobs=1)
                counters = tar_dump.rewrite(out, directory, progress, list_toc)
        if parallel:  # --no-sync: the folder is scratch, read once into the store (which syncs what it keeps)
            progress(phase="dump", jobs=jobs)
            directory.rmdir()  # pg_dump makes it
            run_tool(target, [pg_dump, "--format=directory", f"--jobs={jobs}", "--compress=0", "--no-sync",
                              "--file", str(directory), *common], errors.DumpError, errors.NATIVE_BACKUP_FAILED)
            list_toc()
            counters = write_tar(directory, out, progress)
        conn.rollback()  # the snapshot may go: the dump is complete
        table_rows = {display: 0 for display in names.values()}
        if not listings:
            list_toc()
        for file, table in table_files(listings[0].result(), names).items():
            if file not in counters:
                raise errors.DumpError(errors.INCOMPLETE_DUMP, f"no data file {file} for table {table}")
            table_rows[table] = counters[file].rows(file)
    return DumpResult(method="pg_dump", server_version=version, table_rows=table_rows)


def _parallel_worth(conn: Any) -> bool:
    """Whether the database's tables (heap and TOAST) and large objects are worth parallel jobs."""
    return parallel_worth([size.total for size in table_sizes(conn).values()] + [large_object_bytes(conn)])


class TocListing:
    """`pg_restore --list` of the archive in a folder, started as soon as its toc.dat is there (it
    reads nothing else), so that it runs while the data files are still coming; `result()` waits
    for it. Listed after the dump, it was 0.07 s of a 1,000-table `pgdump` backup on its own."""

    def __init__(self, tools: ClientTools, directory: Path, error: type[errors.BackupError] = errors.DumpError
                 ) -> None:
        pg_restore = require_tool(tools.get("pg_restore"), "pg_restore")
        self._error = error
        with contextlib.ExitStack() as files:
            self._stdout = files.enter_context(tempfile.TemporaryFile())
            self._stderr = files.enter_context(tempfile.TemporaryFile())
            self._process = subprocess.Popen([pg_restore, "--list", str(directory)], stdin=subprocess.DEVNULL,
                                             stdout=self._stdout, stderr=self._stderr,
                                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"})
            files.pop_all()

    def __enter__(self) -> TocListing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stdout.close()
        self._stderr.close()

    def result(self) -> bytes:
        """The listing; `error` (BAD_ARCHIVE, or NATIVE_BACKUP_FAILED for a dump) if pg_restore refused it."""
        if self._process.wait() != 0:
            message = errors.NATIVE_BACKUP_FAILED if self._error is errors.DumpError else errors.BAD_ARCHIVE
            self._stderr.seek(0)
            raise self._error(message, self._stderr.read().decode("utf-8", "replace").strip())
        self._stdout.seek(0)
        return self._stdout.read()


def toc_listing(tools: ClientTools, directory: Path, error: type[errors.BackupError] = errors.DumpError) -> bytes:
    """`pg_restore --list` of the archive in `directory` (only its toc.dat is read)."""
    with TocListing(tools, directory, error) as listing:
        return listing.result()


def table_files(listing: bytes, names: dict[int, str]) -> dict[str, str]:
    """Data file name -> the table it fills, from the archive's table of contents."""
    files = {}
    for dump_id, oid in TABLE_DATA_ENTRY.findall(listing):
        if int(oid) not in names:
            raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"table data of an unknown table (oid {int(oid)})")
        files[f"{int(dump_id)}.dat"] = names[int(oid)]
    return files


def data_order(listing: bytes) -> list[str]:
    """The table data files in the order a one-pass restore reads them: the table of contents'."""
    return [f"{int(dump_id)}.dat" for dump_id, _ in TABLE_DATA_ENTRY.findall(listing)]


def write_tar(directory: Path, out: ByteSink, progress: Progress) -> dict[str, RowCounter]:
    """The archive's files as one tar stream (the table of contents first); each file's row counter."""
    names = sorted(os.listdir(directory), key=lambda name: (name != TOC, name))
    counters: dict[str, RowCounter] = {}
    written = 0
    tar = TarOut(out)
    for index, name in enumerate(names):
        path = directory / name
        info = tarfile.TarInfo(name)
        info.type = tarfile.REGTYPE if path.is_file() else tarfile.DIRTYPE
        checked_member(info, first=index == 0, refuse=unexpected_in_dump)
        size = path.stat().st_size
        with path.open("rb") as handle:
            counters[name] = tar.add(name, size, handle)
        written += size
        progress(phase="archive", bytes=written)
    tar.close()
    return counters


def _bad_archive(what: str) -> errors.BackupError:
    return errors.ArtifactError(errors.BAD_ARCHIVE, what)


def _members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
    """The stored archive's members after its table of contents (read by `tar.next()`: iterating a
    TarFile would start again from the members it already read), each checked before it is read."""
    while (member := tar.next()) is not None:
        checked_member(member, first=False, refuse=_bad_archive)
        reader = tar.extractfile(member)
        assert reader is not None
        yield member, reader


def restore_archive(database: Target, source: ArtifactSource, tools: ClientTools, jobs: int,
                    scratch_dir: Path, content_bytes: int | None = None, progress: Progress = no_progress) -> None:
    """The archive into `database` (new and empty; the caller drops it if this fails), checked
    against its manifest: an archive worth parallel jobs is unpacked into a scratch folder,
    checked, and restored by `jobs`; a smaller one (`content_bytes` under PARALLEL_MIN_BYTES, no
    large objects) is fed to one `pg_restore` as it is read, and checked by the stream's end."""
    pg_restore = require_tool(tools.get("pg_restore"), "pg_restore", errors.RestoreError)
    with private_folder(scratch_dir) as folder:
        directory = folder / ARCHIVE_FOLDER
        directory.mkdir(mode=0o700)

        with source.open() as content:
            stream = io.BufferedReader(content, BLOCK)  # tarfile reads it READ_BUFFER at a time
            try:
                with tarfile.open(fileobj=stream, mode="r|", bufsize=READ_BUFFER) as tar:
                    listing = _table_of_contents(tar, tools, directory)
                    if _one_pass(content_bytes, listing):
                        _restore_streamed(database, pg_restore, directory, data_order(listing), _members(tar),
                                          lambda: _drain_and_verify(stream, source), progress)
                        return
                    for member, reader in _members(tar):
                        copy_member(reader, directory / member.name)
            except (tarfile.TarError, FileExistsError) as exc:
                raise errors.ArtifactError(errors.BAD_ARCHIVE, str(exc)) from exc
            _drain_and_verify(stream, source)
        jobs = restore_jobs(directory, jobs)
        progress(phase="restore", jobs=jobs, archive="unpacked")
        for sections in PARALLEL_PASSES if jobs > 1 else [[]]:
            run_tool(database, [pg_restore, "--format=directory", f"--jobs={jobs}", *sections,
                                *_restore_flags(database), str(directory)], errors.RestoreError, errors.RESTORE_FAILED)


def _table_of_contents(tar: tarfile.TarFile, tools: ClientTools, directory: Path) -> bytes:
    """The stored archive's first member, its table of contents, into `directory`; its listing."""
    toc = tar.next()
    if toc is None:
        raise _bad_archive(f"no {TOC}")
    checked_member(toc, first=True, refuse=_bad_archive)
    copy_member(tar.extractfile(toc), directory / TOC)  # type: ignore[arg-type]
    return toc_listing(tools, directory, errors.ArtifactError)


def _one_pass(content_bytes: int | None, listing: bytes) -> bool:
    """Whether the archive is restored by one pg_restore fed as it is read: small, and without large
    objects (their files follow blobs.toc's order, not the table of contents')."""
    return content_bytes is not None and content_bytes < PARALLEL_MIN_BYTES and not LARGE_OBJECTS_ENTRY.search(listing)


def _drain_and_verify(content: BinaryIO, source: ArtifactSource) -> None:
    while content.read(BLOCK):
        pass  # tar's end blocks may stop short of the stream's end: read it all for the checksum
    source.verify()


def _restore_flags(database: Target) -> list[str]:
    return ["--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--dbname",
            conninfo_dbname(database)]


def _restore_streamed(database: Target, pg_restore: str, directory: Path, order: list[str],
                      members: Iterator[tuple[tarfile.TarInfo, BinaryIO]], verify: Callable[[], None],
                      progress: Progress) -> None:
    progress(phase="restore", jobs=1, archive="streamed")
    feed = archive_stream.ordered_archive(members, directory / TOC, order, directory, verify)
    with client_run(database) as run:
        ended = feed_client(dies_with_worker([pg_restore, "--format=tar", *_restore_flags(database)]), run.env,
                            run.pass_fds, feed, lambda _tail: None)
    if ended.returncode != 0:
        raise classify_failure(ended.stderr or f"pg_restore exited with {ended.returncode}",
                               default=errors.RestoreError, default_message=errors.RESTORE_FAILED, target=database)
    if ended.stopped_reading:
        raise errors.RestoreError(errors.RESTORE_FAILED, errors.CLIENT_STOPPED_READING)


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
