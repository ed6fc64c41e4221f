"""Controller-side executor: runs commands on the machine running the runbook.

Used by steps that look at a host from outside (e.g. the TLS certificate nginx serves) or that
need the controller's own tools (Docker for image archives). The ``host`` argument only
provides context: ``ORDEROPS_HOST`` is set to its name in the command's environment.
"""

from __future__ import annotations

import os
import subprocess
import time

from runbooks.engine.errors import CommandTimeout, ExecutorError
from runbooks.executors.base import CommandResult, HostTarget

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Runs ``bash -c command`` locally (``sudo`` is ignored: the controller user's rights apply)."""

    name = "local"

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        """Run ``command``; raises :class:`CommandTimeout` after ``timeout`` seconds."""
        start = time.monotonic()
        try:
            proc = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=timeout,
                env={**os.environ, "ORDEROPS_HOST": host.name}, check=False,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"local command for {host.name}", timeout) from None
        except OSError as e:
            raise ExecutorError(f"cannot run a local command: {e}") from None
        return CommandResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def close(self) -> None:
        """Nothing to release."""
