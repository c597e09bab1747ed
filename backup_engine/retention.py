"""The retention sweep: keep the last N backups plus daily, weekly and monthly ones.

Only backups whose file still matches its manifest count towards a slot. Every candidate is
checked (size and sha256) before it is kept or deleted; a backup that fails its check is
reported under `corrupt` and never deleted: it is evidence, and an operator should look. The
newest good backup of each target and format is always kept, whatever the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backup_engine import errors
from backup_engine.storage.catalogue import Catalogue, Entry


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12


def _slot_keys(created_at: datetime) -> dict[str, str]:
    year, week, _ = created_at.isocalendar()
    return {"daily": created_at.strftime("%Y-%m-%d"), "weekly": f"{year}-W{week:02d}",
            "monthly": created_at.strftime("%Y-%m")}


def prune(catalogue: Catalogue, policy: RetentionPolicy, *, prefix: str | None = None,
          target: str | None = None) -> dict[str, list[str]]:
    """Delete what the policy does not keep; returns the names kept, deleted and found corrupt."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in catalogue.listing(prefix=prefix, target=target).entries:  # newest first
        groups.setdefault((entry.manifest.target, entry.manifest.format), []).append(entry)
    kept: list[str] = []
    deleted: list[str] = []
    corrupt: list[str] = []
    for entries in groups.values():
        keep, drop, bad = _decide(catalogue, entries, policy)
        kept += keep
        corrupt += bad
        for name in drop:
            catalogue.delete(name)
            deleted.append(name)
    return {"kept": sorted(kept), "deleted": sorted(deleted), "corrupt": sorted(corrupt)}


def _decide(catalogue: Catalogue, records: list[Entry],
            policy: RetentionPolicy) -> tuple[list[str], list[str], list[str]]:
    limits = {"daily": policy.keep_daily, "weekly": policy.keep_weekly, "monthly": policy.keep_monthly}
    seen: dict[str, set[str]] = {slot: set() for slot in limits}
    keep_last = max(policy.keep_last, 1)
    kept: list[str] = []
    dropped: list[str] = []
    corrupt: list[str] = []
    for record in records:
        name = record.name
        slots = _slot_keys(record.manifest.created)
        wanted = [slot for slot, key in slots.items() if key not in seen[slot] and len(seen[slot]) < limits[slot]]
        if not _is_good(catalogue, record):
            corrupt.append(name)  # not counted, and not deleted: it is evidence
            continue
        if len(kept) >= keep_last and not wanted:
            dropped.append(name)
            continue
        kept.append(name)
        for slot in wanted:
            seen[slot].add(slots[slot])
    return kept, dropped, corrupt


def _is_good(catalogue: Catalogue, entry: Entry) -> bool:
    try:
        catalogue.check(entry)
    except errors.BackupError:
        return False
    return True
