"""Controller-side executor: runs commands on the machine running the runbook.

Used by steps that look at a host from outside (e.g. the TLS certificate nginx serves) or that
need the controller's own tools (Docker for image archives). The ``host`` argument only
provides context: ``ORDEROPS_HOST`` is set to its name in the command's environment.
"""

from __future__ import annotations

import os

from runbooks.core.process import run_process
from runbooks.core.types import ClosingExecutor, CommandResult, HostTarget

__all__ = ["LocalExecutor"]


class LocalExecutor(ClosingExecutor):
    """Runs ``bash -c command`` locally (``sudo`` is ignored: the controller user's rights apply)."""

    name = "local"

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        """Run ``command`` in its own process group; raises :class:`CommandTimeout` after
        ``timeout`` seconds (the group killed) and :class:`ExecutorError` when bash cannot start."""
        return run_process(["bash", "-c", command], timeout=timeout, what=f"local command for {host.name}",
                           env={**os.environ, "ORDEROPS_HOST": host.name})
