"""Runbook ``emergency-restart``: restart unhealthy or stopped services, wait for health.

Only the affected services are restarted (``docker compose restart SERVICE``), never with volume
removal. With ``--check`` it only lists what it would restart.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from deploys.contract.services import SERVICES
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._common import compose, container_states, parse_states

__all__ = ["RUNBOOK", "RestartParams"]


class RestartParams(BaseModel):
    """What to restart and how long to wait (seconds)."""

    model_config = ConfigDict(extra="forbid")

    wait_timeout: int = Field(150, ge=5, le=1800, description="seconds to wait for health after the restart")
    services: str = Field("", description="comma-separated services to consider (default: all)")


def _wanted(ctx: StepContext) -> list[str]:
    chosen = [s.strip() for s in ctx.params.services.split(",") if s.strip()]
    return chosen or list(SERVICES)


@step("Find unhealthy or stopped services", timeout=60, retries=1, on_failure="stop-host")
def find(ctx: StepContext) -> StepResult:
    """Services of the order stack whose container is missing, not running, or not healthy."""
    out = ctx.sh(container_states(ctx))
    if not out.ok:
        return ctx.failed(f"docker inspect failed: {out.stderr.strip()[-300:]}")
    states = parse_states(out.stdout)
    bad = []
    rows = []
    for svc in _wanted(ctx):
        st = states.get(svc)
        rows.append([svc, st.status if st else "missing", st.health if st else "-"])
        if st is None or not st.up:
            bad.append(svc)
    ctx.memory["restart"] = bad
    table = Table("services", ["service", "status", "health"], rows)
    return ctx.ok(f"to restart: {', '.join(bad)}" if bad else "all services running and healthy", {"restart": bad}, [table])


@step("Restart them", timeout=180, changes=True, on_failure="stop-host")
def restart(ctx: StepContext) -> StepResult:
    """`docker compose restart` for each service found (a stopped container is started, an
    unhealthy one restarted); a missing container is created with `docker compose up -d --no-deps`.
    Volumes are never touched."""
    bad = ctx.memory.get("restart", [])
    if not bad:
        return ctx.ok("nothing to restart")
    if ctx.check:
        return ctx.skipped(f"check mode: would restart {', '.join(bad)}", {"would_restart": bad})
    out = ctx.sh(compose(ctx, "ps", "-a", "--services"))
    existing = set(out.lines())
    cmds = []
    missing = [s for s in bad if s not in existing]
    present = [s for s in bad if s in existing]
    if present:
        cmds.append(compose(ctx, "restart", *map(shlex.quote, present)))
    if missing:
        cmds.append(compose(ctx, "up", "-d", "--no-deps", *map(shlex.quote, missing)))
    res = ctx.sh(" && ".join(cmds))
    if not res.ok:
        return ctx.failed(f"restart failed: {res.stderr.strip()[-400:]}")
    return ctx.changed(f"restarted {', '.join(bad)}", {"restarted": bad})


#: seconds between health polls
POLL_INTERVAL = 3


def _waiting(ctx: StepContext, services: list[str]) -> tuple[list[str], dict]:
    """``(services not running and healthy yet, all states)``."""
    states = parse_states(ctx.sh(container_states(ctx)).stdout)
    return [s for s in services if not (states.get(s) and states[s].up)], states


@step("Wait for health", timeout=1800, changes=False)
def wait_health(ctx: StepContext) -> StepResult:
    """Poll the restarted services until every one is running and healthy, up to `wait_timeout`
    seconds; on timeout report the unhealthy services with their last log lines."""
    bad = ctx.memory.get("restart", [])
    if not bad:
        return ctx.ok("nothing was restarted")
    if ctx.check:
        return ctx.skipped("check mode: nothing restarted")
    poll = Retrying(
        stop=stop_after_delay(ctx.params.wait_timeout), wait=wait_fixed(POLL_INTERVAL),
        retry=retry_if_result(lambda outcome: bool(outcome[0])),
        retry_error_callback=lambda state: state.outcome.result(),  # timed out: the last poll's answer
    )
    waiting, states = poll(_waiting, ctx, bad)
    if not waiting:
        rows = [[s, states[s].status, states[s].health, states[s].restarts] for s in bad]
        return ctx.ok(f"healthy again: {', '.join(bad)}", {"healthy": bad},
                      [Table("after restart", ["service", "status", "health", "restarts"], rows)])
    logs = ctx.sh(compose(ctx, "logs", "--no-color", "--tail", "20", *waiting) + " 2>&1").stdout
    return ctx.failed(f"not healthy after {ctx.params.wait_timeout} s: {', '.join(waiting)}", {"unhealthy": waiting},
                      [Table("last log lines", ["line"], [[l] for l in logs.splitlines()[-40:]])])


RUNBOOK = Runbook(
    name="emergency-restart",
    title="Emergency restart",
    doc=__doc__,
    params=RestartParams,
    steps=(find, restart, wait_health),
)
