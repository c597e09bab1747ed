"""One error tree for the whole engine.

Messages are module constants so that callers and tests match on them, and the three
messages of the system we replace keep their exact wording. `transient` tells the task layer
whether a retry can help (a server that is down) or not (a corrupt file).
"""

from __future__ import annotations

FALLBACK_FAILED = "SQLAlchemy backup fallback failed"
JSON_CONVERSION_FAILED = "Failed to convert JSON backup to SQL format"
UNSUPPORTED_PG_RESTORE = "Unsupported backup format for PostgreSQL restore"
UNSUPPORTED_SQLITE_RESTORE = "Unsupported backup format for SQLite restore"
UNSUPPORTED_MYSQL_RESTORE = "Unsupported backup format for MySQL restore"

NATIVE_BACKUP_FAILED = "Native backup failed"
EMPTY_DUMP = "The dump is empty"
INCOMPLETE_DUMP = "The dump is incomplete (no end marker)"
RESTORE_FAILED = "Restore failed; the target is unchanged"
CHECKSUM_MISMATCH = "Backup file does not match its manifest checksum"
MANIFEST_MISSING = "Backup has no manifest (an unfinished or foreign file)"
MANIFEST_INVALID = "Backup manifest is unreadable"
BACKUP_NOT_FOUND = "Backup file not found"
UNSAFE_PATH = "Refused path outside its folder"
BAD_FILENAME = "Invalid backup file name"
UNKNOWN_TARGET = "Unknown target"
TARGET_MISMATCH = "Backup belongs to another target"
UNKNOWN_FORMAT = "Unknown backup format"
UNKNOWN_INCLUDE_DATA = "Unknown include_data mode"
UNKNOWN_METHOD = "Unknown backup method"
UNSUPPORTED_DIALECT = "Unsupported database dialect"
TOOL_NOT_FOUND = "Client tool not found"
TARGET_UNREACHABLE = "Target database unreachable"
TARGET_MISSING = "Target database does not exist"
WRITE_FAILED = "Could not write the backup file"
CONFIG_INVALID = "Invalid configuration"
URL_UNREADABLE = "Not a database URL (driver://user:password@host:port/database)"
TARGET_BUSY = "Target busy"
VERIFY_FAILED = "Backup verification failed"
LOCK_UNAVAILABLE = "Could not take the target lock"
NAME_TAKEN = "An object already has this name; nothing was overwritten"
NOT_A_FILE = "Not a regular file (a link, folder or FIFO is never opened)"
OBJECT_TOO_LARGE = "Object is larger than allowed"
UNSUPPORTED_STORE = "Unsupported storage URL"
STATEMENT_TOO_LONG = "A statement is longer than allowed"
FOREIGN_BACKUP = "Backup belongs to another target or deployment"
UPLOAD_ROLE_REFUSED = "Refused to run an upload with this role"
LOCKS_WONT_FIT = "The restore would not fit in one transaction on this server"
ROW_COUNTS_DIFFER = "The restored rows differ from the backup's manifest"
BAD_ARGUMENT = "Invalid argument"
COMPRESSION_INVALID = "Invalid BACKUP_COMPRESSION (use zstd, gzip or none, optionally with a level as zstd:9)"
COMPRESSED_DATA_CORRUPT = "Compressed backup data is corrupt or truncated"
RECIPIENT_INVALID = "BACKUP_ENCRYPTION_RECIPIENTS holds an invalid age recipient (expected age1...)"
IDENTITY_FILE_INVALID = "BACKUP_ENCRYPTION_IDENTITY_FILE is unreadable or holds no valid AGE-SECRET-KEY-1... line"
IDENTITY_MISSING = "The backup is encrypted and BACKUP_ENCRYPTION_IDENTITY_FILE is not set"
IDENTITY_MISMATCH = "No identity in BACKUP_ENCRYPTION_IDENTITY_FILE can decrypt this backup"
ENCRYPTED_DATA_CORRUPT = "Encrypted backup data is corrupt or truncated"
ENCRYPTION_FAILED = "Could not encrypt the backup"
STORE_UNAVAILABLE = "Object store unreachable or failing"
STORE_ACCESS_DENIED = "Object store refused the credentials or the request"
STORE_BUCKET_MISSING = "Object store bucket does not exist"
STORE_NO_CREDENTIALS = "No credentials for the object store (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
STORE_REQUEST_FAILED = "Object store request failed"
UPLOAD_ABORTED = "The object store no longer has this upload (swept or aborted)"
TOO_MANY_PARTS = "The stream needs more parts than the object store allows"
UPLOAD_REFUSED = "Refused upload statement"
FRAGMENT_REFUSED = "Refused SQL fragment in an uploaded document"
UNTRUSTED_MYSQL_SQL = ("Untrusted SQL is not restored into MySQL (there is no parser gate for MySQL); "
                       "upload a JSON backup instead, which is converted by the worker")
SWAP_PENDING = "An interrupted restore of this target is not recovered yet"
ROW_COUNT_MISMATCH = "The restored rows differ from the backup's manifest"
JSON_BACKUP_FAILED = "JSON backup failed"
BATCH_OUT_OF_ORDER = ("JSON backup failed: the server returned a batch of tables' rows out of order "
                      "(a parallel plan?); no document was written")
CLIENT_STOPPED_READING = "the client stopped reading before the end of the file"
BAD_ARCHIVE = "The stored pg_dump archive is malformed"
PGDUMP_DATA_ONLY = "a pgdump archive is full or schema only (use format=sql for a data-only backup)"
PGDUMP_NEEDS_CREATEDB = ("A pgdump backup restores into a database built beside the target: grant CREATEDB to the "
                         "role, or restore a sql backup")
PGDUMP_NOT_UPLOADED = "a tar archive (pgdump backup) restores only from this worker's own signed backups"
CANNOT_CARRY = "cannot carry"  # what a backup refuses up front: "<message>: cannot carry <object>, <object>"


class BackupError(Exception):
    """Base of every engine error: `message` is a constant above, `detail` the specifics."""

    transient = False

    def __init__(self, message: str, detail: str | None = None) -> None:
        self.message = message
        self.detail = detail
        super().__init__(f"{message}: {detail}" if detail else message)


class ConfigError(BackupError):
    """A setting is wrong; raised at start so the worker never runs half-configured."""


class InvalidRequest(BackupError):
    """An argument from outside is wrong: unknown target, format, or an unsafe path."""


class ArtifactError(BackupError):
    """A backup file or its manifest is missing, foreign, or does not match its checksum."""


class DumpError(BackupError):
    """Taking a backup failed; no artifact was left behind."""


class WriteFailed(DumpError):
    """The backup folder could not take the file (disk full, quota, read-only, I/O error)."""


class RestoreError(BackupError):
    """Restoring failed; the target is as it was before."""


class ConversionError(BackupError):
    """A JSON backup could not be turned into SQL."""


class TargetUnavailable(BackupError):
    """The database server cannot be reached: worth retrying later."""

    transient = True


class StoreError(BackupError):
    """The object store refused a request in a way a retry does not change (a bad request)."""


class StoreUnavailable(StoreError):
    """The object store cannot be reached or keeps failing (5xx, throttling, timeouts after the
    client's own retries): worth retrying the task later."""

    transient = True


class TargetBusy(BackupError):
    """Another backup or restore of the same target holds its lock."""


class UploadRefused(InvalidRequest):
    """The upload gate refused a statement. Its str is the whole sentence a user reads,
    `Refused upload statement at line 812: ALTER ROLE`; `detail` is what was refused and
    `line` where. Built by `refused()`; the one-argument constructor keeps pickling and
    Celery's exception round trip working."""

    def __init__(self, sentence: str, line: int = 0, what: str = "") -> None:
        Exception.__init__(self, sentence)
        self.message = UPLOAD_REFUSED
        self.detail = what or sentence
        self.line = line

    @classmethod
    def at(cls, line: int, what: str) -> UploadRefused:
        return cls(f"{UPLOAD_REFUSED} at line {line}: {what}", line, what)
