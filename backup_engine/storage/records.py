"""Operation records kept in the store: the last failure of each operation on each target, and the
last verify that passed. Every worker and every metrics exporter reads the same records, so they
agree on what happened whichever worker it happened on.

One small signed object per (target, operation, outcome), replaced in place:
`{prefix}_db_status_{target}_{operation}_{outcome}.json`. Its name never looks like a backup's, so
listings and retention never see it; an unsigned or edited record is ignored.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from datetime import datetime

from backup_engine import errors
from backup_engine.storage.catalogue import Catalogue, utc_now
from backup_engine.trust.manifest import parse_time

OPERATIONS = ("backup", "restore", "verify")
OUTCOMES = ("failure", "success")
MAX_RECORD_BYTES = 64 * 1024
REASON_CHARS = 2000


@dataclass(frozen=True)
class OperationRecord:
    target: str
    operation: str
    outcome: str
    at: str  # ISO 8601, UTC
    reason: str | None = None
    file: str | None = None
    host: str = ""

    @property
    def moment(self) -> datetime:
        return parse_time(self.at)


def record_name(prefix: str, target: str, operation: str, outcome: str) -> str:
    return f"{prefix}_db_status_{target}_{operation}_{outcome}.json"


def write_record(catalogue: Catalogue, prefix: str, target: str, operation: str, outcome: str,
                 reason: str | None = None, file: str | None = None) -> OperationRecord:
    """Replace the record of this operation's last `outcome` on `target`."""
    record = OperationRecord(target=target, operation=operation, outcome=outcome, at=utc_now().isoformat(),
                             reason=(reason or None) and reason[:REASON_CHARS], file=file,
                             host=socket.gethostname())
    data = asdict(record)
    data["signature"] = catalogue.signer.sign(data)
    catalogue.store.replace(record_name(prefix, target, operation, outcome), json.dumps(data).encode("utf-8"))
    return record


def read_record(catalogue: Catalogue, prefix: str, target: str, operation: str,
                outcome: str) -> OperationRecord | None:
    """The record, or None when there is none or it is not ours (unsigned, edited, malformed)."""
    name = record_name(prefix, target, operation, outcome)
    if not catalogue.store.exists(name):
        return None
    try:
        data = json.loads(catalogue.store.read(name, MAX_RECORD_BYTES))
        if not isinstance(data, dict) or not catalogue.signer.verifies(data):
            return None
        data.pop("signature", None)
        record = OperationRecord(**data)
        parse_time(record.at)  # a record whose time does not parse is not a record
        return record
    except (errors.BackupError, ValueError, TypeError, RecursionError):
        return None
