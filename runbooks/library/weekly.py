"""Runbook ``weekly``: the weekly maintenance of every app host.

Pending updates (security ones apart) listed, then applied one host at a time (``serial=1``)
with the order stack verified healthy after each host; journald vacuumed and container logs
measured against ``docker_log_max_size``; dangling images and the build cache removed (never
volumes); the restore drill of the latest backup into a scratch database. Changing steps need
``--yes`` and only report under ``--check``. A reboot the host asks for is reported, not done.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from deploys.contract.services import SERVICES
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library import restore_drill
from runbooks.library._common import container_states, parse_states

__all__ = ["RUNBOOK", "WeeklyParams", "parse_simulated_upgrade", "parse_size"]

REBOOT_FLAG = "/var/run/reboot-required"
#: ``apt-get -s upgrade`` lines: ``Inst pkg [old] (new Origin:release/suite [arch])`` (apt's simulate output)
_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) ([^\[)]*)")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


class WeeklyParams(BaseModel):
    """Parameters of the weekly maintenance (sizes like ``500M``, ages in days)."""

    model_config = ConfigDict(extra="forbid")

    journal_max_size: str = Field("500M", pattern=r"^[1-9][0-9]*[KMG]$", description="journald vacuum to this size")
    journal_max_days: int = Field(30, ge=1, le=3650, description="journald vacuum entries older than this, days")
    security_only: bool = Field(False, description="apply only packages from a -security suite")
    backup: str = Field("latest", description="backup the drill restores: 'latest' or an id")
    identity: str | None = Field(None, description="age private key on this machine for the drill (none: drill skipped)")
    jobs: int = Field(2, ge=1, le=16, description="pg_restore jobs of the drill")


def parse_simulated_upgrade(stdout: str) -> list[dict[str, str | bool]]:
    """``[{package, current, candidate, suites, security}]`` from ``apt-get -s upgrade`` output.
    ``security``: a suite of the candidate ends in ``-security`` (Debian's and Ubuntu's naming)."""
    out = []
    for line in stdout.splitlines():
        m = _INST.match(line)
        if m:
            suites = m.group(4).strip()
            out.append({"package": m.group(1), "current": m.group(2) or "", "candidate": m.group(3), "suites": suites,
                        "security": bool(re.search(r"[-/][a-z]*-security\b|-security\b", suites))})
    return out


def parse_size(text: str) -> int:
    """Bytes of a Docker log size (``10m``, ``512k``, ``1g``, bytes); ``ValueError`` otherwise."""
    m = re.fullmatch(r"([0-9]+)([bkmg]?)", text.strip().lower())
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _pending(ctx: StepContext) -> tuple[list[dict], bool] | str:
    out = ctx.sh(f"apt-get -s -o Debug::NoLocking=1 upgrade; echo '#reboot'; test -e {REBOOT_FLAG} && echo yes || true")
    if not out.ok:
        return f"apt-get -s upgrade failed: {out.stderr.strip()[-300:]}"
    text, _, reboot = out.stdout.partition("#reboot")
    return parse_simulated_upgrade(text), reboot.strip() == "yes"


@step("Pending updates", timeout=180)
def pending(ctx: StepContext) -> StepResult:
    """Packages `apt-get -s upgrade` would upgrade (from the package lists as they are), the
    security ones (a `-security` suite) apart, and whether `/var/run/reboot-required` exists."""
    got = _pending(ctx)
    if isinstance(got, str):
        return ctx.failed(got)
    pkgs, reboot = got
    sec = [p["package"] for p in pkgs if p["security"]]
    data = {"pending": [p["package"] for p in pkgs], "security": sec, "reboot_required": reboot}
    table = Table("pending updates", ["package", "current", "candidate", "suites", "security"],
                  [[p["package"], p["current"], p["candidate"], p["suites"], p["security"]] for p in pkgs])
    return ctx.ok(f"{len(pkgs)} pending, {len(sec)} security{'; reboot required' if reboot else ''}", data, [table])


def _healthy(ctx: StepContext) -> list[str]:
    """Problems of the order stack on this host (the health rule of ``deploys.contract.services.is_up``)."""
    out = ctx.sh(container_states(ctx))
    if not out.ok:
        return [f"docker inspect failed: {out.stderr.strip()[-200:]}"]
    states = parse_states(out.stdout)
    return [f"{s}: {'no container' if s not in states else states[s].health if states[s].status == 'running' else states[s].status}"
            for s in SERVICES if s not in states or not states[s].up]


@step("Apply updates", timeout=1800, destructive=True, serial=1, on_failure="stop-host")
def apply_updates(ctx: StepContext) -> StepResult:
    """One host at a time: `apt-get upgrade` (non-interactive, configuration files kept; with
    `security_only` only the `-security` packages), then every service of the order stack must be
    running and healthy before the next host starts; a host that is not stops the run. A reboot
    the host asks for is deferred and reported (this runbook does not reboot)."""
    got = _pending(ctx)
    if isinstance(got, str):
        return ctx.failed(got)
    pkgs, _ = got
    names = [p["package"] for p in pkgs if p["security"] or not ctx.params.security_only]
    if not names:
        return ctx.ok("nothing to apply")
    if ctx.check:
        return ctx.skipped(f"check mode: would upgrade {len(names)}: {', '.join(names)}", {"would_upgrade": names})
    quoted = " ".join(re.sub(r"[^A-Za-z0-9.+:~-]", "", n) for n in names)
    out = ctx.sh("DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold "
                 f"--only-upgrade install {quoted}", timeout=1500)
    if not out.ok:
        return ctx.failed(f"apt-get failed: {out.stderr.strip()[-300:]}")
    problems = _healthy(ctx)
    reboot = ctx.sh(f"test -e {REBOOT_FLAG}").ok
    data = {"upgraded": names, "reboot_required": reboot, "reboot": "deferred" if reboot else "not needed"}
    if problems:
        return ctx.failed(f"upgraded {len(names)}, stack not healthy: {'; '.join(problems)}", data)
    return ctx.changed(f"upgraded {len(names)}, stack healthy{'; reboot required: deferred' if reboot else ''}", data)


@step("Log cleanup", timeout=300, destructive=True)
def logs(ctx: StepContext) -> StepResult:
    """`journalctl --vacuum-size/--vacuum-time` to `journal_max_size`/`journal_max_days`, and each
    container's json log against the inventory's `docker_log_max_size`: a log past it escaped
    dockerd's rotation and is reported (failed; dockerd owns those files, this step does not cut them)."""
    limit = parse_size(ctx.host.settings.docker_log_max_size)
    out = ctx.sh("journalctl --disk-usage; echo '#logs'; "
                 "find /var/lib/docker/containers -name '*-json.log' -printf '%s %p\\n' 2>/dev/null || true")
    journal, _, logs_text = out.stdout.partition("#logs")
    big = [(int(s), p) for s, _, p in (l.partition(" ") for l in logs_text.split("\n") if l.strip()) if int(s) > limit]
    rows = [[p, s, limit] for s, p in big]
    tables = [Table("container logs past docker_log_max_size", ["log", "bytes", "limit"], rows)] if rows else []
    data = {"journal": journal.strip(), "oversized_logs": [p for _, p in big]}
    p = ctx.params
    if ctx.check:
        msg = f"check mode: would vacuum journald to {p.journal_max_size}/{p.journal_max_days}d ({journal.strip()})"
    else:
        v = ctx.sh(f"journalctl --vacuum-size={p.journal_max_size} --vacuum-time={p.journal_max_days}d")
        if not v.ok:
            return ctx.failed(f"journald vacuum failed: {v.stderr.strip()[-200:]}", data, tables)
        data["vacuum"] = (v.stderr.strip().splitlines() or [""])[-1]
        msg = f"journald vacuumed: {data['vacuum']}"
    if big:
        return ctx.failed(f"{msg}; {len(big)} container log(s) past {ctx.host.settings.docker_log_max_size}", data, tables)
    return ctx.skipped(msg, data) if ctx.check else ctx.changed(msg, data)


@step("Docker hygiene", timeout=600, destructive=True)
def docker_hygiene(ctx: StepContext) -> StepResult:
    """Dangling images (`docker image prune`, untagged only: the running and the previous
    release are tagged and stay) and the build cache (`docker builder prune`). Never volumes."""
    out = ctx.sh("docker images -q -f dangling=true --no-trunc; echo '#cache'; docker builder du 2>/dev/null | tail -n 1")
    ids, _, cache = out.stdout.partition("#cache")
    dangling = sorted(set(ids.split()))
    data = {"dangling": dangling, "build_cache": cache.strip()}
    if ctx.check:
        return ctx.skipped(f"check mode: would remove {len(dangling)} dangling image(s), build cache {cache.strip()}", data)
    rm = ctx.sh("docker image prune -f && docker builder prune -f")
    if not rm.ok:
        return ctx.failed(f"prune failed: {rm.stderr.strip()[-200:]}", data)
    data["reclaimed"] = [l for l in rm.stdout.splitlines() if "reclaimed" in l]
    return ctx.changed(f"removed {len(dangling)} dangling image(s) and the build cache", data)


@step("Backup integrity", timeout=6 * 3600)
def backup(ctx: StepContext) -> StepResult:
    """The restore drill (`runbooks/library/restore_drill.py`: verify, restore into a scratch
    database, compare with the manifest and the invariants, drop the scratch database). Skipped
    with the reason when no identity is given or no backup exists."""
    if not ctx.params.identity:
        return ctx.skipped("no identity given (-p identity=PATH): restore drill skipped")
    if ctx.check:
        return ctx.skipped("check mode: restore drill not run")
    found = restore_drill.find.func(ctx)
    if found.status != "ok":
        if "no valid backup" in found.message or found.message.endswith("not found"):  # orderops-backup's words
            return ctx.skipped(f"no backup to drill: {found.message}")
        return found
    results = [found]
    try:
        results.append(restore_drill.restore.func(ctx))
        results.append(restore_drill.compare.func(ctx))
    finally:
        results.append(restore_drill.cleanup.func(ctx))
    bad = [r for r in results if r.status == "failed"]
    tables = [t for r in results for t in r.tables]
    if bad:
        return ctx.failed("; ".join(r.message for r in bad), {}, tables)
    return ctx.ok(results[2].message, results[2].data, tables)


RUNBOOK = Runbook(name="weekly", title="Weekly maintenance", doc=__doc__, params=WeeklyParams,
                  steps=(pending, apply_updates, logs, docker_hygiene, backup))
