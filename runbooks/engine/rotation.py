"""Run directories: the files a run writes, finding runs, and rotation of old ones by count and by age."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

__all__ = ["expired_runs", "rotate_runs", "run_dirs", "EVENTS_FILE", "RESULT_FILE", "REPORT_FILE", "NOTEBOOK_FILE"]

#: The files of a run directory (``<runs dir>/<run id>/``): events streamed while it runs, then
#: the masked result (schema: ``runbooks/engine/result.schema.json``), its Markdown report and notebook.
EVENTS_FILE, RESULT_FILE, REPORT_FILE, NOTEBOOK_FILE = "events.jsonl", "result.json", "report.md", "report.ipynb"


def run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root`` (those holding :data:`EVENTS_FILE` or :data:`RESULT_FILE`), oldest first.

    Run IDs start with their UTC start time (seconds); runs of the same second are ordered by mtime.
    """
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and ((p / EVENTS_FILE).exists() or (p / RESULT_FILE).exists())]
    return sorted(dirs, key=lambda p: (p.name.split("-", 1)[0], p.stat().st_mtime_ns, p.name))


def expired_runs(root: Path, keep: int = 50, max_age_days: float = 30.0, protect: Path | None = None,
                 now: float | None = None) -> list[Path]:
    """Run directories under ``root`` beyond the newest ``keep`` (``-1``: no count limit) or older
    than ``max_age_days`` (by mtime; ``-1``: no age limit), oldest first; ``protect`` (the current
    run) is never among them. Removes nothing (:func:`rotate_runs` does)."""
    now = time.time() if now is None else now
    dirs = run_dirs(root)
    excess = len(dirs) - keep if keep >= 0 else 0
    out = []
    for i, d in enumerate(dirs):
        if protect is not None and d.resolve() == protect.resolve():
            continue
        too_many = i < excess
        too_old = max_age_days >= 0 and now - d.stat().st_mtime > max_age_days * 86400
        if too_many or too_old:
            out.append(d)
    return out


def rotate_runs(root: Path, keep: int = 50, max_age_days: float = 30.0, protect: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove run directories beyond the newest ``keep`` or older than ``max_age_days`` (by mtime).

    ``protect`` (the current run) is never removed. Returns the removed paths.
    """
    removed = expired_runs(root, keep, max_age_days, protect, now)
    for d in removed:
        shutil.rmtree(d, ignore_errors=True)
    return removed
