"""The retention sweep: keep the last N backups plus daily, weekly and monthly ones.

Slots count primary backups only, per target and format: a JSON backup's `.sql` twin is kept and
deleted with its JSON, and safety backups and imported uploads are "side" backups with a count of
their own (`keep_side`). Only backups whose file still matches its manifest fill a slot. A backup
that fails its check is reported under `corrupt` and never deleted: it is evidence, and an
operator should look. A backup dated in the future (beyond a small clock skew) is reported under
`suspect`, never fills a slot and is never deleted: a wrong clock must not push the genuine
backups out. The newest good backup of each group, by our clock, is always kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup_engine import errors
from backup_engine.storage.catalogue import Catalogue, Entry, Scope, utc_now

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    keep_side: int = 3  # safety backups and imported uploads, per target


@dataclass
class Decision:
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    suspect: list[str] = field(default_factory=list)

    def as_result(self) -> dict[str, list[str]]:
        return {"kept": sorted(self.kept), "deleted": sorted(self.deleted), "corrupt": sorted(self.corrupt),
                "suspect": sorted(self.suspect)}


def slot_keys(created_at: datetime) -> dict[str, str]:
    year, week, _ = created_at.isocalendar()
    return {"daily": created_at.strftime("%Y-%m-%d"), "weekly": f"{year}-W{week:02d}",
            "monthly": created_at.strftime("%Y-%m")}


def is_side(entry: Entry) -> bool:
    """A safety backup or an imported upload: kept by count, never in the calendar slots."""
    return entry.manifest.purpose is not None or entry.manifest.origin == "upload"


def group_key(entry: Entry) -> tuple[str, str, bool]:
    return entry.manifest.target, entry.manifest.format, is_side(entry)


def decide(entries: Iterable[Entry], policy: RetentionPolicy, now: datetime,
           is_good: Callable[[Entry], bool]) -> Decision:
    """Which backups to keep and delete (pure: the caller deletes). `entries` newest first."""
    decision = Decision()
    twins: dict[str, list[Entry]] = {}
    groups: dict[tuple[str, str, bool], list[Entry]] = {}
    for entry in entries:
        if entry.manifest.converted_from:
            twins.setdefault(entry.manifest.converted_from, []).append(entry)
        else:
            groups.setdefault(group_key(entry), []).append(entry)
    for (_, _, side), members in groups.items():
        _decide_group(members, policy, now, is_good, side, decision)
    kept, gone = set(decision.kept), set(decision.deleted)
    for source, members in twins.items():
        for twin in members:
            if twin.manifest.created > now + CLOCK_SKEW:
                decision.suspect.append(twin.name)
            elif source in gone or (source not in kept and not is_good(twin)):
                (decision.deleted if source in gone else decision.corrupt).append(twin.name)
            else:
                decision.kept.append(twin.name)  # follows its JSON (or waits, if the JSON is gone)
    return decision


def _decide_group(members: list[Entry], policy: RetentionPolicy, now: datetime, is_good: Callable[[Entry], bool],
                  side: bool, decision: Decision) -> None:
    limits = {} if side else {"daily": policy.keep_daily, "weekly": policy.keep_weekly,
                              "monthly": policy.keep_monthly}
    seen: dict[str, set[str]] = {slot: set() for slot in limits}
    keep_last = max(policy.keep_side if side else policy.keep_last, 1)
    kept = 0
    for entry in members:
        if entry.manifest.created > now + CLOCK_SKEW:
            decision.suspect.append(entry.name)  # not counted, and not deleted
            continue
        if not is_good(entry):
            decision.corrupt.append(entry.name)  # not counted, and not deleted: it is evidence
            continue
        slots = {slot: key for slot, key in slot_keys(entry.manifest.created).items() if slot in limits}
        wanted = [slot for slot, key in slots.items() if key not in seen[slot] and len(seen[slot]) < limits[slot]]
        if kept >= keep_last and not wanted:
            decision.deleted.append(entry.name)
            continue
        kept += 1
        decision.kept.append(entry.name)
        for slot in wanted:
            seen[slot].add(slots[slot])


def prune(catalogue: Catalogue, policy: RetentionPolicy, *, scope: Scope, target: str | None = None,
          now: datetime | None = None) -> dict[str, Any]:
    """Delete what the policy does not keep among the backups `scope` owns (of `target`); returns
    the names kept, deleted, found corrupt (or with an unreadable manifest) and suspect, and under
    `corrupt_reasons` why each corrupt one is."""
    listing = catalogue.listing(scope=scope, target=target)
    entries = listing.entries
    reasons = dict(listing.corrupt)

    def is_good(entry: Entry) -> bool:
        try:
            catalogue.check(entry)
        except errors.BackupError as exc:
            reasons[entry.name] = str(exc)
            return False
        return True

    decision = decide(entries, policy, now or utc_now(), is_good)
    for name in decision.deleted:
        catalogue.delete(name)
    result = decision.as_result()
    result["corrupt"] = sorted(result["corrupt"] + [name for name, _ in listing.corrupt])
    result["corrupt_reasons"] = {name: reasons[name] for name in result["corrupt"] if name in reasons}
    return result


def newest(entries: Iterable[Entry], now: datetime | None = None) -> Entry | None:
    """The newest backup by our clock: one dated in the future is not believed."""
    limit = (now or utc_now()) + CLOCK_SKEW
    return next((entry for entry in entries if entry.manifest.created <= limit), None)
