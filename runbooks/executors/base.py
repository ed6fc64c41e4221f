"""The seam between the runbook engine and the transports: one :class:`Executor` protocol.

Steps never talk SSH, Ansible or pyinfra themselves; they call ``ctx.sh(...)``, which goes
through the step's executor. The transports:

==================  ==================================================================
``remote``          :class:`~runbooks.executors.ansible.AnsibleExecutor` (ansible-runner
                    ad-hoc ``shell`` module against a generated inventory)
``pyinfra``         :class:`~runbooks.executors.pyinfra_exec.PyinfraExecutor` (commands via
                    ``pyinfra exec``; ``deploy()`` runs ``deploys/site.py``, dry for drift)
``local``           :class:`~runbooks.executors.local.LocalExecutor` (the controller itself)
``fake``            :class:`~runbooks.executors.fake.FakeExecutor` (unit tests, no hosts)
==================  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Executor", "CommandResult", "HostTarget", "DeployResult"]


@dataclass(frozen=True)
class HostTarget:
    """One inventory host as the engine sees it.

    + name: inventory host name
    + data: the raw pyinfra host data (``ssh_*`` connection keys included)
    + settings: validated :class:`inventories.schema.HostSettings`
    + groups: inventory groups the host belongs to
    """

    name: str
    data: dict[str, Any]
    settings: Any
    groups: tuple[str, ...] = ()


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
    """Outcome of a pyinfra deploy on one host.

    + ok: pyinfra exited 0
    + changes: names of operations that changed (or, in dry mode, would change) the host
    + output: pyinfra's combined output (masked by the engine before it is stored)
    """

    ok: bool
    changes: list[str] = field(default_factory=list)
    output: str = ""


@runtime_checkable
class Executor(Protocol):
    """Runs shell commands on one inventory host.

    ``run`` returns a :class:`CommandResult` for any command that ran (whatever its exit code),
    raises :class:`~runbooks.engine.errors.CommandTimeout` when ``timeout`` (seconds) passes and
    :class:`~runbooks.engine.errors.ExecutorError` when the transport itself fails. With
    ``sudo=True`` the command runs as root. Implementations are thread-safe: the engine calls
    them from one thread per host.
    """

    name: str

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        ...

    def close(self) -> None:
        ...
