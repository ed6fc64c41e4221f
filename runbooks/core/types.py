"""The seam between the runbook engine and the transports: shared types and two protocols.

Steps never talk SSH, Ansible or pyinfra themselves; they call ``ctx.sh(...)`` (any
:class:`Executor`) or ``ctx.deploy(...)`` (an executor that also is a :class:`Deployer`). The
transports (``runbooks/executors/``):

==================  ==================================================================
``remote``          :class:`~runbooks.executors.ansible.AnsibleExecutor` (ansible-runner
                    ``shell`` task against a generated inventory)
``pyinfra``         :class:`~runbooks.executors.pyinfra_exec.PyinfraExecutor` (commands via
                    ``pyinfra exec``; a :class:`Deployer`: ``deploy()`` runs ``deploys/site.py``)
``local``           :class:`~runbooks.executors.local.LocalExecutor` (the controller itself)
``aws``             :class:`~runbooks.executors.aws.AwsExecutor` (boto3 API calls against an
                    :class:`AwsTarget`; also a :class:`LockingExecutor`: the DynamoDB lock)
``fake``            :class:`~runbooks.executors.fake.FakeExecutor` (unit tests, no hosts)
==================  ==================================================================

Targets: a :class:`HostTarget` is one SSH host of a host inventory; an :class:`AwsTarget` is one
AWS environment of an AWS inventory (no host). Each names, in ``lock_executor``, the executor kind
whose lock the runner takes for it.

Executors are context managers (:class:`ClosingExecutor`): the CLI enters them and ``close()``
runs when the run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = ["Executor", "Deployer", "LockingExecutor", "ClosingExecutor", "CommandResult", "HostTarget", "AwsTarget",
           "Target", "DeployResult"]


@dataclass(frozen=True)
class HostTarget:
    """One inventory host as the engine sees it.

    + name: inventory host name
    + data: the host's pyinfra data, group data merged (``ssh_*`` connection keys included)
    + settings: validated :class:`inventories.schema.HostSettings`
    + groups: inventory groups the host belongs to
    """

    name: str
    data: dict[str, Any]
    settings: Any
    groups: tuple[str, ...] = ()
    #: executor kind whose lock the runner takes: the SSH host lock through ``remote``
    lock_executor: ClassVar[str] = "remote"


@dataclass(frozen=True)
class AwsTarget:
    """One AWS environment as the engine sees it: no SSH host, API calls only.

    + name: the environment name (``settings.name``), shown where a host name would be
    + settings: validated :class:`inventories.aws_settings.AwsSettings`
    + inventory: path of the AWS inventory file (for commands such as ``orderops-aws``)
    + groups: ``("aws",)``: steps of the AWS runbooks target the group ``aws``
    + data: empty (no pyinfra host data)
    """

    name: str
    settings: Any
    inventory: str = ""
    groups: tuple[str, ...] = ("aws",)
    data: dict[str, Any] = field(default_factory=dict)
    #: executor kind whose lock the runner takes: the environment's DynamoDB lock through ``aws``
    lock_executor: ClassVar[str] = "aws"


#: What a runbook runs against.
Target = HostTarget | AwsTarget


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command: exit code, output (text), duration in seconds."""

    rc: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """``True`` when ``rc == 0``."""
        return self.rc == 0

    def lines(self) -> list[str]:
        """Non-empty stdout lines, stripped."""
        return [line.strip() for line in self.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class DeployResult:
    """Outcome of a pyinfra deploy on one host (read from ``pyinfra --json``).

    + ok: pyinfra exited 0 and the host did not fail
    + changes: names of operations that changed (or, in dry mode, would change) the host
    + errors: names of operations that failed (and orderops error lines), empty when ``ok``
    + output: pyinfra's combined output (masked by the engine before it is stored)
    """

    ok: bool
    changes: list[str] = field(default_factory=list)
    output: str = ""
    errors: list[str] = field(default_factory=list)


@runtime_checkable
class Executor(Protocol):
    """Runs shell commands on one inventory host.

    ``run`` returns a :class:`CommandResult` for any command that ran (whatever its exit code),
    raises :class:`~runbooks.core.errors.CommandTimeout` when ``timeout`` (seconds) passes and
    :class:`~runbooks.core.errors.ExecutorError` when the transport itself fails. With
    ``sudo=True`` the command runs as root. Implementations are thread-safe: the engine calls
    them from one thread per host. Every process they start runs in its own process group,
    registered with :func:`runbooks.core.process.current_scope`, so a step timeout or an abort
    stops it.
    """

    name: str

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class Deployer(Executor, Protocol):
    """An executor that can also run the main deploy (``deploys/site.py``) on a host.

    ``deploy`` returns a :class:`DeployResult` (``dry=True``: change nothing, report drift;
    ``data``: host-data overrides as strings) and raises like :meth:`Executor.run`.
    """

    def deploy(self, host: HostTarget, *, dry: bool = False, data: dict[str, str] | None = None,
               timeout: float = 900.0) -> DeployResult:
        ...


@runtime_checkable
class LockingExecutor(Protocol):
    """An executor that takes a target's run lock itself (not through a shell command).

    Both return a :class:`CommandResult`: ``acquire_lock`` rc 0 (stdout ``acquired`` or
    ``taken-over ...``) or rc :data:`deploys.contract.lock.LOCKED_EXIT` with the holder in stdout;
    ``release_lock`` rc 0 (``released`` / ``not-held``). Transport failures raise
    :class:`~runbooks.core.errors.ExecutorError`.
    """

    def acquire_lock(self, target: Any, run_id: str, holder: str) -> CommandResult:
        ...

    def release_lock(self, target: Any, run_id: str) -> CommandResult:
        ...


class ClosingExecutor:
    """Mixin: ``with executor:`` calls :meth:`close` on exit."""

    def close(self) -> None:
        """Nothing to release (override when there is)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
