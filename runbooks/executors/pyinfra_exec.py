"""pyinfra-backed executor: the main deploy (``deploys/site.py``) as a runbook step.

* :meth:`PyinfraExecutor.deploy` runs ``pyinfra -y --limit HOST INVENTORY deploys/site.py``
  (``dry=True`` runs ``--dry`` without ``-y``: nothing changes, the "Detected changes" table lists the
  operations that would change the host = configuration drift).
* :meth:`PyinfraExecutor.run` runs a command with ``pyinfra ... exec``.

The deploy takes and releases the same host lock as the runbook; it runs with
``ORDEROPS_RUN_ID`` set to the runbook's run ID, so it re-enters the runbook's lock instead of
failing on it, and the executor takes the lock again afterwards (the deploy released it).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from runbooks.core.process import run_process
from runbooks.core.types import ClosingExecutor, CommandResult, DeployResult, Executor, HostTarget

__all__ = ["PyinfraExecutor", "parse_detected_changes", "SITE"]

#: The main deploy file, from the installed ``deploys`` package.
SITE = Path(__import__("deploys").__file__).resolve().parent / "site.py"


def parse_detected_changes(output: str) -> list[str]:
    """Operation names with a non-``-`` *Change* cell in pyinfra's ``--dry`` "Detected changes" table.

    Conditional changes (operations guarded by ``_if``) are not drift and are ignored.
    """
    changes: list[str] = []
    in_table = False
    for line in output.splitlines():
        if "--> Detected changes" in line:
            in_table = True
            continue
        if not in_table:
            continue
        if line.startswith("-->") or "Detected changes may not include" in line:
            break
        cells = [c for c in re.split(r"\s{2,}", line.strip()) if c]
        if len(cells) < 3 or cells[0] == "Operation":
            continue
        if cells[-2] != "-":
            changes.append(cells[0])
    return changes


class PyinfraExecutor(ClosingExecutor):
    """Runs pyinfra against ``inventory`` (the same file the runbook was given).

    + run_id: exported as ``ORDEROPS_RUN_ID`` so the deploy re-enters the runbook's host lock
    + relock: executor used to take the runbook's lock again after a deploy (``None``: don't)
    """

    name = "pyinfra"

    def __init__(self, inventory: str, run_id: str = "", relock: Executor | None = None):
        self.inventory = str(inventory)
        self.run_id = run_id
        self.relock = relock

    def _pyinfra(self, host: HostTarget, args: list[str], timeout: float, yes: bool = True) -> CommandResult:
        env = {**os.environ}
        if self.run_id:
            env["ORDEROPS_RUN_ID"] = self.run_id
        # -y skips pyinfra's change detection: a dry run must not pass it (it never prompts anyway)
        cmd = [sys.executable, "-m", "pyinfra", *(["-y"] if yes else []), "--limit", host.name, self.inventory, *args]
        return run_process(cmd, timeout=timeout, what=f"pyinfra on {host.name}", env=env)

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        """``pyinfra INVENTORY exec [--sudo] -- bash -c COMMAND`` on ``host``.

        ``stdout`` is pyinfra's output (host-prefixed lines), not the command's raw stdout: steps
        that parse output use the ``remote`` executor; this one serves ``rc`` checks.
        """
        args = ["exec"] + (["--sudo"] if sudo else []) + ["--", "bash", "-c", shlex.quote(command)]
        return self._pyinfra(host, args, timeout)

    def deploy(self, host: HostTarget, *, dry: bool = False, data: dict[str, str] | None = None, timeout: float = 900.0) -> DeployResult:
        """Run ``deploys/site.py`` on ``host`` (``dry``: drift only); ``data`` overrides host data.

        Returns a :class:`DeployResult`; ``changes`` lists the operations that would change (dry)
        or the output's error lines (failed). Raises :class:`CommandTimeout` / :class:`ExecutorError`.
        """
        args = [str(SITE)] + (["--dry"] if dry else [])
        for key, value in (data or {}).items():
            args += ["--data", f"{key}={value}"]
        relocked = None
        try:
            proc = self._pyinfra(host, args, timeout, yes=not dry)
        finally:
            if self.relock is not None and self.run_id:
                from deploys.operations.lock import acquire_script, holder

                relocked = self.relock.run(
                    host, acquire_script(self.run_id, host.settings.lock_ttl, holder()).get_raw_value(), sudo=True, timeout=60,
                )
        output = proc.stdout + proc.stderr
        if relocked is not None and not relocked.ok:
            lost = f"orderops: lost the host lock after the deploy: {(relocked.stdout + relocked.stderr).strip()}"
            return DeployResult(ok=False, changes=[lost], output=output + "\n" + lost)
        if dry and proc.rc == 0 and "--> Detected changes" not in output:
            return DeployResult(ok=False, changes=[], output=output + "\norderops: pyinfra printed no change detection")
        changes = parse_detected_changes(output) if dry else [l.strip() for l in output.splitlines() if "orderops:" in l or "Error:" in l][:20]
        return DeployResult(ok=proc.rc == 0, changes=changes, output=output)
