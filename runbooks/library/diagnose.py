"""Runbook ``diagnose``: the troubleshooting commands collected into one report.

Compose status, recent logs per service, ``docker stats``, networks, readiness, PostgreSQL
activity (``pg_stat_activity``), disk and memory. Read-only; every step continues on failure so
the report is as complete as the host allows.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field

from deploys.contract.compose import PROJECT_LABEL
from deploys.contract.services import SERVICES
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._common import compose, json_lines, psql, strip_ansi

__all__ = ["RUNBOOK", "DiagnoseParams"]


class DiagnoseParams(BaseModel):
    """How much to collect."""

    model_config = ConfigDict(extra="forbid")

    log_lines: int = Field(30, ge=1, le=1000, description="log lines per service")


def _lines_table(title: str, text: str, limit: int = 200) -> Table:
    return Table(title, ["output"], [[line] for line in text.splitlines()[:limit]])


@step("Compose status", timeout=60)
def compose_status(ctx: StepContext) -> StepResult:
    """`docker compose ps -a`: every container of the project with state and health."""
    out = ctx.sh(compose(ctx, "ps", "-a", "--format", "json"))
    if not out.ok:
        return ctx.failed(f"compose ps failed: {out.stderr.strip()[-300:]}")
    rows = [[c.get("Service", ""), c.get("State", ""), c.get("Status", ""), c.get("Image", "")] for c in json_lines(out.stdout)]
    return ctx.ok(f"{len(rows)} container(s)", {"containers": rows}, [Table("compose ps", ["service", "state", "status", "image"], rows)])


@step("Recent logs", timeout=90)
def recent_logs(ctx: StepContext) -> StepResult:
    """The last `log_lines` log lines of each service."""
    script = "; ".join(
        f"echo '#svc {svc}'; " + compose(ctx, "--ansi", "never", "logs", "--no-color", "--no-log-prefix", "--tail", str(ctx.params.log_lines), svc) + " 2>&1"
        for svc in SERVICES
    )
    out = ctx.sh(script)
    lines: dict[str, list[str]] = {s: [] for s in SERVICES}
    current = None
    for line in out.stdout.splitlines():
        if line.startswith("#svc "):
            current = line[5:].strip()
        elif current in lines:
            lines[current].append(strip_ansi(line))
    tables = [Table(f"logs: {svc}", ["line"], [[l] for l in lines[svc]]) for svc in SERVICES]
    return ctx.ok(f"logs of {len(SERVICES)} services", tables=tables)


@step("Container resources", timeout=60)
def stats(ctx: StepContext) -> StepResult:
    """`docker stats --no-stream`: CPU, memory, network and block I/O per container."""
    out = ctx.sh("docker stats --no-stream --format '{{json .}}'")
    if not out.ok:
        return ctx.failed(f"docker stats failed: {out.stderr.strip()[-300:]}")
    rows = [[s.get(k, "") for k in ("Name", "CPUPerc", "MemUsage", "NetIO", "BlockIO")] for s in json_lines(out.stdout)]
    return ctx.ok(f"{len(rows)} container(s)", tables=[Table("docker stats", ["container", "cpu", "memory", "net io", "block io"], rows)])


@step("Networks", timeout=60)
def networks(ctx: StepContext) -> StepResult:
    """Docker networks of the project and which containers are attached to each."""
    project = shlex.quote(f"label={PROJECT_LABEL}={ctx.host.settings.compose_project}")
    out = ctx.sh(f"ids=$(docker network ls -q --filter {project}); [ -z \"$ids\" ] || docker network inspect --format '{{{{json .}}}}' $ids")
    if not out.ok:
        return ctx.failed(f"docker network inspect failed: {out.stderr.strip()[-300:]}")
    rows = [[n.get("Name", ""), n.get("Driver", ""), str(n.get("Internal", "")).lower(),
             " ".join(sorted(c.get("Name", "") for c in (n.get("Containers") or {}).values()))] for n in json_lines(out.stdout)]
    return ctx.ok(f"{len(rows)} network(s)", tables=[Table("networks", ["network", "driver", "internal", "containers"], rows)])


@step("Readiness", timeout=60, retries=1)
def readiness(ctx: StepContext) -> StepResult:
    """`GET /api/ready` through nginx on the host (HTTPS, the host's own certificate): 200 means
    the service reaches PostgreSQL and Redis."""
    d = ctx.host.settings.domain
    out = ctx.sh(f"curl -sk --max-time 10 -o /dev/stderr -w '%{{http_code}}' --resolve {d}:443:127.0.0.1 https://{d}/api/ready", sudo=False)
    code = out.stdout.strip()[-3:]
    data = {"http_status": code, "body": out.stderr.strip()[:500]}
    if code != "200":
        return ctx.failed(f"not ready: HTTP {code or '(no answer)'} {out.stderr.strip()[:200]}", data)
    return ctx.ok("ready (HTTP 200)", data)


@step("PostgreSQL activity", timeout=60)
def pg_activity(ctx: StepContext) -> StepResult:
    """`pg_stat_activity`: sessions by state, with the oldest transaction and query age."""
    sql = ("select coalesce(datname,''), coalesce(usename,''), coalesce(state,''), coalesce(wait_event_type,''), "
           "coalesce(extract(epoch from now()-xact_start)::int::text,''), left(coalesce(query,''), 80) "
           "from pg_stat_activity where backend_type = 'client backend' order by xact_start nulls last")
    out = ctx.sh(psql(ctx, sql, "-tA -F $'\\t'"))
    if not out.ok:
        return ctx.failed(f"psql failed: {out.stderr.strip()[-300:]}")
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.count("\t") == 5]
    return ctx.ok(f"{len(rows)} client session(s)", {"sessions": len(rows)},
                  [Table("pg_stat_activity", ["database", "user", "state", "wait", "xact age s", "query"], rows)])


@step("Disk and memory", timeout=60)
def disk_memory(ctx: StepContext) -> StepResult:
    """`df -h`, `df -hi` of / and /var/lib/docker, `free -m`, and Docker's own disk use."""
    out = ctx.sh("df -h / /var/lib/docker; echo; df -hi / /var/lib/docker; echo; free -m; echo; docker system df")
    if not out.ok:
        return ctx.failed(f"failed: {out.stderr.strip()[-300:]}")
    return ctx.ok("collected", tables=[_lines_table("disk and memory", out.stdout)])


RUNBOOK = Runbook(
    name="diagnose",
    title="Diagnose the order stack",
    doc=__doc__,
    params=DiagnoseParams,
    steps=(compose_status, recent_logs, stats, networks, readiness, pg_activity, disk_memory),
)
