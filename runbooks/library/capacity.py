"""Runbook ``capacity``: disk, database and Redis growth of every app host, and days until full.

Two steps, each usable in other runbooks: "Capacity sample" (also a step of ``daily``) reads the
host's sizes and appends them to the sample store on the machine that runs the runbook
(:mod:`runbooks.library._capacity`; default ``<runs dir>/../capacity/<host>.jsonl``, i.e.
``capacity/`` in the state directory, beside ``runs/`` and out of reach of its rotation);
"Capacity forecast" (exported as :data:`forecast` for the monthly runbook) fits a least-squares
line per metric through the samples of the last ``capacity_window_days`` and fails when a
metric is full within ``capacity_warn_days``, with the data points as a table and a PNG plot
per host attached to the run (embedded in ``report.ipynb``, linked from ``report.md``).
"""

from __future__ import annotations

import io
import re
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deploys.contract.paths import local_state_dir
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._capacity import (
    DAY, METRICS, append_sample, days_until, format_ts, linear_fit, read_samples, store_file,
)
from runbooks.library._common import compose, psql

__all__ = ["RUNBOOK", "CAPACITY_DIR_HELP", "CapacityStoreParams", "CapacityParams", "sample", "forecast", "store_dir", "parse_sample",
           "plot_png"]

_MIB = 1024 * 1024
#: The ``capacity_dir`` parameter's help (every runbook that samples or forecasts takes it).
CAPACITY_DIR_HELP = "sample store directory on this machine (default: <runs dir>/../capacity)"


class CapacityStoreParams(BaseModel):
    """Where the capacity samples are kept (a runbook that samples inherits this)."""

    model_config = ConfigDict(extra="forbid")

    capacity_dir: str | None = Field(None, description=CAPACITY_DIR_HELP)


class CapacityParams(CapacityStoreParams):
    """The forecast's window and warning threshold (days), plus the store."""

    capacity_window_days: int = Field(30, ge=1, le=3650, description="samples of the last N days are fitted")
    capacity_warn_days: int = Field(30, ge=0, le=3650, description="fail when a metric is full within N days")


def store_dir(ctx: StepContext) -> Path:
    """The sample store of this run: ``capacity_dir`` when given, else ``capacity/`` beside the runs
    directory (``<run dir>/../../capacity``), else (no run directory) ``capacity/`` in the state dir."""
    given = getattr(ctx.params, "capacity_dir", None)
    if given:
        return Path(given).expanduser()
    if ctx.run_dir is not None:
        return Path(ctx.run_dir).parent.parent / "capacity"
    return local_state_dir() / "capacity"


def _sample_command(ctx: StepContext) -> str:
    redis = compose(ctx, "exec", "-T", "redis", "sh", "-c",
                    shlex.quote('REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 INFO memory'))
    return ("echo '#cap-root'; df -PB1 / | tail -n +2; "
            "echo '#cap-docker'; df -PB1 \"$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)\" "
            "| tail -n +2; "
            f"echo '#cap-db'; {psql(ctx, 'SELECT pg_database_size(current_database())')} 2>&1; "
            f"echo '#cap-redis'; {redis} 2>&1; echo '#cap-end'")


def parse_sample(stdout: str) -> tuple[dict[str, int | None], list[str]]:
    """``({field: bytes | None}, problems)`` from the sample command's output: ``df -PB1`` lines
    (size, used, available), ``pg_database_size`` (one number), ``INFO memory`` (``used_memory:``,
    ``maxmemory:``). A value that is not there is ``None`` and named in ``problems``."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("#cap-"):
            current = line[5:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line.strip())
    out: dict[str, int | None] = {}
    problems = []
    for name in ("root", "docker"):
        parts = next((l.split() for l in sections.get(name, []) if len(l.split()) >= 6 and l.split()[1].isdigit()), None)
        if parts:
            out.update({f"{name}_total": int(parts[1]), f"{name}_used": int(parts[2]), f"{name}_avail": int(parts[3])})
        else:
            out.update(dict.fromkeys((f"{name}_total", f"{name}_used", f"{name}_avail")))
            problems.append(f"df of {'/' if name == 'root' else 'the Docker data directory'} unreadable")
    db = [l for l in sections.get("db", []) if l]
    out["db_bytes"] = int(db[-1]) if db and db[-1].isdigit() else None
    if out["db_bytes"] is None:
        problems.append(f"database size unreadable: {' '.join(db)[-200:] or 'no output'}")
    info = dict(l.split(":", 1) for l in sections.get("redis", []) if re.match(r"^(used_memory|maxmemory):\d+$", l))
    out["redis_used"] = int(info["used_memory"]) if "used_memory" in info else None
    out["redis_max"] = int(info["maxmemory"]) if "maxmemory" in info else None
    if out["redis_used"] is None or out["redis_max"] is None:
        problems.append(f"redis INFO memory unreadable: {' '.join(sections.get('redis', []))[-200:] or 'no output'}")
    return out, problems


@step("Capacity sample", timeout=90, retries=1)
def sample(ctx: StepContext) -> StepResult:
    """Bytes used / total / available of `/` and of Docker's data directory, the database's
    `pg_database_size` and Redis' `used_memory` / `maxmemory`, appended with a UTC timestamp as
    one JSON line to this host's file in the capacity store on the machine running the runbook
    (`capacity_dir`, default `<runs dir>/../capacity/<host>.jsonl`: outside the run directories,
    so their rotation keeps it). Read-only on the host, so check mode samples too: the store is
    the runbook's own record, like the run directory. Fails (the partial sample is still kept)
    when a value is unreadable."""
    out = ctx.sh(_sample_command(ctx))
    values, problems = parse_sample(out.stdout)
    if all(v is None for v in values.values()):
        return ctx.failed(f"nothing readable (rc {out.rc}): {out.stderr.strip()[-300:]}")
    record = {"ts": format_ts(datetime.now(timezone.utc)), "host": ctx.host.name, "run_id": ctx.run_id, **values}
    path = store_file(store_dir(ctx), ctx.host.name)
    try:
        append_sample(path, record)
    except OSError as e:
        return ctx.failed(f"could not append to {path}: {e}", record)
    rows = [[k, v if v is None else round(v / _MIB, 1)] for k, v in values.items()]
    data = {**record, "store": str(path)}
    table = Table("capacity sample (MiB)", ["value", "MiB"], rows)
    if problems:
        return ctx.failed("; ".join(problems) + f" (sample kept in {path})", data, [table])
    return ctx.ok(f"sampled into {path}", data, [table])


def _fmt_days(days: float | None) -> str:
    return "never (not growing or no limit)" if days is None else f"{days:.1f}"


def plot_png(host: str, points: dict[str, list[tuple[datetime, float]]], fits: dict[str, Any],
             limits: dict[str, float | None]) -> bytes:
    """A PNG (bytes) of one host's forecast: per metric its samples (MiB), the fitted line and
    the limit. Matplotlib's object API on the Agg canvas (no pyplot: steps run in threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    labels = [m.label for m in METRICS if points.get(m.label)]
    fig = Figure(figsize=(8, 2.6 * max(1, len(labels))), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(labels)), 1, squeeze=False)[:, 0]
    for ax, label in zip(axes, labels):
        pts = points[label]
        t0 = pts[0][0]
        ax.plot([p[0] for p in pts], [p[1] / _MIB for p in pts], "o", label="samples")
        fit, days = fits.get(label, (None, None))
        if fit is not None:
            x_end = (pts[-1][0] - t0).total_seconds() / DAY + (min(days, 365) if days is not None else 0)
            xs = [0.0, max(x_end, (pts[-1][0] - t0).total_seconds() / DAY)]
            ax.plot([t0 + timedelta(days=x) for x in xs], [fit.at(x) / _MIB for x in xs], "-", label="fit")
        if limits.get(label):
            ax.axhline(limits[label] / _MIB, color="red", linestyle="--", label="full")
        ax.set_title(f"{host}: {label}" + (f" (full in {days:.1f} d)" if fit is not None and days is not None else ""))
        ax.set_ylabel("MiB")
        ax.legend(loc="best", fontsize="small")
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
        ax.tick_params(axis="x", labelrotation=30, labelsize="small")  # each axis its own dates (not shared)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@step("Capacity forecast", executor="local", timeout=120)
def forecast(ctx: StepContext) -> StepResult:
    """This host's samples of the last `capacity_window_days` from the capacity store, one
    least-squares line per metric, and the days until the line reaches the metric's limit
    (counted from the newest sample): a disk at used + available, the database at its size plus
    the free space of Docker's data filesystem, Redis at `maxmemory` (none when 0). Fails when a
    metric is full within `capacity_warn_days`; skipped with fewer than 2 samples or less than
    one day between the first and the last. Bad store lines are skipped and named. Reports the
    fit per metric, the data points, and a plot (PNG attached to the run)."""
    p = ctx.params
    path = store_file(store_dir(ctx), ctx.host.name)
    samples, bad = read_samples(path)
    since = datetime.now(timezone.utc) - timedelta(days=p.capacity_window_days)
    window = [s for s in samples if s["_at"] >= since]
    note = f"; skipped {len(bad)} bad store line(s): {', '.join(bad[:5])}" if bad else ""
    span = (window[-1]["_at"] - window[0]["_at"]).total_seconds() / DAY if window else 0.0
    if len(window) < 2 or span < 1:
        return ctx.skipped(f"too few samples: {len(window)} in the last {p.capacity_window_days} days spanning "
                           f"{span * 24:.1f} h in {path} (need 2 or more over at least 1 day){note}",
                           {"samples": len(window), "span_days": round(span, 3), "bad_lines": bad})
    t0, last = window[0]["_at"], window[-1]
    rows, problems, result, fits, points, limits = [], [], {}, {}, {}, {}
    for m in METRICS:
        pts = [(s["_at"], float(s[m.field])) for s in window if isinstance(s.get(m.field), (int, float))]
        points[m.label] = pts
        limit = m.limit_of(last)
        limits[m.label] = limit
        xy = [((at - t0).total_seconds() / DAY, y) for at, y in pts]
        try:
            fit = linear_fit(xy)
        except ValueError as e:
            rows.append([m.label, len(pts), "-", "-", "-", f"no fit: {e}"])
            result[m.label] = {"samples": len(pts), "days_until_full": None, "error": str(e)}
            continue
        days = days_until(fit, limit, xy[-1][0])
        fits[m.label] = (fit, days)
        result[m.label] = {"samples": fit.n, "slope_bytes_per_day": round(fit.slope, 1), "r2": round(fit.r2, 4),
                           "limit_bytes": limit, "days_until_full": None if days is None else round(days, 2)}
        rows.append([m.label, fit.n, round(fit.slope / _MIB, 2), round(fit.r2, 3),
                     None if limit is None else round(limit / _MIB, 1), _fmt_days(days)])
        if days is not None and days < p.capacity_warn_days:
            problems.append(f"{m.label} full in {days:.1f} days")
    tables = [Table(f"forecast over {span:.1f} days, {len(window)} samples", ["metric", "samples", "MiB/day", "r2",
                                                                               "limit MiB", "days until full"], rows),
              Table("data points (MiB)", ["ts"] + [m.label for m in METRICS],
                    [[s["ts"]] + [None if not isinstance(s.get(m.field), (int, float)) else round(s[m.field] / _MIB, 1)
                                  for m in METRICS] for s in window])]
    files = []
    if ctx.run_dir is not None:
        name = store_file(Path("."), f"capacity-{ctx.host.name}").name.replace(".jsonl", ".png")
        (Path(ctx.run_dir) / name).write_bytes(plot_png(ctx.host.name, points, fits, limits))
        files.append(name)
    data = {"metrics": result, "samples": len(window), "span_days": round(span, 3), "bad_lines": bad, "store": str(path)}
    if problems:
        return ctx.failed(f"{'; '.join(problems)} (< {p.capacity_warn_days}){note}", data, tables, files)
    soonest = min((v["days_until_full"] for v in result.values() if v.get("days_until_full") is not None), default=None)
    return ctx.ok(f"nothing full within {p.capacity_warn_days} days"
                  + (f" (soonest in {soonest:.1f})" if soonest is not None else " (nothing growing)") + note,
                  data, tables, files)


RUNBOOK = Runbook(name="capacity", title="Capacity forecast", doc=__doc__, params=CapacityParams,
                  steps=(sample, forecast))
