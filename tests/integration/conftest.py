"""Integration tier: runs the real deploy against the local test hosts the harness started.

Needs ``python -m testhosts images`` and ``python -m testhosts up`` first (``make test`` does it).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploys.contract.paths import local_state_dir

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


#: the container name the test inventory's webhook_url and smtp.smarthost use
SINK = "alert-sink"


@pytest.fixture(scope="module")
def mon(inventory):
    """``(name, data, settings)`` of the monitoring host, or skip when the layout has none."""
    if not inventory.get("monitoring"):
        pytest.skip("no host in group 'monitoring' (ORDEROPS_MONITORING=0 or no monitoring images)")
    name, data = inventory["monitoring"][0]
    if name not in {n for n, _ in inventory["app"]}:
        pytest.skip("the monitoring host is no app host (layout monitoring): tests/integration/test_monitoring_split.py")
    from inventories.schema import build_settings

    return name, data, build_settings(name, data, ("app", "monitoring"))


@pytest.fixture(scope="module")
def sink(mon):
    """The alert-sink container on the monitoring project's network; ``read()`` -> received items."""
    name, data, settings = mon
    ref = json.loads((local_state_dir() / "images.json").read_text()).get("alert_sink")
    if not ref:
        pytest.fail("images.json has no alert_sink image: run `make images`")
    if ssh(data, f"sudo docker image inspect {shlex.quote(ref)} >/dev/null 2>&1", check=False).returncode != 0:
        save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
        load = subprocess.run(
            ssh_argv(data, "sudo docker load -q"), stdin=save.stdout, capture_output=True, timeout=600, check=False)
        save.wait()
        assert load.returncode == 0 and save.returncode == 0, load.stderr[-2000:]
    network = f"{settings.monitoring.compose_project}_monitoring"
    ssh(data, f"sudo docker rm -f {SINK} >/dev/null 2>&1; sudo docker run -d --name {SINK} --network {network} "
              f"{shlex.quote(ref)} >/dev/null")

    def read() -> list[dict]:
        out = ssh(data, f"sudo docker exec {SINK} cat /data/received.jsonl", check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    yield read
    ssh(data, f"sudo docker rm -f {SINK} >/dev/null 2>&1", check=False)


def wait_until(what: str, check, timeout: float, interval: float = 3.0):
    """Call ``check()`` every ``interval`` seconds until it returns something truthy, and return
    that; ``AssertionError`` naming ``what`` (and ``check``'s docstring, if any) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            last = f" (last: {check.__doc__})" if check.__doc__ else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s{last}")
        time.sleep(interval)
