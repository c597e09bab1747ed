"""The S3 client, its retry policy, part sizes, and S3 errors as the engine's errors.

Retries: botocore's `standard` mode (exponential backoff with jitter, at most 20 s between tries;
throttling, 5xx, `RequestTimeout` and connection errors are retried, and it corrects clock skew)
with 10 attempts in all, so a store that is down for about a minute costs a slower backup, not a
failed one. `AWS_RETRY_MODE` and `AWS_MAX_ATTEMPTS` still override it. What is left after that
is mapped here: a retry of the task later can fix an unreachable or overloaded store
(`StoreUnavailable`, transient); it cannot fix credentials, permissions or a missing bucket
(`ConfigError`) nor a malformed request (`StoreError`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from backup_engine import errors

MiB = 1 << 20
GiB = 1 << 30
INITIAL_PART_SIZE = 16 * MiB
MAX_PART_SIZE = 5 * GiB  # S3's limit for one part
MAX_PARTS = 10_000  # S3's limit; many compatible services allow only 1,000 (see `part_size`)
PARTS_PER_STEP = 100
DEFAULT_ATTEMPTS = 10

NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
NO_UPLOAD = {"NoSuchUpload"}
NAME_TAKEN = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
NO_BUCKET = {"NoSuchBucket"}
DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
          "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "RequestTimeTooSkewed",
          "InvalidSecurity", "NotSignedUp"}
BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling", "ThrottlingException",
        "RequestLimitExceeded", "TooManyRequests", "RequestTimeoutException", "BandwidthLimitExceeded"}


def part_size(part_number: int, initial: int = INITIAL_PART_SIZE) -> int:
    """The size of part `part_number` (from 1) of a stream of unknown length: `initial` for the
    first 100 parts, doubling every 100 parts after, capped at S3's 5 GiB. From 16 MiB, 100
    parts hold 1.6 GB, 500 parts 50 GB, and 1 TiB fits in 946 parts: under the 1,000 parts
    that many S3-compatible services allow, with parts small while the stream is small."""
    return min(initial << ((part_number - 1) // PARTS_PER_STEP), MAX_PART_SIZE)


def capacity(parts: int, initial: int = INITIAL_PART_SIZE) -> int:
    """How many bytes `parts` parts hold under `part_size` (for tests and the docs)."""
    return sum(part_size(number, initial) for number in range(1, parts + 1))


def endpoint_configured() -> bool:
    return bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))


def make_client() -> BaseClient:
    """An S3 client from the standard AWS_* variables (botocore reads them itself, including
    AWS_ENDPOINT_URL); path-style addressing when an endpoint is set, which every self-hosted
    service (MinIO, Ceph, a test server on an IP address) understands."""
    retries: dict = {"mode": os.environ.get("AWS_RETRY_MODE") or "standard"}
    attempts = os.environ.get("AWS_MAX_ATTEMPTS")
    try:
        retries["total_max_attempts"] = int(attempts) if attempts else DEFAULT_ATTEMPTS
    except ValueError:
        raise errors.ConfigError(errors.CONFIG_INVALID, "AWS_MAX_ATTEMPTS must be a whole number") from None
    config = Config(retries=retries, connect_timeout=10, read_timeout=120, max_pool_connections=10,
                    s3={"addressing_style": "path"} if endpoint_configured() else None)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    try:
        return boto3.session.Session().client("s3", region_name=region, config=config)
    except BotoCoreError as exc:
        raise errors.ConfigError(errors.UNSUPPORTED_STORE, type(exc).__name__) from None


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def store_error(exc: BaseException, name: str | None = None) -> errors.BackupError:
    """An S3 failure as an engine error: the code and status only (never headers or keys)."""
    where = f" ({name})" if name else ""
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        detail = f"{code or 'error'} (HTTP {status}){where}"
        if code in NOT_FOUND or (status == 404 and code not in NO_BUCKET | NO_UPLOAD):
            return errors.ArtifactError(errors.BACKUP_NOT_FOUND, name or detail)
        if code in NO_BUCKET:
            return errors.ConfigError(errors.STORE_BUCKET_MISSING, detail)
        if code in NO_UPLOAD:
            return errors.StoreUnavailable(errors.UPLOAD_ABORTED, detail)
        if code in DENIED or status in (401, 403):
            return errors.ConfigError(errors.STORE_ACCESS_DENIED, detail)
        if code in BUSY or status >= 500 or status == 429:
            return errors.StoreUnavailable(errors.STORE_UNAVAILABLE, detail)
        return errors.StoreError(errors.STORE_REQUEST_FAILED, detail)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return errors.ConfigError(errors.STORE_NO_CREDENTIALS)
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError | CredentialRetrievalError):
        return errors.StoreUnavailable(errors.STORE_UNAVAILABLE, f"{type(exc).__name__}{where}")
    return errors.StoreError(errors.STORE_REQUEST_FAILED, f"{type(exc).__name__}{where}")


@contextmanager
def s3_errors(name: str | None = None) -> Iterator[None]:
    """Raise S3 failures inside the block as engine errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, name) from exc
