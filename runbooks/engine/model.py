"""What a runbook is: an ordered list of documented steps, like a notebook's cells.

A runbook module defines ``RUNBOOK = Runbook(...)``. Each :class:`Step` carries Markdown
documentation (its function's docstring), a target (an inventory group, or ``all``), an
executor kind (``remote``, ``pyinfra``, ``local``, or ``aws`` for the boto3 executor), a timeout in seconds, a retry policy and a
policy on failure:

===============  ==========================================================================
``continue``     report the failure and go on with the next step on that host
``stop-host``    skip that host's remaining steps
``abort``        stop the whole run after this step (remaining steps: skipped on every host)
===============  ==========================================================================

``serial=N`` runs the step on ``N`` hosts at a time (Ansible's ``serial``; ``0``: all hosts in
parallel, ``forks`` at most): the next batch starts when the batch before it passed, and a host
whose step fails stops the step for the hosts not yet run (skipped, the reason naming the host)
and takes them out of the rest of the run: a rolling change halts at the first broken host.

``changes=True`` marks a changing step: in check mode it must only report what it would do
(``ctx.check`` is ``True``; the engine passes the flag, the step honours it).
``destructive=True`` additionally needs approval (``--yes`` or an interactive confirm); without
it the step is skipped and reported as such.

A step function receives a :class:`StepContext` and returns a :class:`StepResult` (use
``ctx.ok()``, ``ctx.changed()``, ``ctx.failed()``, ``ctx.skipped()``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from runbooks.core.errors import CommandTimeout, ExecutorError
from runbooks.core.types import CommandResult, Deployer, DeployResult, Executor, HostTarget

__all__ = ["Step", "Runbook", "StepContext", "StepResult", "Table", "step", "OnFailure", "Status"]

OnFailure = Literal["continue", "stop-host", "abort"]
Status = Literal["ok", "changed", "failed", "skipped"]
ExecutorKind = Literal["remote", "pyinfra", "local", "aws"]
#: What a runbook runs against: the hosts of a host inventory, or the environment of an AWS inventory.
Environment = Literal["hosts", "aws"]


@dataclass(frozen=True)
class Table:
    """A table a step reports: ``columns`` (names) and ``rows`` (lists of JSON scalars)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class StepResult:
    """One step's outcome on one host.

    + status: ``ok`` | ``changed`` | ``failed`` | ``skipped``
    + message: one line for the operator
    + data: structured JSON-serialisable values (numbers, lists) for reports and later runs
    + tables: :class:`Table` s rendered in the reports
    + files: attachments the step wrote into the run directory (``ctx.run_dir``), as names
      relative to it (e.g. ``capacity-h1.png``); ``result.json`` lists them, ``report.md``
      links them and ``report.ipynb`` embeds the PNG ones as images
    """

    status: Status
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


StepFunc = Callable[["StepContext"], StepResult]


@dataclass(frozen=True)
class Step:
    """One step of a runbook (see the module docstring for the policies).

    + timeout: seconds for one attempt on one host
    + retries: extra attempts after a failed one; ``retry_delay`` seconds in between
    + serial: hosts per batch (``0``: no batches); see the module docstring
    """

    name: str
    func: StepFunc
    doc: str = ""
    target: str = "app"
    executor: ExecutorKind = "remote"
    timeout: float = 120.0
    retries: int = 0
    retry_delay: float = 2.0
    on_failure: OnFailure = "continue"
    changes: bool = False
    destructive: bool = False
    serial: int = 0

    def __post_init__(self):
        if self.timeout <= 0:
            raise ValueError(f"step {self.name!r}: timeout must be > 0")
        if self.retries < 0:
            raise ValueError(f"step {self.name!r}: retries must be >= 0")
        if self.serial < 0:
            raise ValueError(f"step {self.name!r}: serial must be >= 0 (0: all hosts at once)")
        if self.destructive and not self.changes:
            object.__setattr__(self, "changes", True)


def step(name: str, **options: Any) -> Callable[[StepFunc], Step]:
    """Decorator: make a :class:`Step` of a function; its docstring is the step's Markdown doc."""

    def wrap(func: StepFunc) -> Step:
        return Step(name=name, func=func, doc=inspect.cleandoc(func.__doc__ or ""), **options)

    return wrap


class NoParams(BaseModel):
    """Parameters of a runbook that takes none."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class Runbook:
    """A runbook: ``name`` (CLI name), ``title``, Markdown ``doc``, a pydantic ``params`` model
    (``extra="forbid"``) and the ordered ``steps``. ``lock``: take the run lock (per host, or the
    AWS environment's). ``environment``: ``hosts`` (a host inventory, targets are
    :class:`~runbooks.core.types.HostTarget` s) or ``aws`` (an AWS inventory, one
    :class:`~runbooks.core.types.AwsTarget`)."""

    name: str
    title: str
    doc: str
    steps: tuple[Step, ...]
    params: type[BaseModel] = NoParams
    lock: bool = True
    environment: Environment = "hosts"

    def __post_init__(self):
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"runbook {self.name!r}: step names must be unique")


@dataclass
class StepContext:
    """What a step function sees for one host.

    + host: the :class:`~runbooks.core.types.HostTarget` (or :class:`~runbooks.core.types.AwsTarget`)
    + params: the validated parameter model
    + check: check mode (changing steps only report what they would do)
    + approved: destructive steps were approved
    + executor: this step's transport
    + executors: every transport by kind (``remote``, ``pyinfra``, ``local``)
    + memory: per-host dict shared by the steps of this run (e.g. a version read earlier)
    + previous: this host's step data from the last run of the same runbook (``{step: data}``)
    + deadline: ``time.monotonic()`` value after which this attempt has timed out
    + run_dir: this run's directory on the machine running the runbook (attachments go there;
      its parent is the runs directory); ``None`` outside a run
    """

    host: HostTarget
    params: BaseModel
    check: bool
    approved: bool
    executor: Executor
    executors: dict[str, Executor]
    run_id: str
    memory: dict[str, Any]
    previous: dict[str, Any]
    deadline: float
    run_dir: Path | None = None

    def remaining(self) -> float:
        """Seconds left for this attempt (raises :class:`CommandTimeout` when none)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CommandTimeout("step", 0)
        return left

    def sh(self, command: str, *, sudo: bool = True, timeout: float | None = None, executor: str | None = None) -> CommandResult:
        """Run ``command`` on this host through this step's executor (or ``executor`` kind),
        within the step's remaining time (or ``timeout`` seconds, whichever is shorter)."""
        left = self.remaining()
        ex = self.executors[executor] if executor else self.executor
        return ex.run(self.host, command, sudo=sudo, timeout=min(left, timeout) if timeout else left)

    def deploy(self, *, dry: bool = False, data: dict[str, str] | None = None) -> DeployResult:
        """Run the main deploy on this host through this step's executor, within the step's
        remaining time. Raises :class:`ExecutorError` when the executor is not a
        :class:`~runbooks.core.types.Deployer` (give the step ``executor="pyinfra"``)."""
        if not isinstance(self.executor, Deployer):
            raise ExecutorError(f"executor {getattr(self.executor, 'name', '?')!r} cannot deploy (use executor='pyinfra')")
        return self.executor.deploy(self.host, dry=dry, data=data, timeout=self.remaining())

    def aws(self, service: str, operation: str, /, *, region: str | None = None, **params: Any) -> dict[str, Any]:
        """One boto3 call on this AWS target through the ``aws`` executor
        (:meth:`runbooks.executors.aws.AwsExecutor.call`): the response without its metadata.
        Raises :class:`~runbooks.core.errors.ApiError` when AWS refuses."""
        self.remaining()
        return self.executors["aws"].call(self.host, service, operation, region=region, **params)

    def aws_wait(self, service: str, waiter: str, /, *, region: str | None = None, **params: Any) -> None:
        """Run a boto3 waiter within the step's remaining time (polling every ``poll_seconds``
        of the settings). Raises :class:`~runbooks.core.errors.ApiError` (``WaiterError``)."""
        self.executors["aws"].wait(self.host, service, waiter, self.remaining(), region=region, **params)

    # result helpers
    def ok(self, message: str = "", data: dict | None = None, tables: list[Table] | None = None,
           files: list[str] | None = None) -> StepResult:
        """A passed read-only step."""
        return StepResult("ok", message, data or {}, tables or [], files or [])

    def changed(self, message: str = "", data: dict | None = None, tables: list[Table] | None = None,
                files: list[str] | None = None) -> StepResult:
        """A step that changed the host."""
        return StepResult("changed", message, data or {}, tables or [], files or [])

    def failed(self, message: str, data: dict | None = None, tables: list[Table] | None = None,
               files: list[str] | None = None) -> StepResult:
        """A failed step (the step's on-failure policy applies)."""
        return StepResult("failed", message, data or {}, tables or [], files or [])

    def skipped(self, message: str, data: dict | None = None, tables: list[Table] | None = None,
                files: list[str] | None = None) -> StepResult:
        """A step that did nothing on this host (e.g. check mode: what it would do)."""
        return StepResult("skipped", message, data or {}, tables or [], files or [])
