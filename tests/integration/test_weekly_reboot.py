"""The weekly runbook reboots an app host that is not the controller host (split layout: run by
the Makefile's second phase, ``testhosts up -n 2 --layout split``), and the host comes back.

A security update from the local ``file://`` repository asks for a reboot
(``tests/integration/apt_fault.py``); ``weekly --yes -p reboot=true`` installs it, reboots the host
with ``systemctl reboot`` and waits for SSH and health. The test host is a container with systemd
as PID 1 and a restart policy (testhosts/hosts.py: ``systemd-shutdown`` ends the container, Docker
starts it again), so "rebooted" is: Docker restarted it (``RestartCount`` + 1, a new
``State.StartedAt``) and PID 1 is a new systemd (the kernel's ``boot_id`` is the machine's and does
not change). After it: SSH with the recorded host key on the same port, the order stack's
containers running and healthy, an order created before the reboot read back over HTTPS, and the
report saying so.

On the single layout the only app host is the controller host, whose reboot the runbook defers
(tests/integration/test_runbooks.py): this module skips there.
"""

from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import sys
import urllib.request

import pytest

from deploys.contract.compose import COMPOSE_PROJECT, containers_command, parse_containers
from deploys.contract.paths import STACK_DIR, StackLayout
from deploys.contract.services import SERVICES
from tests.integration.apt_fault import DUMMY, dpkg_version, pending_security_update, reboot_flagged
from tests.integration.conftest import INVENTORY, ROOT, run_pyinfra, ssh
from tests.integration.test_deploy import _admin_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rebootable(inventory):
    """``(name, data)`` of an app host that is not the controller host, deployed; skip without one."""
    controllers = {n for n, _ in inventory["controller"]}
    hosts = [(n, d) for n, d in inventory["app"] if n not in controllers]
    if not hosts:
        pytest.skip("no app host apart from the controller host (single layout): its reboot is deferred")
    name, data = hosts[0]
    if ssh(data, f"test -e {StackLayout(STACK_DIR).compose_file}", check=False).returncode != 0:  # not yet deployed
        result = run_pyinfra()
        assert result.returncode == 0, result.output[-4000:]
    return name, data


def _boot(data: dict) -> dict[str, object]:
    """What a boot of the test host changes: Docker's start time and restart count of its
    container, and PID 1's start (``/proc/1/stat`` field 22, clock ticks since the kernel booted)."""
    state = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .}}", data["testhost_container"]],
                                      capture_output=True, text=True, check=True).stdout)
    pid1 = ssh(data, "cut -d' ' -f22 /proc/1/stat").stdout.strip()
    return {"started": state["State"]["StartedAt"], "restarts": state["RestartCount"], "pid1": pid1,
            "policy": state["HostConfig"]["RestartPolicy"]["Name"]}


def _https(data: dict, path: str, token: str, body: dict | None = None) -> dict:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the self-signed certificate of tls_mode 'self-signed'
    req = urllib.request.Request(f"{data['probe_https_url']}{path}", data=json.dumps(body).encode() if body else None,
                                 method="POST" if body else "GET",
                                 headers={"Content-Type": "application/json", "Host": data["domain"],
                                          "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def _token(data: dict) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return _admin_token(data, ctx)


def test_weekly_reboots_an_app_host_and_the_stack_returns(rebootable, tmp_path):
    name, data = rebootable
    order = _https(data, "/api/orders", _token(data), {"customer": "before the reboot", "currency": "EUR",
                                                        "lines": [{"sku": "SKU-R", "quantity": 2, "unit_price_minor": 150}]})
    runs = tmp_path / "runs"
    with pending_security_update(data, tmp_path / "apt"):
        before = _boot(data)
        assert before["policy"] == "unless-stopped", before
        proc = subprocess.run([sys.executable, "-m", "runbooks", "run", "weekly", "-i", INVENTORY, "--limit", name, "--yes",
                               "-p", "reboot=true", "-p", "reboot_timeout=300", "--runs-dir", str(runs)],
                              cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
        sys.stdout.write(proc.stdout[-5000:] + proc.stderr[-3000:])
        [run_dir] = runs.iterdir()
        result = json.loads((run_dir / "result.json").read_text())
        apply = next(s for s in result["steps"] if s["name"] == "Apply updates")["results"][name]
        assert apply["status"] == "changed" and DUMMY in apply["data"]["upgraded"], apply
        assert apply["data"]["reboot"] == "done" and "reboot_deferred" not in apply["data"], apply
        assert apply["message"].startswith("upgraded 1, rebooted, back and healthy in "), apply["message"]
        after = _boot(data)  # SSH is back: same port, the host key the harness recorded (StrictHostKeyChecking=yes)
        assert after["restarts"] == before["restarts"] + 1 and after["started"] != before["started"], (before, after)
        assert after["pid1"] != before["pid1"], "PID 1 is the systemd from before the reboot"
        assert dpkg_version(data) == "1.1" and not reboot_flagged(data)  # the flag lived in /run: gone with the boot
    assert ssh(data, "systemctl is-system-running --wait || true").stdout.strip() in ("running", "degraded")
    states = parse_containers(ssh(data, f"sudo sh -c {shlex.quote(containers_command(COMPOSE_PROJECT))}").stdout.splitlines())
    assert {c.service for c in states if c.up} >= set(SERVICES), [(c.service, c.status, c.health) for c in states]
    got = _https(data, f"/api/orders/{order['id']}", _token(data))
    assert got["id"] == order["id"] and got["total_minor"] == 300, got
    report = (run_dir / "report.md").read_text()
    assert "rebooted, back and healthy in " in report, report[-3000:]
    networks = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                          data["testhost_container"]], capture_output=True, text=True, check=True).stdout)
    # the controller host reaches it at the address the harness recorded (controller_address)
    assert [n["IPAddress"] for n in networks.values()] == [data["testhost_ip"]], networks
