"""Integration tier: runs the real deploy against the local test hosts the harness started.

Needs ``python -m testhosts images`` and ``python -m testhosts up`` first (``make test`` does it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = os.environ.get("ORDEROPS_TEST_INVENTORY", "inventories/local.py")


@dataclass
class PyinfraRun:
    """One finished ``pyinfra`` run: exit code, combined output, and the Grand total row."""

    returncode: int
    output: str

    @property
    def totals(self) -> dict[str, int]:
        """``{"hosts", "success", "error", "no_change"}`` from pyinfra's results table (``-`` = 0)."""
        for line in self.output.splitlines()[::-1]:
            if "Grand total" in line:
                cells = line.split("Grand total", 1)[1].split()
                numbers = [0 if c == "-" else int(c) for c in cells[:4]]
                return dict(zip(("hosts", "success", "error", "no_change"), numbers))
        raise AssertionError("no 'Grand total' row in pyinfra output:\n" + self.output[-3000:])


def run_pyinfra(*args: str, inventory: str = INVENTORY, deploy: str = "deploys/site.py", env=None) -> PyinfraRun:
    """Run ``pyinfra -y <inventory> <deploy> <args>`` from the repo root; never raises on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", inventory, deploy, *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False,
    )
    out = proc.stdout + proc.stderr
    sys.stdout.write(out[-6000:])  # shown by pytest on failure
    return PyinfraRun(proc.returncode, out)


@pytest.fixture(scope="session")
def inventory():
    """``{group: [(name, data)]}`` of the test inventory (pyinfra's loader: inventories.loader)."""
    from inventories.loader import load_hosts

    hosts = load_hosts(ROOT / INVENTORY, cwd=ROOT)
    return {group: [(h.name, h.data) for h in hosts if group in h.groups] for group in ("app", "controller", "monitoring")}


def host_network(data: dict) -> str:
    """The Docker network of a test host (testhosts: ``<prefix>-net``), for containers that must
    reach it: the host's own Docker uses 172.17.0.0/16 inside, so the machine's default bridge is
    not reachable from it (and Docker isolates bridges from each other)."""
    out = subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", data["testhost_container"]],
                         capture_output=True, text=True, check=True).stdout
    return next(iter(json.loads(out)))


@pytest.fixture(scope="module")
def app_host(inventory):
    """``(name, data)`` of the first app host, converged by the current code before the module's
    tests (seconds when it already is: the shared host is deployed once, by test_deploy or the
    first module that needs it)."""
    name, data = inventory["app"][0]
    result = run_pyinfra()
    assert result.returncode == 0, result.output[-4000:]
    return name, data


@pytest.fixture(scope="module")
def app(app_host):
    """The host data of :func:`app_host`."""
    return app_host[1]


def ssh_argv(data: dict, command: str) -> list[str]:
    """``ssh ... command`` to a test host as its deploy user, verifying the host key against the
    inventory's ``ssh_known_hosts_file`` (``hosts-up`` records the keys there), as pyinfra and the
    runbooks do."""
    return ["ssh", "-q", "-i", data["ssh_key"], "-p", str(data["ssh_port"]), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}",
            f"{data['ssh_user']}@{data['ssh_hostname']}", command]


def ssh(data: dict, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``command`` on a test host over SSH as its deploy user (use ``sudo`` inside as needed)."""
    proc = subprocess.run(
        ssh_argv(data, command),
        capture_output=True, text=True, check=False, timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ssh {command!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc
