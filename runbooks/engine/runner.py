"""Running a runbook: ordered across steps, parallel across hosts, with the per-host lock.

:func:`run` is the engine's one entry point. For each step in order, the hosts the step targets
(and that are still active) run it in parallel threads (``forks`` at most); the next step starts
when every host finished the current one (Ansible's *linear* strategy). Each attempt has the
step's timeout; a failed attempt is retried ``retries`` times. The step's on-failure policy then
applies (``continue`` / ``stop-host`` / ``abort``).

Before the first step every host takes the same per-host lock a deploy takes
(``deploys/operations/lock.py``'s :func:`acquire_script`, run through the ``remote`` executor with
sudo); a host whose lock is held by another live run fails that step and runs nothing else. The
lock is released after the last step, also when the run failed or was aborted.

The run directory receives ``events.jsonl`` while running, then ``result.json``, ``report.md``
and ``report.ipynb`` (all masked); old run directories are rotated.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deploys.operations.lock import LOCKED_EXIT, acquire_script, holder, release_script
from runbooks.core.errors import CommandTimeout, RunbookError
from runbooks.engine.masking import Masker
from runbooks.engine.model import Runbook, Step, StepContext, StepResult, Table
from runbooks.engine.notebook import write_notebook
from runbooks.engine.reports import EventLog, render_markdown, utc_now, write_result
from runbooks.engine.results import HostResult, RunResult, StepRecord
from runbooks.engine.rotation import rotate_runs, run_dirs
from runbooks.engine.targets import secret_values
from runbooks.core.types import Executor, HostTarget

__all__ = ["run", "new_run_id", "default_runs_dir", "LOCK_STEP", "UNLOCK_STEP", "previous_result"]

LOCK_STEP = "Take the host lock"
UNLOCK_STEP = "Release the host lock"

Approval = bool | Callable[[Step], bool]


def default_runs_dir() -> Path:
    """``$ORDEROPS_RUNS_DIR``, else ``$ORDEROPS_STATE_DIR/runs``, else ``.orderops/runs``."""
    if os.environ.get("ORDEROPS_RUNS_DIR"):
        return Path(os.environ["ORDEROPS_RUNS_DIR"])
    return Path(os.environ.get("ORDEROPS_STATE_DIR", ".orderops")) / "runs"


def new_run_id(runbook: str) -> str:
    """``<UTC yyyymmddThhmmssZ>-<runbook>-<6 hex>``: unique and sortable by start time."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{runbook}-{_random.token_hex(3)}"


def previous_result(runs_dir: Path, runbook: str, exclude: str | None = None) -> dict[str, Any] | None:
    """The newest finished, non-check ``result.json`` of ``runbook`` under ``runs_dir`` (or ``None``)."""
    for d in reversed(run_dirs(runs_dir)):
        if d.name == exclude or not (d / "result.json").exists():
            continue
        try:
            data = json.loads((d / "result.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("runbook") == runbook and not data.get("check"):
            return data
    return None


def _previous_by_host(previous: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in (previous or {}).get("steps", []):
        for host, hr in s.get("results", {}).items():
            out.setdefault(host, {})[s["name"]] = hr.get("data", {})
    return out


def _attempt(step: Step, ctx: StepContext) -> StepResult:
    """Run one attempt in a daemon thread; a timeout becomes a failed result."""
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = step.func(ctx)
        except BaseException as e:  # noqa: BLE001 - reported as the step's failure
            box["error"] = e

    t = threading.Thread(target=target, name=f"step-{step.name}-{ctx.host.name}", daemon=True)
    t.start()
    t.join(step.timeout)
    if t.is_alive():
        return StepResult("failed", f"timed out after {step.timeout:g} s")
    if "error" in box:
        e = box["error"]
        if isinstance(e, CommandTimeout):
            return StepResult("failed", f"timed out: {e}")
        if isinstance(e, RunbookError):
            return StepResult("failed", str(e))
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return StepResult("failed", f"step raised {tb}")
    result = box.get("result")
    if not isinstance(result, StepResult):
        return StepResult("failed", f"step returned {type(result).__name__}, not a StepResult")
    return result


def _host_result(result: StepResult, attempts: int, started: float, started_at: str) -> HostResult:
    return HostResult(
        status=result.status, message=result.message, data=dict(result.data),
        tables=[t.to_dict() if isinstance(t, Table) else dict(t) for t in result.tables],
        attempts=attempts, duration_s=time.monotonic() - started, started_at=started_at,
    )


def run(
    runbook: Runbook,
    hosts: list[HostTarget],
    params: BaseModel,
    executors: Mapping[str, Executor],
    *,
    inventory: str = "",
    limit: list[str] | None = None,
    check: bool = False,
    approve: Approval = False,
    runs_dir: Path | None = None,
    forks: int = 10,
    keep_runs: int = 50,
    keep_days: float = 30.0,
    run_id: str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    extra_secrets: list[str] | None = None,
) -> RunResult:
    """Run ``runbook`` on ``hosts`` and write its run directory; returns the :class:`RunResult`.

    + params: the validated parameter model (see :mod:`runbooks.engine.params`)
    + executors: ``{"remote": ..., "pyinfra": ..., "local": ...}``; steps pick theirs by kind
    + check: check mode; ``approve``: ``True`` (``--yes``), ``False``, or a callable asked once
      per destructive step (interactive confirm)
    + runs_dir: parent of the run directory (default :func:`default_runs_dir`)
    + keep_runs / keep_days: rotation of older run directories
    + on_event: called with every (masked) event, e.g. for progress output

    Step failures never raise; they are in the result. Raises only for programming errors.
    """
    run_id = run_id or new_run_id(runbook.name)
    runs_dir = Path(runs_dir or default_runs_dir())
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
    masker = Masker(secret_values(hosts) + list(extra_secrets or []))
    log = EventLog(run_dir / "events.jsonl", run_id, masker)

    def emit(event: str, **fields: Any) -> None:
        record = log.emit(event, **fields)
        if on_event:
            on_event(record)

    previous = _previous_by_host(previous_result(runs_dir, runbook.name, exclude=run_id))
    result = RunResult(
        run_id=run_id, runbook=runbook.name, title=runbook.title, inventory=str(inventory), check=check,
        approved=approve is True, params=params.model_dump(mode="json"), limit=limit, started_at=utc_now(),
        hosts=[h.name for h in hosts], run_dir=str(run_dir),
    )
    t0 = time.monotonic()
    emit("run-start", runbook=runbook.name, hosts=result.hosts, check=check, params=result.params)
    active = {h.name: h for h in hosts}
    memory: dict[str, dict[str, Any]] = {h.name: {} for h in hosts}
    locked: list[HostTarget] = []
    pool = ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts) or 1)), thread_name_prefix="runbook-host")

    def record_for(step: Step | None, name: str, doc: str, target: str = "all", executor: str = "remote") -> StepRecord:
        rec = StepRecord(
            name=name, doc=doc, target=target, executor=executor,
            changes=bool(step and step.changes), destructive=bool(step and step.destructive),
            on_failure=step.on_failure if step else "stop-host",
        )
        result.steps.append(rec)
        emit("step-start", step=name, target=target)
        return rec

    def put(rec: StepRecord, host: str, hr: HostResult) -> None:
        rec.results[host] = hr
        emit("host-result", step=rec.name, host=host, **hr.to_dict())

    try:
        if runbook.lock and hosts:
            rec = record_for(None, LOCK_STEP, "The per-host lock a deploy takes too (`deploys/operations/lock.py`): "
                             "a runbook and a deploy never change one host at once.")
            ex = executors["remote"]

            def take(h: HostTarget) -> tuple[HostTarget, HostResult]:
                start, at = time.monotonic(), utc_now()
                cmd = acquire_script(run_id, h.settings.lock_ttl, holder()).get_raw_value()
                try:
                    out = ex.run(h, cmd, sudo=True, timeout=60)
                    text = (out.stdout + out.stderr).strip()
                    if out.rc == 0:
                        return h, _host_result(StepResult("ok", text or "acquired"), 1, start, at)
                    msg = f"host is busy: {text}" if out.rc == LOCKED_EXIT else f"lock script failed (rc {out.rc}): {text}"
                except RunbookError as e:
                    msg = f"could not take the lock: {e}"
                return h, _host_result(StepResult("failed", msg), 1, start, at)

            for h, hr in pool.map(take, list(active.values())):
                put(rec, h.name, hr)
                if hr.status == "ok":
                    locked.append(h)
                else:
                    active.pop(h.name, None)

        for step in runbook.steps:
            rec = record_for(step, step.name, step.doc, step.target, step.executor)
            targets = [h for h in hosts if step.target == "all" or step.target in h.groups or step.target == h.name]
            for h in targets:
                if h.name not in active:
                    put(rec, h.name, HostResult("skipped", "host stopped earlier in this run", started_at=utc_now()))
            targets = [h for h in targets if h.name in active]
            if result.aborted:
                for h in targets:
                    put(rec, h.name, HostResult("skipped", "run aborted", started_at=utc_now()))
                continue
            approved = True
            if step.destructive and not check and targets:
                approved = approve(step) if callable(approve) else bool(approve)
                if not approved:
                    for h in targets:
                        put(rec, h.name, HostResult("skipped", "destructive step not approved (use --yes)", started_at=utc_now()))
                    continue

            def one(h: HostTarget, step: Step = step, approved: bool = approved) -> tuple[HostTarget, HostResult]:
                start, at = time.monotonic(), utc_now()
                attempts = 0
                while True:
                    attempts += 1
                    ctx = StepContext(
                        host=h, params=params, check=check, approved=approved, executor=executors[step.executor],
                        executors=dict(executors), run_id=run_id, memory=memory[h.name],
                        previous=previous.get(h.name, {}), deadline=time.monotonic() + step.timeout,
                    )
                    out = _attempt(step, ctx)
                    if out.status != "failed" or attempts > step.retries:
                        break
                    emit("retry", step=step.name, host=h.name, attempt=attempts, message=out.message)
                    time.sleep(step.retry_delay)
                if check and step.changes and out.status == "changed":
                    out = StepResult("failed", f"changing step changed the host in check mode: {out.message}", out.data, out.tables)
                return h, _host_result(out, attempts, start, at)

            for h, hr in pool.map(one, targets):
                put(rec, h.name, hr)
                if hr.status == "failed":
                    if step.on_failure == "stop-host":
                        active.pop(h.name, None)
                    elif step.on_failure == "abort":
                        result.aborted = True
    finally:
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            result.aborted = True  # Ctrl-C, or SIGTERM/SIGHUP (the CLI turns them into KeyboardInterrupt)
        if locked:
            rec = record_for(None, UNLOCK_STEP, "Release this run's lock (also after a failure).")
            ex = executors["remote"]

            def release(h: HostTarget) -> tuple[HostTarget, HostResult]:
                start, at = time.monotonic(), utc_now()
                try:
                    out = ex.run(h, release_script(run_id).get_raw_value(), sudo=True, timeout=60)
                    status = "ok" if out.rc == 0 else "failed"
                    return h, _host_result(StepResult(status, out.stdout.strip() or out.stderr.strip()), 1, start, at)
                except RunbookError as e:
                    return h, _host_result(StepResult("failed", f"could not release the lock: {e}"), 1, start, at)

            for h, hr in pool.map(release, locked):
                put(rec, h.name, hr)
        pool.shutdown(wait=False)
        result.finished_at = utc_now()
        result.duration_s = time.monotonic() - t0
        data = masker.obj(result.to_dict())
        emit("run-end", status=data["status"], summary=data["summary"], duration_s=data["duration_s"])
        log.close()
        write_result(run_dir, data)
        md = run_dir / "report.md"
        md.write_text(render_markdown(data))
        md.chmod(0o600)
        write_notebook(run_dir, data)
        rotate_runs(runs_dir, keep=keep_runs, max_age_days=keep_days, protect=run_dir)
    return result
