"""Retention's slots against a small reference model, over generated backup dates (Hypothesis).

The model is written from the policy's words, not from the code: per target, format and kind
(primary, or side: safety backups and uploads), among the backups that are good and not dated in the
future, newest first, keep the newest `max(keep_last, 1)`, plus the newest backup of each of the
`keep_daily` most recent UTC days that have one, of the `keep_weekly` most recent ISO weeks and the
`keep_monthly` most recent months (side backups: the newest `max(keep_side, 1)` and no slots).
Corrupt backups and future-dated ones are reported, never deleted; every other one is deleted.
It runs over `retention.decide` (pure, many examples) and over `retention.prune` on a real store.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_engine.retention import CLOCK_SKEW, RetentionPolicy, decide, prune
from backup_engine.storage.catalogue import Entry, Scope
from backup_engine.trust.manifest import Manifest
from tests.engine_api import BackupStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday; the generated dates reach back over a year boundary
SLOTS = {"daily": lambda d: d.date(), "weekly": lambda d: d.isocalendar()[:2], "monthly": lambda d: (d.year, d.month)}


def reference(backups: list[dict], policy: RetentionPolicy, now: datetime) -> dict[str, set[str]]:
    """What the policy keeps, deletes and reports; `backups` as dicts (name, created, target, format,
    side, good)."""
    out = {"kept": set(), "deleted": set(), "corrupt": set(), "suspect": set()}
    groups: dict[tuple, list[dict]] = {}
    for backup in backups:
        groups.setdefault((backup["target"], backup["format"], backup["side"]), []).append(backup)
    for (_, _, side), members in groups.items():
        members = sorted(members, key=lambda b: (b["created"], b["name"]), reverse=True)
        out["suspect"] |= {b["name"] for b in members if b["created"] > now + CLOCK_SKEW}
        out["corrupt"] |= {b["name"] for b in members if b["created"] <= now + CLOCK_SKEW and not b["good"]}
        candidates = [b for b in members if b["created"] <= now + CLOCK_SKEW and b["good"]]
        count = max(policy.keep_side if side else policy.keep_last, 1)
        keep = {b["name"] for b in candidates[:count]}
        if not side:
            for slot, limit in (("daily", policy.keep_daily), ("weekly", policy.keep_weekly),
                                ("monthly", policy.keep_monthly)):
                newest_of: dict = {}
                for b in candidates:  # newest first: the first backup of a period is its newest
                    newest_of.setdefault(SLOTS[slot](b["created"].astimezone(UTC)), b["name"])
                periods = sorted(newest_of, reverse=True)[:limit]
                keep |= {newest_of[period] for period in periods}
        out["kept"] |= keep
        out["deleted"] |= {b["name"] for b in candidates} - keep
    return out


# --- generated backups ------------------------------------------------------------------------------------
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7)),
                           timezone(timedelta(hours=5, minutes=30))])


@st.composite
def backup_sets(draw, max_size: int = 40) -> list[dict]:
    """Backups over ~14 months, bunched (several a day, gaps of weeks), some corrupt, some dated in the
    future, of two targets and two formats, some of them side backups; created_at in any UTC offset."""
    count = draw(st.integers(0, max_size))
    backups = []
    moment = NOW + timedelta(minutes=draw(st.integers(-60, 60 * 24 * 3)))  # may start in the future
    for index in range(count):
        step = draw(st.one_of(st.integers(0, 90), st.integers(60, 60 * 30), st.integers(60 * 24, 60 * 24 * 40)))
        moment -= timedelta(minutes=step)
        backups.append({
            "name": f"b{index:03d}", "created": moment.astimezone(draw(OFFSETS)),
            "target": draw(st.sampled_from(["a", "a", "b"])), "format": draw(st.sampled_from(["sql", "sql", "json"])),
            "side": draw(st.booleans()) and draw(st.booleans()), "good": draw(st.integers(0, 5)) > 0,
        })
    return backups


policies = st.builds(RetentionPolicy, keep_last=st.integers(0, 4), keep_daily=st.integers(0, 8),
                     keep_weekly=st.integers(0, 6), keep_monthly=st.integers(0, 14), keep_side=st.integers(0, 3))


def entry(backup: dict) -> Entry:
    manifest = Manifest(backup_filename=backup["name"], format=backup["format"], target=backup["target"],
                        dialect="postgresql", method="test", include_data="full",
                        created_at=backup["created"].isoformat(), size_bytes=1, sha256="0" * 64,
                        purpose="safety backup before restore" if backup["side"] else None)
    return Entry(manifest=manifest, signed=True, path=backup["name"])


@settings(max_examples=400, deadline=None)
@given(backups=backup_sets(), policy=policies)
def test_decide_keeps_exactly_what_the_reference_model_keeps(backups, policy):
    entries = sorted((entry(b) for b in backups), key=lambda e: (e.manifest.created, e.name), reverse=True)
    good = {b["name"]: b["good"] for b in backups}
    decision = decide(entries, policy, NOW, lambda e: good[e.name])
    got = {field: set(getattr(decision, field)) for field in ("kept", "deleted", "corrupt", "suspect")}
    want = reference(backups, policy, NOW)
    assert got == want
    listed = decision.kept + decision.deleted + decision.corrupt + decision.suspect
    assert sorted(listed) == sorted(b["name"] for b in backups)  # each backup decided exactly once


# --- the same through the real store ----------------------------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backups=backup_sets(max_size=14), policy=policies)
def test_prune_on_a_real_store_deletes_exactly_what_the_reference_model_deletes(backups, policy):
    with tempfile.TemporaryDirectory(prefix="bw-retention-") as base:
        store = BackupStore(Path(base) / "backups")
        names = {}
        for backup in backups:
            record = store.publish_bytes(
                f"-- {backup['name']}\n".encode(), backup["target"],
                {"format": backup["format"], "target": backup["target"], "dialect": "postgresql",
                 "table_rows": {}, "tables": 0, "rows": 0,
                 **({"purpose": "safety backup before restore"} if backup["side"] else {})},
                created_at=backup["created"])
            names[record["backup_filename"]] = backup["name"]
            if not backup["good"]:
                path = store.folder / record["backup_filename"]
                path.write_bytes(b"X" + path.read_bytes()[1:])
        renamed = [{**b, "name": real} for real, own in names.items() for b in backups if b["name"] == own]
        want = reference(renamed, policy, NOW)
        result = prune(store.catalogue, policy, scope=Scope(targets=frozenset({"a", "b"}), prefix=None), now=NOW)
        assert {field: set(result[field]) for field in want} == want
        left = {p.name for p in store.folder.iterdir() if p.name in names}
        assert left == set(names) - want["deleted"]
