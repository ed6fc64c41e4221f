"""Running a runbook: ordered across steps, parallel across hosts, with the per-host lock.

:func:`run` is the engine's one entry point and reads as its phases::

    plan    _Run(...)      run directory, masker, event log, previous run's data, empty result
    lock    .lock()        every target takes the lock a deploy takes: a host the per-host lock
                           (deploys/contract/lock.py, through the ``remote`` executor, sudo), an
                           AWS environment its DynamoDB lock (deploys/contract/aws_lock.py,
                           through the ``aws`` executor: a LockingExecutor); the target names
                           the executor kind (``lock_executor``); a target whose lock another
                           live run holds runs nothing else
    steps   .step(s)       each step in order; its hosts in parallel (``forks`` at most), or
                           ``serial`` hosts at a time, halting at a failed batch; the
                           next step starts when every host finished (Ansible's *linear*
                           strategy); attempts, retries and the on-failure policy per host
    unlock  .unlock()      release this run's locks (also after a failure or an abort)
    record  .record()      result.json, report.md, report.ipynb (all masked); rotation

Timeouts and aborts are one mechanism (:mod:`runbooks.core.process`): every attempt runs in its
own :class:`~runbooks.core.process.Scope`; when the attempt outlives the step's timeout, or the
run is aborted (Ctrl-C, or SIGTERM/SIGHUP turned into ``KeyboardInterrupt`` by the CLI), the
scope is cancelled, which kills the process groups of every command the attempt started. Only
then are the locks released.
"""

from __future__ import annotations

import os
import secrets as _random
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from deploys.contract.lock import LOCKED_EXIT, acquire_command, holder, release_command
from deploys.contract.paths import local_state_dir
from runbooks.core.errors import CommandCancelled, CommandTimeout, RunbookError
from runbooks.core.process import Scope, use_scope
from runbooks.core.types import Executor, HostTarget, LockingExecutor
from runbooks.engine.masking import Masker
from runbooks.engine.model import Runbook, Step, StepContext, StepResult
from runbooks.engine.notebook import write_notebook
from runbooks.engine.reports import EventLog, render_markdown, utc_now, write_result
from runbooks.engine.results import LOCK_STEP, UNLOCK_STEP, HostResult, RunResult, StepRecord, load_result
from runbooks.engine.rotation import EVENTS_FILE, REPORT_FILE, RESULT_FILE, rotate_runs, run_dirs
from runbooks.engine.targets import secret_values

__all__ = ["run", "RunOptions", "new_run_id", "default_runs_dir", "LOCK_STEP", "UNLOCK_STEP", "previous_result",
           "NOT_APPROVED"]

Approval = bool | Callable[[Step], bool]

_LOCK_DOC = ("The per-host lock a deploy takes too (`deploys/contract/lock.py`): "
             "a runbook and a deploy never change one host at once.")
#: The message of a destructive step that was not approved (CLI and notebook cells alike).
NOT_APPROVED = "destructive step not approved (use --yes; in a notebook: approve=True)"
_UNLOCK_DOC = "Release this run's lock (also after a failure)."


def default_runs_dir() -> Path:
    """``$ORDEROPS_RUNS_DIR``, else ``runs/`` in the state dir (:func:`deploys.contract.paths.local_state_dir`)."""
    if os.environ.get("ORDEROPS_RUNS_DIR"):
        return Path(os.environ["ORDEROPS_RUNS_DIR"])
    return local_state_dir() / "runs"


def new_run_id(runbook: str) -> str:
    """``<UTC yyyymmddThhmmssZ>-<runbook>-<6 hex>``: unique and sortable by start time."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{runbook}-{_random.token_hex(3)}"


def previous_result(runs_dir: Path, runbook: str, exclude: str | None = None) -> RunResult | None:
    """The newest finished, non-check result of ``runbook`` under ``runs_dir`` (any schema version)."""
    for d in reversed(run_dirs(runs_dir)):
        if d.name == exclude or not (d / RESULT_FILE).exists():
            continue
        try:
            data = load_result(d)
        except (OSError, ValueError):
            continue
        if data.runbook == runbook and not data.check:
            return data
    return None


@dataclass(frozen=True)
class RunOptions:
    """How to run (the keyword arguments of :func:`run`).

    + inventory: the inventory path, for the record
    + limit: the ``--limit`` patterns, for the record
    + check: check mode; ``approve``: ``True`` (``--yes``), ``False``, or a callable asked once
      per destructive step (interactive confirm)
    + runs_dir: parent of the run directory (default :func:`default_runs_dir`)
    + forks: hosts run in parallel
    + keep_runs / keep_days: rotation of older run directories (count / days)
    + run_id: default :func:`new_run_id`
    + extra_secrets: more values to mask
    + grace: seconds between ``SIGTERM`` and ``SIGKILL`` when a step's commands are stopped
    """

    inventory: str = ""
    limit: list[str] | None = None
    check: bool = False
    approve: Approval = False
    runs_dir: Path | None = None
    forks: int = 10
    keep_runs: int = 50
    keep_days: float = 30.0
    run_id: str | None = None
    extra_secrets: tuple[str, ...] | list[str] = ()
    grace: float = 2.0


def run(runbook: Runbook, hosts: list[HostTarget], params: BaseModel, executors: Mapping[str, Executor], *,
        on_event: Callable[[dict[str, Any]], None] | None = None, **options: Any) -> RunResult:
    """Run ``runbook`` on ``hosts`` and write its run directory; returns the masked :class:`RunResult`.

    + params: the validated parameter model (see :mod:`runbooks.engine.params`)
    + executors: ``{"remote": ..., "pyinfra": ..., "local": ...}``; steps pick theirs by kind
    + on_event: called with every (masked) event, e.g. for progress output
    + options: the fields of :class:`RunOptions`

    Step failures never raise; they are in the result. An interrupt (``KeyboardInterrupt``) is
    recorded as an abort and re-raised after the locks are released and the reports written.
    """
    r = _Run(runbook, hosts, params, executors, RunOptions(**options), on_event)  # plan
    try:
        r.lock()
        for step in runbook.steps:
            r.step(step)
    except KeyboardInterrupt:
        r.abort("run aborted by a signal")
        raise
    finally:
        r.unlock()
        result = r.record()
    return result


class _Run:
    """The state of one run; each public method is one phase of :func:`run`."""

    def __init__(self, runbook: Runbook, hosts: list[HostTarget], params: BaseModel,
                 executors: Mapping[str, Executor], opts: RunOptions, on_event: Callable[[dict[str, Any]], None] | None):
        self.runbook, self.hosts, self.params, self.executors, self.opts = runbook, hosts, params, dict(executors), opts
        self.on_event = on_event
        self.run_id = opts.run_id or new_run_id(runbook.name)
        self.runs_dir = Path(opts.runs_dir or default_runs_dir())
        self.run_dir = self.runs_dir / self.run_id
        self.run_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        self.masker = Masker(secret_values(hosts) + list(opts.extra_secrets))
        self.log = EventLog(self.run_dir / EVENTS_FILE, self.run_id, self.masker)
        self.previous = _previous_by_host(previous_result(self.runs_dir, runbook.name, exclude=self.run_id))
        self.result = RunResult(
            run_id=self.run_id, runbook=runbook.name, title=runbook.title, inventory=str(opts.inventory),
            check=opts.check, approved=opts.approve is True, params=params.model_dump(mode="json"), limit=opts.limit,
            started_at=utc_now(), hosts=[h.name for h in hosts], run_dir=str(self.run_dir),
        )
        self.t0 = time.monotonic()
        self.active = {h.name: h for h in hosts}
        self.memory: dict[str, dict[str, Any]] = {h.name: {} for h in hosts}
        self.locked: list[HostTarget] = []
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(opts.forks, len(hosts) or 1)), thread_name_prefix="runbook-host")
        self._scopes: set[Scope] = set()
        self._scopes_lock = threading.Lock()
        self.emit("run-start", runbook=runbook.name, hosts=self.result.hosts, check=opts.check, params=self.result.params)

    # --- events and records -------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        record = self.log.emit(event, **fields)
        if self.on_event:
            self.on_event(record)

    def _record(self, name: str, doc: str, kind: str = "step", step: Step | None = None) -> StepRecord:
        rec = StepRecord(
            name=name, doc=doc, kind=kind, target=step.target if step else "all",
            executor=step.executor if step else "remote", changes=bool(step and step.changes),
            destructive=bool(step and step.destructive), on_failure=step.on_failure if step else "stop-host",
            serial=step.serial if step else 0,
        )
        self.result.steps.append(rec)
        self.emit("step-start", step=name, target=rec.target)
        return rec

    def _put(self, rec: StepRecord, host: str, hr: HostResult) -> None:
        rec.results[host] = hr
        self.emit("host-result", step=rec.name, host=host, **hr.model_dump(mode="json"))

    def _skip(self, rec: StepRecord, hosts: list[HostTarget], message: str) -> None:
        for h in hosts:
            self._put(rec, h.name, HostResult(status="skipped", message=message, started_at=utc_now()))

    # --- lock -----------------------------------------------------------------------------
    def lock(self) -> None:
        """Take every host's lock; hosts that cannot run nothing else."""
        if not (self.runbook.lock and self.hosts):
            return
        rec = self._record(LOCK_STEP, _LOCK_DOC, "lock")
        for h, hr in self.pool.map(self._take_lock, list(self.active.values())):
            self._put(rec, h.name, hr)
            if hr.status == "ok":
                self.locked.append(h)
            else:
                self.active.pop(h.name, None)

    def _take_lock(self, h: HostTarget) -> tuple[HostTarget, HostResult]:
        start, at = time.monotonic(), utc_now()
        executor = self.executors[h.lock_executor]
        try:
            with use_scope(Scope(f"lock on {h.name}")):
                if isinstance(executor, LockingExecutor):
                    out = executor.acquire_lock(h, self.run_id, holder())
                else:
                    cmd = acquire_command(self.run_id, h.settings.lock_ttl, holder())
                    out = executor.run(h, cmd, sudo=True, timeout=60)
            text = (out.stdout + out.stderr).strip()
            if out.rc == 0:
                return h, _host_result(StepResult("ok", text or "acquired"), 1, start, at)
            what = "environment" if isinstance(executor, LockingExecutor) else "host"
            msg = f"{what} is busy: {text}" if out.rc == LOCKED_EXIT else f"lock script failed (rc {out.rc}): {text}"
        except RunbookError as e:
            msg = f"could not take the lock: {e}"
        return h, _host_result(StepResult("failed", msg), 1, start, at)

    # --- steps ----------------------------------------------------------------------------
    def step(self, step: Step, approve: Approval | None = None) -> StepRecord:
        """Run ``step`` on its active target hosts in parallel, then apply its on-failure policy;
        its record. ``approve`` overrides the run's approval for this step (a notebook cell's
        ``approve=True``). A step run again (a notebook cell run twice) is a new record whose
        ``attempt`` counts on."""
        rec = self._record(step.name, step.doc, "step", step)
        rec.attempt = sum(1 for s in self.result.steps if s.name == step.name and s.kind == "step")
        self._step(rec, step, self.opts.approve if approve is None else approve)
        return rec

    def _step(self, rec: StepRecord, step: Step, approve: Approval) -> None:
        targets = [h for h in self.hosts if step.target in ("all", h.name) or step.target in h.groups]
        self._skip(rec, [h for h in targets if h.name not in self.active], "host stopped earlier in this run")
        targets = [h for h in targets if h.name in self.active]
        if self.result.aborted:
            return self._skip(rec, targets, "run aborted")
        approved = True
        if step.destructive and not self.opts.check and targets:
            approved = approve(step) if callable(approve) else bool(approve)
            if not approved:
                return self._skip(rec, targets, NOT_APPROVED)
        size = step.serial or len(targets) or 1
        for i in range(0, len(targets), size):
            failed = []
            for h, hr in self.pool.map(lambda h: self._on_host(step, h, approved), targets[i:i + size]):
                self._put(rec, h.name, hr)
                if hr.status == "failed":
                    failed.append(h.name)
                    if step.on_failure == "stop-host":
                        self.active.pop(h.name, None)
                    elif step.on_failure == "abort":
                        self.result.aborted = True
            rest = targets[i + size:]
            if failed and rest:  # a serial step halts at the first failed batch
                self._skip(rec, rest, f"not run: serial step stopped after it failed on {', '.join(failed)}")
                for h in rest:
                    self.active.pop(h.name, None)
                return

    def _on_host(self, step: Step, h: HostTarget, approved: bool) -> tuple[HostTarget, HostResult]:
        start, at = time.monotonic(), utc_now()
        retrying = Retrying(  # a failed attempt is retried `retries` times, `retry_delay` s apart, not after an abort
            stop=stop_after_attempt(step.retries + 1), wait=wait_fixed(step.retry_delay),
            retry=retry_if_result(lambda out: out.status == "failed" and not self.result.aborted),
            before_sleep=lambda rs: self.emit("retry", step=step.name, host=h.name, attempt=rs.attempt_number,
                                              message=rs.outcome.result().message),
            retry_error_callback=lambda rs: rs.outcome.result(),
        )
        out = retrying(lambda: self._attempt(step, self._context(step, h, approved)))
        attempts = retrying.statistics.get("attempt_number", 1)
        if self.opts.check and step.changes and out.status == "changed":
            out = StepResult("failed", f"changing step changed the host in check mode: {out.message}", out.data, out.tables,
                             out.files)
        return h, _host_result(out, attempts, start, at)

    def _context(self, step: Step, h: HostTarget, approved: bool) -> StepContext:
        return StepContext(
            host=h, params=self.params, check=self.opts.check, approved=approved, executor=self.executors[step.executor],
            executors=self.executors, run_id=self.run_id, memory=self.memory[h.name],
            previous=self.previous.get(h.name, {}), deadline=time.monotonic() + step.timeout, run_dir=self.run_dir,
        )

    def _attempt(self, step: Step, ctx: StepContext) -> StepResult:
        """One attempt in its own thread and scope; past the step's timeout the scope is
        cancelled (its commands' process groups killed) and the attempt is a failure."""
        scope = Scope(f"step {step.name!r} on {ctx.host.name}")
        box: dict[str, Any] = {}

        def target() -> None:
            with use_scope(scope):
                try:
                    box["result"] = step.func(ctx)
                except BaseException as e:  # noqa: BLE001 - reported as the step's failure
                    box["error"] = e

        t = threading.Thread(target=target, name=f"step-{step.name}-{ctx.host.name}", daemon=True)
        with self._scopes_lock:
            self._scopes.add(scope)
        try:
            t.start()
            t.join(step.timeout)
            if t.is_alive():
                scope.cancel(f"step timed out after {step.timeout:g} s", self.opts.grace)
                t.join(self.opts.grace + 5)  # a step stuck in pure Python stays behind (daemon thread)
                return StepResult("failed", f"timed out after {step.timeout:g} s (its commands were stopped)")
        finally:
            with self._scopes_lock:
                self._scopes.discard(scope)
        return _outcome(box)

    # --- abort, unlock, record ------------------------------------------------------------
    def abort(self, reason: str) -> None:
        """Record the abort and stop every running command (cancel every live scope)."""
        self.result.aborted = True
        with self._scopes_lock:
            scopes = list(self._scopes)
        for scope in scopes:
            scope.cancel(reason, self.opts.grace)

    def unlock(self) -> None:
        """Release this run's locks (a fresh pool: threads of an aborted step may still be busy)."""
        self.pool.shutdown(wait=False)
        if not self.locked:
            return
        rec = self._record(UNLOCK_STEP, _UNLOCK_DOC, "unlock")
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(self.opts.forks, len(self.locked))), thread_name_prefix="runbook-unlock") as pool:
                released = list(pool.map(self._release_lock, self.locked))
        except RuntimeError:  # interpreter shutdown (a notebook kernel's atexit): no new threads, one by one
            released = [self._release_lock(h) for h in self.locked]
        for h, hr in released:
            self._put(rec, h.name, hr)

    def _release_lock(self, h: HostTarget) -> tuple[HostTarget, HostResult]:
        start, at = time.monotonic(), utc_now()
        executor = self.executors[h.lock_executor]
        try:
            with use_scope(Scope(f"unlock on {h.name}")):
                if isinstance(executor, LockingExecutor):
                    out = executor.release_lock(h, self.run_id)
                else:
                    out = executor.run(h, release_command(self.run_id), sudo=True, timeout=60)
            status = "ok" if out.rc == 0 else "failed"
            return h, _host_result(StepResult(status, out.stdout.strip() or out.stderr.strip()), 1, start, at)
        except RunbookError as e:
            return h, _host_result(StepResult("failed", f"could not release the lock: {e}"), 1, start, at)

    def checkpoint(self) -> dict[str, Any]:
        """Write result.json and report.md of the run so far (masked); the masked result dict.
        A step-by-step session (:mod:`runbooks.engine.session`) calls it after every step."""
        self.result.finished_at = utc_now()
        self.result.duration_s = time.monotonic() - self.t0
        data = self.masker.obj(self.result.model_dump(mode="json"))
        write_result(self.run_dir, data)
        md = self.run_dir / REPORT_FILE
        md.write_text(render_markdown(data))
        md.chmod(0o600)
        return data

    def record(self) -> RunResult:
        """Write result.json, report.md and report.ipynb (masked), rotate; the masked result."""
        data = self.checkpoint()
        self.emit("run-end", status=data["status"], summary=data["summary"], duration_s=data["duration_s"])
        self.log.close()
        write_notebook(self.run_dir, data)
        rotate_runs(self.runs_dir, keep=self.opts.keep_runs, max_age_days=self.opts.keep_days, protect=self.run_dir)
        masked = RunResult.model_validate(data)
        masked.run_dir = str(self.run_dir)
        return masked


def _previous_by_host(previous: RunResult | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in previous.steps if previous else []:
        for host, hr in s.results.items():
            out.setdefault(host, {})[s.name] = hr.data
    return out


def _outcome(box: dict[str, Any]) -> StepResult:
    if "error" in box:
        e = box["error"]
        if isinstance(e, CommandTimeout):
            return StepResult("failed", f"timed out: {e}")
        if isinstance(e, (CommandCancelled, RunbookError)):
            return StepResult("failed", str(e))
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return StepResult("failed", f"step raised {tb}")
    result = box.get("result")
    if not isinstance(result, StepResult):
        return StepResult("failed", f"step returned {type(result).__name__}, not a StepResult")
    return result


def _host_result(result: StepResult, attempts: int, started: float, started_at: str) -> HostResult:
    return HostResult(
        status=result.status, message=result.message, data=dict(result.data), tables=list(result.tables),
        files=list(result.files), attempts=attempts, duration_s=time.monotonic() - started, started_at=started_at,
    )
