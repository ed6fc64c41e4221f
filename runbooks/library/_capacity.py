"""Capacity samples and their forecast, pure Python: the sample store and the least-squares line.

The store is one file per host, ``<store dir>/<host>.jsonl``, on the machine that runs the
runbooks (never on the host), one JSON object per line (:data:`SAMPLE_FIELDS`; sizes in bytes,
``ts`` in UTC as ``2026-12-04T06:00:00Z``). It lives outside the run directories, so the
rotation of old runs (:func:`runbooks.engine.rotation.rotate_runs`) never removes it.

A sample is appended with one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``; a run
that crashed mid-write can only leave a partial last line without its newline: the next append
first ends that line, so the fragment stays a line of its own, which :func:`read_samples` skips
and reports (by line number) instead of failing.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SAMPLE_FIELDS", "METRICS", "Metric", "Fit", "linear_fit", "days_until", "store_file", "append_sample",
           "read_samples", "parse_ts", "format_ts"]

#: The fields of one sample (``None``: not readable at that time): bytes used / total / available
#: of ``/`` and of Docker's data directory (``docker info``'s DockerRootDir), the database's
#: ``pg_database_size``, Redis' ``used_memory`` and ``maxmemory`` (0: no limit).
SAMPLE_FIELDS = ("ts", "host", "run_id", "root_used", "root_total", "root_avail", "docker_used", "docker_total",
                 "docker_avail", "db_bytes", "redis_used", "redis_max")

_TS = "%Y-%m-%dT%H:%M:%SZ"
DAY = 86400.0


def format_ts(when: datetime) -> str:
    """``when`` (aware) as UTC ``2026-12-04T06:00:00Z``."""
    return when.astimezone(timezone.utc).strftime(_TS)


def parse_ts(text: str) -> datetime:
    """A store timestamp (``...Z``) as an aware UTC datetime; ``ValueError`` otherwise."""
    return datetime.strptime(text, _TS).replace(tzinfo=timezone.utc)


def store_file(store_dir: Path, host: str) -> Path:
    """``<store_dir>/<host>.jsonl`` (characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``)."""
    return Path(store_dir) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', host)}.jsonl"


def append_sample(path: Path, sample: dict[str, Any]) -> None:
    """Append ``sample`` as one JSON line to ``path`` (created 0600, its directory 0700).

    A last line left without its newline (a crashed writer) is ended first. Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = (json.dumps(sample, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_samples(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """``(samples, problems)`` of a store file, samples oldest first; a missing file is empty.

    A line that is not a JSON object with a readable ``ts`` is skipped and named in ``problems``
    (``"line 3: not JSON"``), so one bad line never hides the others."""
    if not path.exists():
        return [], []
    samples, problems = [], []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {n}: not JSON")
            continue
        try:
            doc["_at"] = parse_ts(doc["ts"])
        except (TypeError, KeyError, ValueError):
            problems.append(f"line {n}: no readable ts")
            continue
        samples.append(doc)
    samples.sort(key=lambda d: d["_at"])
    return samples, problems


@dataclass(frozen=True)
class Fit:
    """A least-squares line ``y = intercept + slope * x`` through ``n`` points (``x`` in days
    since the first point, ``y`` in the metric's unit); ``r2``: coefficient of determination
    (1.0 when every ``y`` is equal)."""

    slope: float
    intercept: float
    n: int
    r2: float

    def at(self, x: float) -> float:
        """The line's value at ``x``."""
        return self.intercept + self.slope * x


def linear_fit(points: Iterable[tuple[float, float]]) -> Fit:
    """Ordinary least squares of ``(x, y)`` points. Raises ``ValueError`` for fewer than two
    points or when every ``x`` is equal (no line)."""
    pts = [(float(x), float(y)) for x, y in points]
    n = len(pts)
    if n < 2:
        raise ValueError(f"a line needs 2 points, got {n}")
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        raise ValueError("every point has the same x")
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
    intercept = my - slope * mx
    syy = sum((y - my) ** 2 for _, y in pts)
    sse = sum((y - (intercept + slope * x)) ** 2 for x, y in pts)
    return Fit(slope, intercept, n, 1.0 if syy == 0 else 1 - sse / syy)


def days_until(fit: Fit, limit: float | None, x_last: float) -> float | None:
    """Days from ``x_last`` (the last sample) until the fitted line reaches ``limit``; ``0`` when it
    already has; ``None`` when there is no limit or the line does not grow (``slope <= 0``)."""
    if limit is None or fit.slope <= 0 or not math.isfinite(fit.slope):
        return None
    return max(0.0, (limit - fit.at(x_last)) / fit.slope)


@dataclass(frozen=True)
class Metric:
    """One forecast metric: its ``label``, the sample field it fits (``field``), and how its
    limit follows from the newest sample (``limit_of``: bytes, or ``None`` for no limit)."""

    label: str
    field: str
    limit_doc: str

    def limit_of(self, s: dict[str, Any]) -> float | None:
        """The limit this metric grows into, from sample ``s``; ``None`` when unknown or none."""
        def add(a: str, b: str) -> float | None:
            return None if s.get(a) is None or s.get(b) is None else float(s[a]) + float(s[b])

        if self.field == "root_used":
            return add("root_used", "root_avail")
        if self.field == "docker_used":
            return add("docker_used", "docker_avail")
        if self.field == "db_bytes":
            return add("db_bytes", "docker_avail")
        if self.field == "redis_used":
            return float(s["redis_max"]) if s.get("redis_max") else None
        raise ValueError(f"unknown metric field {self.field!r}")


#: The metrics the forecast fits, in report order. A disk is full when its used bytes reach
#: used + available (the space writable without root's reserved blocks); the database grows into
#: the free space of the filesystem of Docker's data directory (its volume lives there); Redis
#: is full at ``maxmemory`` (none when 0: no limit).
METRICS = (
    Metric("disk /", "root_used", "used + available of /"),
    Metric("disk docker data", "docker_used", "used + available of Docker's data directory"),
    Metric("database", "db_bytes", "database size + available of Docker's data directory"),
    Metric("redis", "redis_used", "maxmemory (none when 0)"),
)
