"""Retention on synthetic backups of many ages and states (deploys/backup_tool/retention.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from deploys.backup_tool.manifest import SCHEMA, BackupInfo, backup_id, list_local
from deploys.backup_tool.retention import plan

KEEP = {"daily": 7, "weekly": 4, "monthly": 6}
NOW = datetime(2026, 12, 3, 2, 30, tzinfo=timezone.utc)


def info(t: datetime, state: str = "valid") -> BackupInfo:
    return BackupInfo(backup_id(t), t, state, where=backup_id(t), problem="" if state == "valid" else "synthetic")


def daily(days: int, start: datetime = NOW) -> list[BackupInfo]:
    return [info(start - timedelta(days=d)) for d in range(days)]


def deleted_ids(p) -> set[str]:
    return {b.id for b, _ in p.delete}


def test_a_year_of_dailies_keeps_7_daily_4_weekly_6_monthly():
    backups = daily(365)
    p = plan(backups, KEEP)
    kept = sorted(p.keep)
    # 7 newest days; the newest of each of the last 4 ISO weeks; of the last 6 months
    dailies = {b for b, why in p.keep.items() if "daily" in why}
    weeklies = {b for b, why in p.keep.items() if "weekly" in why}
    monthlies = {b for b, why in p.keep.items() if "monthly" in why}
    assert dailies == {backup_id(NOW - timedelta(days=d)) for d in range(7)}
    assert len(weeklies) == 4 and len(monthlies) == 6
    # monthly keeps the newest of each month: the last day of Nov, Oct, ...
    assert backup_id(datetime(2026, 11, 30, 2, 30, tzinfo=timezone.utc)) in monthlies
    assert backup_id(datetime(2026, 7, 31, 2, 30, tzinfo=timezone.utc)) in monthlies
    assert len(kept) < 7 + 4 + 6
    assert len(kept) + len(p.delete) == 365
    assert all(reason == "outside retention" for _, reason in p.delete)


def test_newest_valid_kept_whatever_its_age_and_failed_ones_do_not_count():
    old = info(NOW - timedelta(days=400))
    failed = [info(NOW - timedelta(days=d), state) for d, state in ((1, "partial"), (2, "truncated"), (3, "no-manifest"))]
    p = plan([old, *failed], KEEP)
    assert old.id in p.keep and "newest" in p.keep[old.id]
    # failed runs newer than the newest valid backup are left for inspection, not counted
    assert deleted_ids(p) == set()
    assert set(p.keep) == {old.id}


def test_failed_and_truncated_backups_never_count_as_valid():
    # 10 days: the last 5 are truncated/partial/corrupt; the dailies must reach back to valid ones
    backups = [info(NOW - timedelta(days=d), "truncated" if d % 2 else "partial") for d in range(5)] + daily(30, NOW - timedelta(days=5))
    p = plan(backups, KEEP)
    dailies = {b for b, why in p.keep.items() if "daily" in why}
    assert dailies == {backup_id(NOW - timedelta(days=d)) for d in range(5, 12)}
    assert not {b.id for b in backups[:5]} & set(p.keep)


def test_invalid_backups_older_than_the_newest_valid_are_deleted():
    backups = daily(3) + [info(NOW - timedelta(days=1, hours=3), "partial"), info(NOW - timedelta(days=2, hours=5), "corrupt")]
    p = plan(backups, KEEP)
    reasons = {b.id: r for b, r in p.delete}
    assert set(reasons) == {backups[3].id, backups[4].id}
    assert reasons[backups[3].id].startswith("invalid (partial")


def test_partial_sharing_an_id_with_a_valid_backup_is_deleted_but_the_backup_kept():
    t = NOW - timedelta(days=1)
    valid, partial = info(t), BackupInfo(backup_id(t), t, "partial", where=backup_id(t) + ".partial")
    p = plan([info(NOW), valid, partial], KEEP)
    assert [b.where for b, _ in p.delete] == [partial.where]
    assert valid.id in p.keep


def test_nothing_deleted_without_any_valid_backup():
    backups = [info(NOW - timedelta(days=d), "truncated") for d in range(40)]
    p = plan(backups, KEEP)
    assert p.keep == {} and p.delete == []


def test_several_backups_a_day_keep_the_newest_of_the_day():
    backups = [info(NOW - timedelta(hours=h)) for h in range(0, 72, 6)]
    p = plan(backups, {"daily": 2, "weekly": 0, "monthly": 0})
    assert set(p.keep) == {backup_id(NOW), backup_id(NOW.replace(hour=0, minute=0) - timedelta(hours=3, minutes=30))}


def test_gaps_in_the_schedule_do_not_empty_a_period():
    # one backup every 10 days for a year: 7 "daily" = the 7 newest distinct days that have one
    backups = [info(NOW - timedelta(days=10 * i)) for i in range(37)]
    p = plan(backups, KEEP)
    dailies = {b for b, why in p.keep.items() if "daily" in why}
    assert dailies == {backups[i].id for i in range(7)}


def test_zero_counts_keep_only_the_newest():
    p = plan(daily(20), {"daily": 0, "weekly": 0, "monthly": 0})
    assert list(p.keep) == [backup_id(NOW)]


@pytest.mark.parametrize("bad", [{"daily": -1}, {"hourly": 3}])
def test_bad_retention_is_refused(bad):
    with pytest.raises(ValueError):
        plan(daily(2), bad)


def _write_backup(root: Path, t: datetime, state: str) -> None:
    ident = backup_id(t)
    d = root / (ident + ".partial" if state == "partial" else ident)
    d.mkdir()
    if state in ("partial", "no-manifest"):
        return
    (d / "db.dump.zst.age").write_bytes(b"x" * 100)
    size = 100 if state != "truncated" else 200
    (d / "manifest.json").write_text(json.dumps({
        "schema": SCHEMA, "id": ident, "row_counts": {},
        "files": {"db": {"name": "db.dump.zst.age", "bytes": size, "sha256": "0" * 64}},
    }) if state != "bad-manifest" else "{not json")


def test_states_of_directories_on_disk(tmp_path):
    states = ["valid", "partial", "no-manifest", "truncated", "bad-manifest", "valid"]
    for i, state in enumerate(states):
        _write_backup(tmp_path, NOW - timedelta(days=len(states) - i), state)
    (tmp_path / "not-a-backup").mkdir()
    found = list_local(tmp_path)
    assert [b.state for b in found] == states
    assert [b.valid for b in found] == [s == "valid" for s in states]
