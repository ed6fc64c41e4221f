"""A runbook run driven step by step: the object behind a live notebook's cells.

:class:`Session` holds one run of the engine's runner (:mod:`runbooks.engine.runner`) open and
runs its phases on request instead of all at once::

    Session(...)          plan: run directory, masker, events.jsonl, result (as ``runner.run``)
    .run(step_name)       lock (on the first changing step, or at start with ``lock_at_start``),
                          then the step on its hosts, then result.json + report.md rewritten
    .close()              unlock, record (result.json, report.md, report.ipynb), rotation

So a notebook run writes the same run directory, with the same fields, as ``runbook run``; the
step statuses come from the same code. Differences, by design:

* steps run in the order the cells run; a step run again is recorded again with ``attempt`` 2, 3,
  ... (the run's summary counts every attempt);
* a destructive step refuses (is recorded ``skipped`` with :data:`~runbooks.engine.runner.NOT_APPROVED`)
  unless the session or the cell passes ``approve=True``; check mode never runs it for real;
* the host lock is taken lazily, before the first step that changes the host or runs the deploy
  (a ``pyinfra`` step: the deploy executor takes the run's lock again after the deploy, so the run
  must hold it); a read-only step never waits for it. ``lock_at_start=True`` takes it before the
  first step, as the CLI does.

Everything shown (:class:`StepView`, :class:`RunView`) is built from masked data.
"""

from __future__ import annotations

import base64
import html
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from runbooks.core.errors import RunbookError
from runbooks.core.types import Executor, HostTarget
from runbooks.engine.model import Runbook
from runbooks.engine.results import RunResult, StepRecord
from runbooks.engine.runner import RunOptions, _Run

__all__ = ["Session", "StepView", "RunView", "SessionClosed"]


class SessionClosed(RunbookError):
    """A cell ran after the session was closed."""


def _html_table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells)


_RESULT_COLUMNS = ["host", "status", "message", "attempts", "seconds"]


class StepView:
    """One step's (masked) record as a notebook shows it: an HTML table of the per-host results,
    the step's own tables and its attached PNGs (read from ``run_dir``, inline as base64);
    ``text/plain`` as fallback.

    + record: the :class:`~runbooks.engine.results.StepRecord` (masked)
    + status: ``{host: "ok" | "changed" | "failed" | "skipped"}``
    + data: ``{host: {...}}``, the steps' structured data, for the operator's own cells
    + failed: hosts whose result is ``failed``
    """

    def __init__(self, record: StepRecord, run_dir: str | Path | None = None):
        self.record = record
        self.run_dir = Path(run_dir) if run_dir else None
        self.name = record.name
        self.status = {h: r.status for h, r in record.results.items()}
        self.data = {h: r.data for h, r in record.results.items()}
        self.failed = [h for h, s in self.status.items() if s == "failed"]

    def _rows(self) -> list[list[Any]]:
        return [[h, r.status, r.message, r.attempts, f"{r.duration_s:.1f}"] for h, r in self.record.results.items()]

    def _title(self) -> str:
        again = f" (attempt {self.record.attempt})" if self.record.attempt > 1 else ""
        return f"{self.name}{again}"

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self._title())}</b></p>", _html_table(_RESULT_COLUMNS, self._rows())]
        for h, r in self.record.results.items():
            for t in r.tables:
                parts.append(f"<p><b>{html.escape(h)}: {html.escape(t.title)}</b></p>")
                parts.append(_html_table(t.columns, t.rows) if t.rows else "<p><i>(empty)</i></p>")
            for name in r.files:
                path = self.run_dir / name if self.run_dir else None
                if path and name.lower().endswith(".png") and path.resolve().parent == self.run_dir.resolve() and path.is_file():
                    png = base64.b64encode(path.read_bytes()).decode("ascii")
                    parts.append(f'<p><img alt="{html.escape(h)}: {html.escape(name)}" src="data:image/png;base64,{png}"></p>')
                else:
                    parts.append(f"<p>{html.escape(h)}: attachment <code>{html.escape(name)}</code></p>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        out = [self._title(), _text_table(_RESULT_COLUMNS, self._rows())]
        for h, r in self.record.results.items():
            for t in r.tables:
                out += ["", f"{h}: {t.title}", _text_table(t.columns, t.rows) if t.rows else "(empty)"]
        return "\n".join(out)


class RunView:
    """The finished run as a notebook shows it: the hosts-by-steps matrix and where the run
    directory is. ``result`` is the masked :class:`~runbooks.engine.results.RunResult`."""

    def __init__(self, result: RunResult):
        self.result = result

    def _matrix(self) -> tuple[list[str], list[list[Any]]]:
        rows = []
        for s in self.result.steps:
            name = s.name + (f" (attempt {s.attempt})" if s.attempt > 1 else "")
            rows.append([name] + [s.results[h].status if h in s.results else "-" for h in self.result.hosts])
        return ["step"] + self.result.hosts, rows

    def _repr_html_(self) -> str:
        r = self.result
        head = (f"<p><b>{html.escape(r.runbook)}</b> run <code>{html.escape(r.run_id)}</code>: "
                f"<b>{html.escape(r.status)}</b>{' (check mode)' if r.check else ''}; "
                f"run directory <code>{html.escape(r.run_dir)}</code></p>")
        return head + _html_table(*self._matrix())

    def __repr__(self) -> str:
        r = self.result
        return (f"{r.runbook} run {r.run_id}: {r.status}{' (check mode)' if r.check else ''}\n"
                f"{_text_table(*self._matrix())}\nrun directory: {r.run_dir}")


class Session:
    """One run of ``runbook`` on ``hosts``, step by step (see the module docstring).

    + params: the validated parameter model
    + executors: ``{"remote", "pyinfra", "local"}`` as for :func:`runbooks.engine.runner.run`
    + lock_at_start: take the host lock now rather than before the first changing step
    + on_close: called once after :meth:`close` recorded the run (e.g. to close the executors)
    + options: the fields of :class:`~runbooks.engine.runner.RunOptions` (``check``, ``approve``,
      ``runs_dir``, ``run_id``, ...); ``approve`` must be a bool here (no interactive confirm)

    Raises whatever :class:`RunOptions` and the run directory creation raise (``TypeError``,
    ``FileExistsError`` for a run ID already used).
    """

    def __init__(self, runbook: Runbook, hosts: list[HostTarget], params: BaseModel, executors: Mapping[str, Executor],
                 *, lock_at_start: bool = False, on_close: Callable[[], None] | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None, **options: Any):
        self.runbook = runbook
        self._run = _Run(runbook, hosts, params, executors, RunOptions(**options), on_event)
        self._on_close = on_close
        self._lock_taken = False
        self._mutex = threading.Lock()
        self.closed = False
        self.result: RunResult | None = None
        #: ``{step name: StepView}`` of the latest attempt of each step run so far
        self.steps: dict[str, StepView] = {}
        if lock_at_start:
            self._take_lock()
        self._run.checkpoint()

    @property
    def run_id(self) -> str:
        """The run's ID (the run directory's name)."""
        return self._run.run_id

    @property
    def run_dir(self) -> str:
        """The run directory (``events.jsonl``, ``result.json``, ``report.md``; ``report.ipynb`` on close)."""
        return str(self._run.run_dir)

    @property
    def locked_hosts(self) -> list[str]:
        """Hosts whose lock this session holds."""
        return [h.name for h in self._run.locked]

    def __repr__(self) -> str:
        r = self._run.result
        return (f"{self.runbook.name} session, run {r.run_id}{' (check mode)' if r.check else ''} on "
                f"{', '.join(r.hosts) or 'no host'}; steps: {', '.join(s.name for s in self.runbook.steps)}; "
                f"run directory {self.run_dir}")

    def _take_lock(self) -> None:
        if not self._lock_taken:
            self._lock_taken = True
            self._run.lock()

    def run(self, name: str, *, approve: bool | None = None) -> StepView:
        """Run the step called ``name`` on its hosts now; its (masked) :class:`StepView`.

        + approve: approve this destructive step (default: the session's ``approve``)

        Step failures do not raise (they are in the view, as in the CLI's report). Raises
        :class:`~runbooks.core.errors.RunbookError` for an unknown step name and
        :class:`SessionClosed` after :meth:`close`. An interrupt (the notebook's stop button)
        aborts the run as Ctrl-C aborts ``runbook run``: the step's commands are stopped, later
        steps are recorded skipped; the lock is released on :meth:`close`.
        """
        with self._mutex:
            if self.closed:
                raise SessionClosed(f"session of run {self.run_id} is closed; open a new one to run {name!r}")
            step = next((s for s in self.runbook.steps if s.name == name), None)
            if step is None:
                known = ", ".join(repr(s.name) for s in self.runbook.steps)
                raise RunbookError(f"runbook {self.runbook.name!r} has no step {name!r} (steps: {known})")
            try:
                if self.runbook.lock and (step.changes or step.executor == "pyinfra"):
                    self._take_lock()
                rec = self._run.step(step, approve)
            except KeyboardInterrupt:
                self._run.abort("run aborted by an interrupt (notebook)")
                raise
            finally:
                self._run.checkpoint()
            view = StepView(StepRecord.model_validate(self._run.masker.obj(rec.model_dump(mode="json"))), self.run_dir)
            self.steps[name] = view
            return view

    def close(self) -> RunView:
        """Release the lock, write the run's records (as the CLI's run does), call ``on_close``;
        the finished run's :class:`RunView`. Idempotent: a second call returns the same view."""
        with self._mutex:
            if self.result is None:
                self.closed = True
                try:
                    self._run.unlock()
                    self.result = self._run.record()
                finally:
                    if self._on_close:
                        self._on_close()
            return RunView(self.result)
