"""pyinfra-backed executor: the main deploy (``deploys/site.py``) as a runbook step.

* :meth:`PyinfraExecutor.deploy` runs ``pyinfra --json -y --limit HOST INVENTORY deploys/site.py``
  (``dry=True``: ``--dry --json`` without ``-y``, nothing changes) and reads pyinfra's own JSON
  (``pyinfra_cli/prints.py: print_run_json``, pyinfra 3.10), not its console tables:

  - dry: ``{"plan": [{"name", "names", "hosts_with_change", "hosts_with_conditional_change",
    ...}], "results": null}``; the operations whose ``hosts_with_change`` holds the host are
    drift. Conditional changes (operations guarded by ``_if``, e.g. reloads after a change) are not;
  - executed: ``{"plan": [...], "results": {"operations": [{"name", "success", "error",
    "no_change", ...}], "totals", "failed_hosts"}}``; ``success`` lists the hosts an operation
    changed, ``error`` those it failed on.
* :meth:`PyinfraExecutor.run` runs a command with ``pyinfra ... exec``.

The deploy takes and releases the same host lock as the runbook; it runs with
``ORDEROPS_RUN_ID`` set to the runbook's run ID, so it re-enters the runbook's lock instead of
failing on it, and the executor takes the lock again afterwards (the deploy released it).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from runbooks.core.process import run_process
from runbooks.core.types import ClosingExecutor, CommandResult, DeployResult, Executor, HostTarget

__all__ = ["PyinfraExecutor", "parse_run_json", "deploy_result", "SITE"]

#: The main deploy file, from the installed ``deploys`` package.
SITE = Path(__import__("deploys").__file__).resolve().parent / "site.py"


def parse_run_json(stdout: str) -> dict[str, Any] | None:
    """pyinfra's ``--json`` payload (``{"plan": [...], "results": ...}``) from its stdout, or
    ``None``. pyinfra prints it as one line, last; lines the deploy itself printed are skipped."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(payload, dict) and "plan" in payload:
                return payload
    return None


def deploy_result(host: str, rc: int, stdout: str, stderr: str, dry: bool) -> DeployResult:
    """A :class:`DeployResult` for ``host`` from one pyinfra ``--json`` run (exit code ``rc``).

    ``changes``: operation names (pyinfra's ``name``) that would change (dry) or changed the
    host; ``errors``: operations that failed on it, followed by the output's ``orderops:`` /
    ``Error:`` lines (what the operations said) whenever the run failed.
    """
    output = stdout + stderr
    payload = parse_run_json(stdout)
    if payload is None:
        errors = [l.strip() for l in output.splitlines() if "orderops:" in l or "Error:" in l][:20]
        return DeployResult(ok=False, changes=[], output=output + "\norderops: pyinfra printed no JSON result",
                            errors=errors or ["pyinfra printed no JSON result"])
    if dry:
        changes = [op["name"] for op in payload.get("plan", []) if host in op.get("hosts_with_change", [])]
        errors: list[str] = []
        failed = False
    else:
        results = payload.get("results") or {}
        ops = results.get("operations", [])
        changes = [op["name"] for op in ops if host in op.get("success", [])]
        errors = [op["name"] for op in ops if host in op.get("error", [])]
        failed = host in results.get("failed_hosts", [])
    if rc != 0 or errors or failed:  # the operations' own explanations (e.g. the unhealthy service and its log)
        errors = errors + [l.strip() for l in output.splitlines() if "orderops:" in l or "Error:" in l][:20]
    return DeployResult(ok=rc == 0 and not failed and not errors, changes=changes, output=output, errors=errors)


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

        Returns :func:`deploy_result` of pyinfra's JSON. Raises :class:`CommandTimeout` /
        :class:`ExecutorError` / :class:`CommandCancelled` (:mod:`runbooks.core.process`).
        """
        args = [str(SITE), "--json"] + (["--dry"] if dry else [])
        for key, value in (data or {}).items():
            args += ["--data", f"{key}={value}"]
        relocked = None
        try:
            proc = self._pyinfra(host, args, timeout, yes=not dry)
        finally:
            if self.relock is not None and self.run_id:
                from deploys.contract.lock import acquire_command, holder

                relocked = self.relock.run(
                    host, acquire_command(self.run_id, host.settings.lock_ttl, holder()), sudo=True, timeout=60,
                )
        result = deploy_result(host.name, proc.rc, proc.stdout, proc.stderr, dry)
        if relocked is not None and not relocked.ok:
            lost = f"orderops: lost the host lock after the deploy: {(relocked.stdout + relocked.stderr).strip()}"
            return DeployResult(ok=False, changes=result.changes, output=result.output + "\n" + lost, errors=[lost, *result.errors])
        return result
