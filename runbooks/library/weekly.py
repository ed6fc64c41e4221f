"""Runbook ``weekly``: the weekly maintenance of every app host.

Pending updates (security ones apart) listed, then applied one host at a time (``serial=1``)
with the order stack verified healthy after each host; journald vacuumed, container logs
measured against ``docker_log_max_size`` and run directories older than ``runs_max_days``
removed; dangling images and the build cache removed (never volumes); the restore drill of the latest backup into a scratch database. Changing steps need
``--yes`` and only report under ``--check``. A reboot the host asks for (``/var/run/reboot-required``)
is done only with ``reboot=true``, then the run waits for SSH and health; it is deferred and
reported on the host the runbook runs on (group ``controller``, or this machine itself). While
the monitoring stack exists, the host's alerts are silenced during its updates.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deploys.contract.services import SERVICES
from runbooks.core.errors import CommandCancelled, ExecutorError
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.engine.rotation import expired_runs
from runbooks.library import restore_drill
from runbooks.library._common import container_states, parse_states

__all__ = ["RUNBOOK", "WeeklyParams", "parse_simulated_upgrade", "parse_size", "reboot_deferred_reason", "silence_request"]

REBOOT_FLAG = "/var/run/reboot-required"
#: systemd's machine ID (machine-id(5)): the same file on the target and here means the same machine
MACHINE_ID = "/etc/machine-id"
#: this machine's copy (the machine running the runbook)
LOCAL_MACHINE_ID = Path(MACHINE_ID)
#: ``createdBy`` of the maintenance window's Alertmanager silence
SILENCE_CREATOR = "orderops runbook weekly"
#: seconds between the probes while a host reboots
REBOOT_POLL = 5.0
#: ``apt-get -s upgrade`` lines: ``Inst pkg [old] (new Origin:release/suite [arch])`` (apt's simulate output)
_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) ([^\[)]*)")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


class WeeklyParams(BaseModel):
    """Parameters of the weekly maintenance (sizes like ``500M``, ages in days)."""

    model_config = ConfigDict(extra="forbid")

    journal_max_size: str = Field("500M", pattern=r"^[1-9][0-9]*[KMG]$", description="journald vacuum to this size")
    journal_max_days: int = Field(30, ge=1, le=3650, description="journald vacuum entries older than this, days")
    security_only: bool = Field(False, description="apply only packages from a -security suite")
    reboot: bool = Field(False, description="reboot a host that asks for it (/var/run/reboot-required), then wait for "
                                            "SSH and health; never the host the runbook runs on (deferred)")
    silence_minutes: int = Field(120, ge=5, le=1440, description="the maintenance window: a host's alerts are silenced "
                                                                "in Alertmanager at most this long while its updates are applied")
    runs_max_days: float = Field(30.0, ge=1, le=3650, description="Log cleanup removes runbook run directories older "
                                                                  "than this, days (never the current run's)")
    reboot_timeout: int = Field(600, ge=30, le=1800, description="seconds a rebooted host has to answer SSH and be healthy")
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


def reboot_deferred_reason(ctx: StepContext, local_machine_id: str | None = None) -> str | None:
    """Why this host's reboot is deferred, or ``None`` (reboot it): ``reboot`` is off, the host is
    in group ``controller`` (the runbook runs there: the single layout's one host, the timers'
    host), or its ``/etc/machine-id`` is this machine's (``local_machine_id``, default: read here)."""
    if not ctx.params.reboot:
        return "reboot=false"
    if "controller" in ctx.host.groups:
        return f"{ctx.host.name} is the controller host, the runbook runs on it"
    if local_machine_id is None:
        try:
            local_machine_id = LOCAL_MACHINE_ID.read_text().strip()
        except OSError:
            local_machine_id = ""
    remote = ctx.sh(f"cat {MACHINE_ID}")
    if not remote.ok or not remote.stdout.strip():
        return f"{MACHINE_ID} unreadable on the host: cannot tell it from this machine"
    if remote.stdout.strip() == local_machine_id:
        return f"{ctx.host.name} is this machine (same {MACHINE_ID}), the runbook runs on it"
    return None


def _probe(ctx: StepContext, command: str, timeout: float) -> bool:
    """``command`` succeeded on the host; a lost or refused connection (rebooting) is ``False``."""
    try:
        return ctx.sh(command, timeout=timeout).ok
    except CommandCancelled:
        raise
    except ExecutorError:
        return False


def _reboot(ctx: StepContext) -> tuple[str | None, float]:
    """Reboot the host and wait for it: a marker in ``/run`` (a tmpfs, empty after a boot) is
    written, ``systemctl reboot`` runs two seconds later from a transient timer (the command
    returns first), then SSH is probed until the marker is gone and the order stack is healthy.
    ``(problem or None, seconds until healthy)``; the wait ends after ``reboot_timeout``."""
    marker = f"/run/orderops-reboot-{re.sub(r'[^A-Za-z0-9_.-]', '', ctx.run_id)}"
    out = ctx.sh(f"touch {marker} && systemd-run --quiet --on-active=2 systemctl reboot")
    if not out.ok:
        return f"reboot not started: {out.stderr.strip()[-200:]}", 0.0
    start = time.monotonic()
    until = start + ctx.params.reboot_timeout
    back = False
    problems: list[str] = []
    while time.monotonic() < until:
        time.sleep(min(REBOOT_POLL, max(0.0, until - time.monotonic())))
        if not back:
            back = _probe(ctx, f"test ! -e {marker}", timeout=min(20.0, max(1.0, until - time.monotonic())))
            if not back:
                continue
        problems = _healthy(ctx)
        if not problems:
            return None, time.monotonic() - start
    if not back:
        return f"not back over SSH {ctx.params.reboot_timeout} s after the reboot", time.monotonic() - start
    return f"back after the reboot, stack not healthy within {ctx.params.reboot_timeout} s: {'; '.join(problems)}", \
        time.monotonic() - start


def silence_request(host: str, minutes: int, run_id: str, now: datetime) -> dict[str, Any]:
    """Body of Alertmanager's ``POST /api/v2/silences`` (``postableSilence`` in its OpenAPI spec,
    ``api/v2/openapi.yaml``): every alert with label ``host=<host>`` (the label Prometheus puts on
    each scrape target of the host, templates/monitoring/prometheus.yml.j2) from ``now`` for
    ``minutes``; times in RFC 3339 UTC."""
    def rfc3339(t: datetime) -> str:
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return {"matchers": [{"name": "host", "value": host, "isRegex": False, "isEqual": True}],
            "startsAt": rfc3339(now), "endsAt": rfc3339(now + timedelta(minutes=minutes)),
            "createdBy": SILENCE_CREATOR, "comment": f"maintenance window of run {run_id}: updates applied"}


def _alertmanager(ctx: StepContext) -> str | None:
    """``http://127.0.0.1:<port>`` of the host's Alertmanager (its loopback port), or ``None``
    when the host has no monitoring stack."""
    if "monitoring" not in ctx.host.groups:
        return None
    port = ctx.host.settings.monitoring.loopback_ports.get("alertmanager")
    return f"http://127.0.0.1:{int(port)}" if port else None


def _silence(ctx: StepContext) -> dict[str, Any]:
    """Silence this host's alerts through the host (``curl`` to its Alertmanager's loopback
    port): ``{"id", "ends_at"}``, or ``{"error"}`` when Alertmanager refused (the update goes on:
    alerts may fire), ``{}`` without a monitoring stack."""
    url = _alertmanager(ctx)
    if url is None:
        return {}
    body = silence_request(ctx.host.name, ctx.params.silence_minutes, ctx.run_id, datetime.now(timezone.utc))
    out = ctx.sh(f"printf '%s' {shlex.quote(json.dumps(body))} | curl -fsS -m 20 -X POST -H 'Content-Type: application/json' "
                 f"--data-binary @- {url}/api/v2/silences")
    try:
        return {"id": json.loads(out.stdout)["silenceID"], "ends_at": body["endsAt"]} if out.ok else \
            {"error": f"POST /api/v2/silences failed: {(out.stderr or out.stdout).strip()[-200:]}"}
    except (ValueError, KeyError, TypeError):
        return {"error": f"POST /api/v2/silences answered {out.stdout.strip()[:200]!r}"}


def _expire(ctx: StepContext, silence: dict[str, Any]) -> None:
    """End the silence (``DELETE /api/v2/silence/{id}``): the host's alerts fire again, also when
    the host failed; ``silence["expired"]`` says whether Alertmanager took it (if not, it ends at
    ``ends_at`` on its own)."""
    if "id" not in silence:
        return
    sid = re.sub(r"[^A-Za-z0-9-]", "", silence["id"])
    try:
        out = ctx.sh(f"curl -fsS -m 20 -X DELETE {_alertmanager(ctx)}/api/v2/silence/{sid}", timeout=30)
        silence["expired"] = out.ok
        if not out.ok:
            silence["error"] = f"DELETE failed (ends on its own at {silence['ends_at']}): {out.stderr.strip()[-200:]}"
    except ExecutorError as e:  # the step's time is up or the host is gone: the silence ends on its own
        silence.update(expired=False, error=f"not expired (ends on its own at {silence['ends_at']}): {e}")


@step("Apply updates", timeout=3600, destructive=True, serial=1, on_failure="stop-host")
def apply_updates(ctx: StepContext) -> StepResult:
    """One host at a time: `apt-get upgrade` (non-interactive, configuration files kept; with
    `security_only` only the `-security` packages), then every service of the order stack must be
    running and healthy before the next host starts; a host that is not stops the run. When
    `/var/run/reboot-required` exists and `reboot` is on, the host is rebooted and must answer SSH
    with a healthy stack within `reboot_timeout`; the host the runbook runs on (group
    `controller`, or this machine: same `/etc/machine-id`) is never rebooted: deferred and reported.
    On a host with the monitoring stack its alerts (label `host`) are silenced in Alertmanager
    (v2 API, through the host) while this runs, `silence_minutes` at most, and the silence is
    expired when the host is done, healthy or not."""
    got = _pending(ctx)
    if isinstance(got, str):
        return ctx.failed(got)
    pkgs, _ = got
    names = [p["package"] for p in pkgs if p["security"] or not ctx.params.security_only]
    if not names:
        return ctx.ok("nothing to apply")
    if ctx.check:
        return ctx.skipped(f"check mode: would upgrade {len(names)}: {', '.join(names)}", {"would_upgrade": names})
    silence = _silence(ctx)
    try:
        result = _apply(ctx, names)
    finally:
        _expire(ctx, silence)
    if silence:
        result.data["silence"] = silence
    if "error" in silence:
        return replace(result, message=f"{result.message}; alert silence: {silence['error']}")
    return result


def _apply(ctx: StepContext, names: list[str]) -> StepResult:
    quoted = " ".join(re.sub(r"[^A-Za-z0-9.+:~-]", "", n) for n in names)
    out = ctx.sh("DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold "
                 f"--only-upgrade install {quoted}", timeout=1500)
    if not out.ok:
        return ctx.failed(f"apt-get failed: {out.stderr.strip()[-300:]}")
    problems = _healthy(ctx)
    reboot = ctx.sh(f"test -e {REBOOT_FLAG}").ok
    data = {"upgraded": names, "reboot_required": reboot, "reboot": "not needed"}
    if problems:
        return ctx.failed(f"upgraded {len(names)}, stack not healthy: {'; '.join(problems)}", data)
    if not reboot:
        return ctx.changed(f"upgraded {len(names)}, stack healthy", data)
    deferred = reboot_deferred_reason(ctx)
    if deferred:
        data.update(reboot="deferred", reboot_deferred=deferred)
        return ctx.changed(f"upgraded {len(names)}, stack healthy; reboot required: deferred ({deferred})", data)
    problem, seconds = _reboot(ctx)
    data.update(reboot="done", reboot_seconds=round(seconds, 1))
    if problem:
        return ctx.failed(f"upgraded {len(names)}, rebooted: {problem}", data)
    return ctx.changed(f"upgraded {len(names)}, rebooted, back and healthy in {seconds:.0f} s", data)


def _old_runs(ctx: StepContext) -> list[Path]:
    """Run directories beside this run's older than ``runs_max_days`` (never this run's own)."""
    if ctx.run_dir is None:
        return []
    return expired_runs(ctx.run_dir.parent, keep=-1, max_age_days=ctx.params.runs_max_days, protect=ctx.run_dir)


@step("Log cleanup", timeout=300, destructive=True)
def logs(ctx: StepContext) -> StepResult:
    """`journalctl --vacuum-size/--vacuum-time` to `journal_max_size`/`journal_max_days`, each
    container's json log against the inventory's `docker_log_max_size` (a log past it escaped
    dockerd's rotation and is reported, failed; dockerd owns those files, this step does not cut
    them), and the runbook run directories beside this run's older than `runs_max_days` removed
    on the machine running the runbook (never the current run's; the capacity samples are no run)."""
    limit = parse_size(ctx.host.settings.docker_log_max_size)
    out = ctx.sh("journalctl --disk-usage; echo '#logs'; "
                 "find /var/lib/docker/containers -name '*-json.log' -printf '%s %p\\n' 2>/dev/null || true")
    journal, _, logs_text = out.stdout.partition("#logs")
    big = [(int(s), p) for s, _, p in (l.partition(" ") for l in logs_text.split("\n") if l.strip()) if int(s) > limit]
    rows = [[p, s, limit] for s, p in big]
    tables = [Table("container logs past docker_log_max_size", ["log", "bytes", "limit"], rows)] if rows else []
    old = _old_runs(ctx)
    data = {"journal": journal.strip(), "oversized_logs": [p for _, p in big], "old_runs": [d.name for d in old]}
    p = ctx.params
    if ctx.check:
        msg = (f"check mode: would vacuum journald to {p.journal_max_size}/{p.journal_max_days}d ({journal.strip()}), "
               f"remove {len(old)} run director{'y' if len(old) == 1 else 'ies'} older than {p.runs_max_days:g}d")
    else:
        v = ctx.sh(f"journalctl --vacuum-size={p.journal_max_size} --vacuum-time={p.journal_max_days}d")
        if not v.ok:
            return ctx.failed(f"journald vacuum failed: {v.stderr.strip()[-200:]}", data, tables)
        data["vacuum"] = (v.stderr.strip().splitlines() or [""])[-1]
        removed = []
        for d in old:  # hosts run this step at the same time: one of them removes a directory
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        data["old_runs"] = removed
        msg = f"journald vacuumed: {data['vacuum']}; {len(removed)} old run director{'y' if len(removed) == 1 else 'ies'} removed"
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
