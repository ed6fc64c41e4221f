"""Which backups to keep: grandfather-father-son, 7 daily / 4 weekly / 6 monthly by default.

Pure functions over :class:`~.manifest.BackupInfo` lists (local directories and S3 prefixes are
judged by the same :func:`plan`). The rules:

- only ``valid`` backups count; for each kind the newest valid backup of each of the last
  ``keep[kind]`` distinct periods that have one is kept (day = UTC date, week = ISO week,
  month = calendar month), so a gap in the schedule never empties a period;
- the newest valid backup is always kept, whatever its age;
- invalid backups (partial, truncated, ...) older than the newest valid one are deleted; newer
  invalid ones are left for inspection (the next successful run deletes them);
- with no valid backup at all, nothing is deleted.

The caller runs retention only after a backup that succeeded (:mod:`.cli` enforces it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .manifest import BackupInfo

__all__ = ["Plan", "plan", "PERIODS"]


def _day(t: datetime) -> tuple:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> tuple:
    iso = t.isocalendar()
    return (iso[0], iso[1])


def _month(t: datetime) -> tuple:
    return (t.year, t.month)


#: kind -> period key of a UTC time
PERIODS = {"daily": _day, "weekly": _week, "monthly": _month}


@dataclass(frozen=True)
class Plan:
    """``keep``: ``{id: reasons}`` of valid backups (e.g. ``["newest", "daily"]``);
    ``delete``: ``[(backup, reason)]`` (a backup, not an id: a leftover ``.partial`` may share
    the id of a valid backup)."""

    keep: dict[str, list[str]]
    delete: list[tuple[BackupInfo, str]]


def plan(backups: Iterable[BackupInfo], keep: dict[str, int]) -> Plan:
    """Decide what to keep and delete. ``keep``: ``{"daily": n, "weekly": n, "monthly": n}``
    (each >= 0). Raises ``ValueError`` for an unknown kind or a negative count."""
    for kind, n in keep.items():
        if kind not in PERIODS or n < 0:
            raise ValueError(f"retention: bad entry {kind}={n}")
    items = sorted(backups, key=lambda b: b.time, reverse=True)
    valid = [b for b in items if b.valid]
    if not valid:
        return Plan({}, [])
    kept: dict[str, list[str]] = {valid[0].id: ["newest"]}
    for kind, n in keep.items():
        period = PERIODS[kind]
        seen: list[tuple] = []
        for b in valid:  # newest first: the first backup of a period is its newest
            key = period(b.time)
            if key in seen:
                continue
            if len(seen) >= n:
                break
            seen.append(key)
            kept.setdefault(b.id, []).append(kind)
    newest = valid[0].time
    delete: list[tuple[BackupInfo, str]] = []
    for b in items:
        if b.valid:
            if b.id not in kept:
                delete.append((b, "outside retention"))
        elif b.time <= newest:
            delete.append((b, f"invalid ({b.state}: {b.problem})" if b.problem else f"invalid ({b.state})"))
    return Plan(kept, delete)
