"""Runbook ``daily``: the daily health check of every app host.

Service status (health, restart counts that grew since the last run), the running release (the
host's recorded ``release.json`` against the inventory), error lines of the last 24 h per service,
resource usage against thresholds, a capacity sample (sizes appended to the capacity store on this
machine for the monthly forecast: ``runbooks/library/capacity.py``), certificate days left, and
configuration drift (the main deploy in dry mode against the same inventory).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field

from deploys.contract.paths import RELEASE_FILE, StackLayout
from deploys.contract.release import parse_release, read_command, running_version
from deploys.contract.services import SERVICES
from deploys.contract.tls import served_certificate_command
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._common import compose, container_states, parse_states, strip_ansi
from runbooks.library.capacity import CAPACITY_DIR_HELP, sample

__all__ = ["RUNBOOK", "DailyParams"]


class DailyParams(BaseModel):
    """Thresholds of the daily check (percentages 1..100, load per CPU, days, hours), and where
    the capacity samples go (``capacity_dir``)."""

    model_config = ConfigDict(extra="forbid")

    disk_max_percent: int = Field(85, ge=1, le=100, description="max used % of / and /var/lib/docker")
    inode_max_percent: int = Field(85, ge=1, le=100, description="max used inodes %")
    memory_max_percent: int = Field(90, ge=1, le=100, description="max used memory % (without cache)")
    load_max_per_cpu: float = Field(2.0, gt=0, description="max 5-minute load average per CPU")
    cert_min_days: int = Field(21, ge=0, description="certificate must be valid this many more days")
    error_hours: int = Field(24, ge=1, le=24 * 14, description="window for error lines, hours")
    error_lines: int = Field(10, ge=0, le=200, description="error lines shown per service")
    drift: bool = Field(True, description="run the drift check (pyinfra --dry)")
    capacity_dir: str | None = Field(None, description=CAPACITY_DIR_HELP)


@step("Service status", timeout=60, retries=1)
def service_status(ctx: StepContext) -> StepResult:
    """Every service of the order stack runs and is healthy; restart counts did not grow since the
    last daily run (a growing count means a crash loop even when the container looks healthy now)."""
    out = ctx.sh(container_states(ctx))
    if not out.ok:
        return ctx.failed(f"docker inspect failed: {out.stderr.strip()[-300:]}")
    states = parse_states(out.stdout)
    before = ctx.previous.get("Service status", {}).get("restarts", {})
    rows, problems = [], []
    for svc in SERVICES:
        st = states.get(svc)
        if st is None:
            problems.append(f"{svc}: no container")
            rows.append([svc, "missing", "-", "-", "-"])
            continue
        grew = st.restarts - int(before.get(svc, st.restarts))
        rows.append([svc, st.status, st.health, st.restarts, f"+{grew}" if grew > 0 else "0"])
        if not st.up:
            problems.append(f"{svc}: {st.status if st.status != 'running' else st.health}")
        if grew > 0:
            problems.append(f"{svc}: restarted {grew} time(s) since the last run")
    data = {
        "restarts": {s: v.restarts for s, v in states.items()},
        "services": {s: {"status": v.status, "health": v.health, "restarts": v.restarts, "image": v.image}
                     for s, v in states.items()},
    }
    table = Table("containers", ["service", "status", "health", "restarts", "since last run"], rows)
    if problems:
        return ctx.failed("; ".join(problems), data, [table])
    return ctx.ok(f"{len(SERVICES)} services running and healthy", data, [table])


@step("Running release", timeout=60, retries=1)
def release(ctx: StepContext) -> StepResult:
    """Which order-service version the host should run and why: the release the emergency-redeploy
    runbook recorded in `release.json`, or the inventory's `images.order_service` (the deploy's
    rule, `deploys.contract.release.running_version`), against what the `api` container runs.
    Informational: a mismatch shows up as drift too."""
    out = ctx.sh(f"echo '#release'; {read_command()}; echo '#containers'; {container_states(ctx)}")
    if not out.ok:
        return ctx.failed(f"reading {RELEASE_FILE} failed: {out.stderr.strip()[-300:]}")
    text, _, containers = out.stdout.partition("#containers")
    record = parse_release(text.replace("#release", "", 1))
    inventory_ref = ctx.host.settings.images.order_service
    version = running_version(inventory_ref, record)
    api = parse_states(containers).get("api")
    running = api.image if api else None
    rows = [["inventory", inventory_ref],
            ["recorded release", f"{record.order_service} (run {record.run_id or '?'}, previous {record.previous or '?'})"
             if record else "none"],
            ["in force", f"{version.ref} (from {version.source})"], ["api runs", running or "no container"]]
    data = {"recorded": record.model_dump() if record else None, "inventory": inventory_ref, "in_force": version.ref,
            "source": version.source, "running": running}
    note = "" if running == version.ref else f"; api runs {running or 'nothing'}"
    return ctx.ok(f"{version.ref} from {version.source}: {version.reason}{note}", data,
                  [Table("running release", ["what", "ref"], rows)])


@step("Error lines", timeout=90)
def error_lines(ctx: StepContext) -> StepResult:
    """Log lines with the words error/fatal/panic/critical/traceback (JSON lines: level above warning) per service over the last
    `error_hours` hours (json-file logs kept by dockerd's rotation). Informational."""
    p = ctx.params
    pattern = shlex.quote(r"\b(error|fatal|panic|critical|traceback)\b")
    # JSON log lines carry a level: INFO lines from a logger named "uvicorn.error" are no errors
    not_info = shlex.quote(r'"level": ?"(debug|info|notice|warning)"')
    rows, counts = [], {}
    script = "; ".join(
        f"echo '#svc {svc}'; {compose(ctx, '--ansi', 'never', 'logs', '--no-color', '--no-log-prefix', '--since', f'{p.error_hours}h', svc)} 2>&1 "
        f"| sed 's/\\x1b\\[[0-9;]*[A-Za-z]//g' | grep -Ei {pattern} | grep -Evi {not_info} | tail -n 1000"
        for svc in SERVICES
    )
    out = ctx.sh(script)
    current, lines = None, {s: [] for s in SERVICES}
    for line in out.stdout.splitlines():
        if line.startswith("#svc "):
            current = line[5:].strip()
        elif current:
            lines[current].append(line)
    for svc in SERVICES:
        counts[svc] = len(lines[svc])
        for text in lines[svc][-p.error_lines:] if p.error_lines else []:
            rows.append([svc, strip_ansi(text)[:300]])
    total = sum(counts.values())
    tables = [Table(f"error lines, last {p.error_hours} h (counts)", ["service", "lines"], [[s, c] for s, c in counts.items()])]
    if rows:
        tables.append(Table("latest error lines", ["service", "line"], rows))
    return ctx.ok(f"{total} error line(s) in {p.error_hours} h", {"counts": counts}, tables)


@step("Resource usage", timeout=60, retries=1)
def resources(ctx: StepContext) -> StepResult:
    """Disk and inode use of `/` and `/var/lib/docker`, memory without page cache, and the
    5-minute load per CPU, each against the thresholds given as parameters."""
    p = ctx.params
    out = ctx.sh(
        "echo '#df'; df -P / /var/lib/docker | tail -n +2; echo '#di'; df -Pi / /var/lib/docker | tail -n +2; "
        "echo '#mem'; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; echo '#load'; cat /proc/loadavg; nproc",
    )
    if not out.ok:
        return ctx.failed(f"reading usage failed: {out.stderr.strip()[-300:]}")
    section, disk, inodes, mem, load = None, {}, {}, {}, []
    for line in out.stdout.splitlines():
        if line.startswith("#"):
            section = line[1:]
            continue
        parts = line.split()
        if section in ("df", "di") and len(parts) >= 6 and parts[4].rstrip("%").isdigit():
            (disk if section == "df" else inodes)[parts[5]] = int(parts[4].rstrip("%"))
        elif section == "di" and len(parts) >= 6 and parts[4] == "-":
            inodes[parts[5]] = 0
        elif section == "mem" and len(parts) >= 2:
            mem[parts[0].rstrip(":")] = int(parts[1])
        elif section == "load":
            load.append(parts)
    mem_pct = round(100 * (1 - mem["MemAvailable"] / mem["MemTotal"]), 1) if mem.get("MemTotal") else 0.0
    load5 = float(load[0][1]) if load else 0.0
    cpus = int(load[1][0]) if len(load) > 1 else 1
    per_cpu = round(load5 / max(cpus, 1), 2)
    rows, problems = [], []
    for mount, pct in disk.items():
        rows.append([f"disk {mount}", f"{pct} %", f"{p.disk_max_percent} %"])
        if pct > p.disk_max_percent:
            problems.append(f"disk {mount} {pct}% > {p.disk_max_percent}%")
    for mount, pct in inodes.items():
        rows.append([f"inodes {mount}", f"{pct} %", f"{p.inode_max_percent} %"])
        if pct > p.inode_max_percent:
            problems.append(f"inodes {mount} {pct}% > {p.inode_max_percent}%")
    rows.append(["memory", f"{mem_pct} %", f"{p.memory_max_percent} %"])
    if mem_pct > p.memory_max_percent:
        problems.append(f"memory {mem_pct}% > {p.memory_max_percent}%")
    rows.append(["load5 per CPU", per_cpu, p.load_max_per_cpu])
    if per_cpu > p.load_max_per_cpu:
        problems.append(f"load {per_cpu}/CPU > {p.load_max_per_cpu}")
    data = {"disk_percent": disk, "inode_percent": inodes, "memory_percent": mem_pct, "load5_per_cpu": per_cpu}
    table = Table("usage against thresholds", ["resource", "used", "threshold"], rows)
    if problems:
        return ctx.failed("threshold crossed: " + "; ".join(problems), data, [table])
    return ctx.ok("within thresholds", data, [table])


def _cert_lines(text: str) -> dict[str, str]:
    """``serial=`` / ``notAfter=`` lines of ``openssl x509 -serial -enddate`` to ``{key: value}``."""
    return {k: v.strip() for k, _, v in (l.strip().partition("=") for l in text.splitlines()) if k in ("serial", "notAfter")}


@step("Certificate days left", timeout=60)
def certificate(ctx: StepContext) -> StepResult:
    """The certificate nginx *serves* on the host's port 443 (``openssl s_client`` with the domain
    as SNI): days until it expires against `cert_min_days`, and its serial against the file nginx is
    configured with (`<stack_dir>/tls/fullchain.pem`, a certbot lineage with tls_mode acme): a
    difference means a renewal that nginx did not load (the deploy hook's reload failed).
    One command on the host (each costs an executor round trip)."""
    path = StackLayout(ctx.host.settings.stack_dir).certificate
    out = ctx.sh(
        f"echo '#file'; openssl x509 -serial -enddate -noout -in {shlex.quote(path)}; "
        f"echo '#served'; {served_certificate_command(ctx.host.settings.domain)}"
    )
    file_part, _, served_part = out.stdout.partition("#served")
    on_disk, served = _cert_lines(file_part), _cert_lines(served_part)
    if "notAfter" not in served:
        return ctx.failed(f"nginx serves no readable certificate on 127.0.0.1:443 ({out.stderr.strip()[-200:]})")
    not_after = datetime.strptime(served["notAfter"], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    days = (not_after - datetime.now(timezone.utc)).days
    data = {"days_left": days, "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "served_serial": served.get("serial"), "file_serial": on_disk.get("serial")}
    if on_disk.get("serial") != served.get("serial"):
        return ctx.failed(f"nginx serves serial {served.get('serial')}, {path} holds {on_disk.get('serial') or 'nothing readable'}"
                          " (not reloaded after a renewal?)", data)
    if days < ctx.params.cert_min_days:
        return ctx.failed(f"certificate expires in {days} days (< {ctx.params.cert_min_days})", data)
    return ctx.ok(f"{days} days left", data)


@step("Configuration drift", executor="pyinfra", timeout=300)
def drift(ctx: StepContext) -> StepResult:
    """The main deploy (`deploys/site.py`) in dry mode against the same inventory: every operation
    that would change the host is drift (someone changed a managed file, a package, ...).
    Conditional operations (reloads that follow a change) are not counted."""
    if not ctx.params.drift:
        return ctx.skipped("drift check disabled (-p drift=false)")
    result = ctx.deploy(dry=True)
    if not result.ok:
        tail = [l for l in result.output.splitlines() if l.strip()][-5:]
        return ctx.failed("dry run failed: " + " | ".join(tail)[-500:])
    table = Table("operations that would change the host", ["operation"], [[c] for c in result.changes])
    if result.changes:
        return ctx.failed(f"drift: {len(result.changes)} operation(s) would change the host: {', '.join(result.changes)}",
                          {"drift": result.changes}, [table])
    return ctx.ok("no drift", {"drift": []})


RUNBOOK = Runbook(
    name="daily",
    title="Daily check",
    doc=__doc__,
    params=DailyParams,
    steps=(service_status, release, error_lines, resources, sample, certificate, drift),
)
