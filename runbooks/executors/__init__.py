"""Transports behind the one :class:`~runbooks.executors.base.Executor` seam."""

from runbooks.executors.base import CommandResult, DeployResult, Executor, HostTarget

__all__ = ["Executor", "CommandResult", "DeployResult", "HostTarget"]
