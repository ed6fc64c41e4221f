"""The firewall seen from another machine: a probe container on the test hosts' IPv6-enabled
network scans the host over IPv4 and IPv6 while a container on the host publishes a port the
inventory does not allow on 0.0.0.0 (issue 10). Exactly the allowed ports must be open, and stay
so after ``systemctl restart docker``, a ``daemon.json`` change and a host restart.

Which IPv6 path the host's engine uses is detected and printed: ``ip6tables DNAT`` (engines >= 27,
or ``"ip6tables": true``: filtered in the IPv6 DOCKER-USER chain) or ``docker-proxy`` (Debian's
20.10: a userland listener on ``[::]``, filtered by ufw in INPUT).

Runs after the deploy (test_deploy.py converges the host first).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from deploys.operations.ufw_docker import own_rules, policy_rules
from deploys.contract.paths import local_state_dir
from tests.integration.conftest import ssh

pytestmark = pytest.mark.integration

STRAY_PORT = 9001
#: every privileged port, the stack's internal ports, Docker's API, the stray port
SCAN_PORTS = sorted(set(range(1, 1025)) | {2375, 2376, 5432, 6379, 8000, 8080, 8443, 9090, STRAY_PORT})
PREFIX = os.environ.get("ORDEROPS_HOST_PREFIX", "orderops")
STATE = local_state_dir()

SCANNER = r"""
import asyncio, json, sys
host, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
async def probe(port, sem):
    async with sem:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 1.5)
            w.close()
            return port, "open"
        except asyncio.TimeoutError:
            return port, "filtered"
        except OSError:
            return port, "closed"
async def main():
    sem = asyncio.Semaphore(256)
    print(json.dumps(dict(await asyncio.gather(*(probe(p, sem) for p in ports)))))
asyncio.run(main())
"""


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=False)
    if check and proc.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
    return proc


@pytest.fixture(scope="module")
def app(inventory):
    return inventory["app"][0][1]


@pytest.fixture(scope="module")
def settings_ports(inventory):
    """The app host's ``firewall_allow_tcp`` from the validated inventory."""
    from inventories.schema import validate_groups

    name = inventory["app"][0][0]
    return list(validate_groups(inventory)[name].firewall_allow_tcp)


@pytest.fixture(scope="module")
def probe(app):
    """A container on the test network: the machine outside."""
    from testhosts.hosts import LABEL, network_name

    images = json.loads((STATE / "images.json").read_text())
    name = f"{PREFIX}-probe"
    _docker("rm", "-f", name, check=False)
    _docker("run", "-d", "--name", name, "--network", network_name(PREFIX), "--label", f"{LABEL}={STATE.resolve()}",
            "--entrypoint", "sleep", images["target"], "infinity")
    yield name
    _docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def stray(app):
    """A container on the host publishing a port the inventory does not allow, on every address
    (``-p 9001:8000``: Docker's default host IP 0.0.0.0, and ``[::]`` too)."""
    image = app["images"]["order_service"]
    ssh(app, "sudo docker rm -f orderops-stray >/dev/null 2>&1; "
             f"sudo docker run -d --name orderops-stray --restart unless-stopped -p {STRAY_PORT}:8000 "
             f"--entrypoint python3 {image} -m http.server 8000 >/dev/null")
    _wait(lambda: _local_code(app, "127.0.0.1") == "200", 60, "the stray container answers on the host")
    yield STRAY_PORT
    ssh(app, "sudo docker rm -f orderops-stray", check=False)


def _local_code(app, address: str) -> str:
    url = f"http://[{address}]:{STRAY_PORT}/" if ":" in address else f"http://{address}:{STRAY_PORT}/"
    return ssh(app, f"curl -s -o /dev/null -m 3 -w '%{{http_code}}' {url}", check=False).stdout.strip()


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")


def _addresses(app) -> dict[str, str]:
    from testhosts.hosts import network_name

    net = json.loads(_docker("inspect", app["testhost_container"]).stdout)[0]["NetworkSettings"]["Networks"][network_name(PREFIX)]
    return {"ipv4": net["IPAddress"], "ipv6": net["GlobalIPv6Address"]}


def scan(probe: str, address: str) -> dict[int, str]:
    proc = subprocess.run(["docker", "exec", "-i", probe, "python3", "-", address, ",".join(map(str, SCAN_PORTS))],
                          input=SCANNER, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return {int(k): v for k, v in json.loads(proc.stdout).items()}


def ipv6_path(app) -> str:
    """How the host's engine publishes IPv6: ``ip6tables DNAT`` or ``docker-proxy``."""
    nat6 = ssh(app, "sudo ip6tables -w -t nat -S DOCKER 2>/dev/null | grep -c -- '-j DNAT' || true", check=False).stdout.strip()
    if nat6 not in ("", "0"):
        return "ip6tables DNAT (IPv6 DOCKER-USER chain)"
    listeners = ssh(app, f"sudo ss -Hltnp 'sport = :{STRAY_PORT}'", check=False).stdout
    assert "docker-proxy" in listeners and "[::]" in listeners, f"neither path publishes IPv6:\n{listeners}"
    return "docker-proxy on [::] (INPUT, ufw)"


def check_from_outside(app, probe, settings_ports, when: str) -> None:
    addresses = _addresses(app)
    assert addresses["ipv6"], "the test host has no IPv6 address on the test network (hosts-up makes one)"
    # the stray port really answers on the host, over IPv4 and IPv6: only the firewall keeps it out
    assert _local_code(app, "127.0.0.1") == "200"
    assert _local_code(app, "::1") == "200"
    wanted = policy_rules(settings_ports)
    for tool in ("iptables", "ip6tables"):
        # fail2ban's jumps to its f2b-<jail> chains sit above the policy (test_fail2ban ran first)
        assert own_rules(ssh(app, f"sudo {tool} -w -S DOCKER-USER").stdout.splitlines()) == wanted, f"{tool} DOCKER-USER ({when})"
    path = ipv6_path(app)
    print(f"[{when}] IPv6 publish path: {path}")
    for family, address in addresses.items():
        result = scan(probe, address)
        open_ports = sorted(p for p, state in result.items() if state == "open")
        assert open_ports == sorted(settings_ports), f"{family} {address} ({when}, IPv6 path: {path}): open {open_ports}"
        assert result[STRAY_PORT] == "filtered", f"{family}: stray port {result[STRAY_PORT]} ({when})"


def test_only_allowed_ports_open_from_outside(app, probe, stray, settings_ports):
    check_from_outside(app, probe, settings_ports, "after the deploy")


def test_policy_survives_docker_restart(app, probe, stray, settings_ports):
    ssh(app, "sudo systemctl restart docker")
    _wait(lambda: _local_code(app, "127.0.0.1") == "200", 120, "the stray container is back after the restart")
    check_from_outside(app, probe, settings_ports, "systemctl restart docker")


def test_policy_survives_daemon_json_change(app, probe, stray, settings_ports):
    edit = ("sudo cp -p /etc/docker/daemon.json /etc/docker/daemon.json.test-orig && "
            "sudo python3 -c \"import json; p='/etc/docker/daemon.json'; d=json.load(open(p)); d['debug']=True; "
            "json.dump(d, open(p, 'w'), indent=2)\" && sudo systemctl restart docker")
    ssh(app, edit)
    try:
        _wait(lambda: _local_code(app, "127.0.0.1") == "200", 120, "the stray container is back after the change")
        assert ssh(app, "sudo docker info --format '{{.Debug}}'").stdout.strip() == "true"
        check_from_outside(app, probe, settings_ports, "daemon.json change")
    finally:
        ssh(app, "sudo mv /etc/docker/daemon.json.test-orig /etc/docker/daemon.json && sudo systemctl restart docker")
        _wait(lambda: _local_code(app, "127.0.0.1") == "200", 120, "the stray container is back")


def test_policy_survives_host_restart(app, probe, stray, settings_ports):
    from testhosts.hosts import Hosts, plan_hosts
    from testhosts.state import StatePaths

    _docker("restart", "-t", "20", app["testhost_container"])
    paths = StatePaths.from_env()
    plan = next(p for p in plan_hosts(1, "single", PREFIX, int(os.environ.get("ORDEROPS_PORT_OFFSET", "0")))
                if p.container == app["testhost_container"])
    Hosts(paths).wait_ready(plan, paths.ssh_key)
    _wait(lambda: _local_code(app, "127.0.0.1") == "200", 180, "the stray container is back after the host restart")
    _wait(lambda: ssh(app, "curl -sk -o /dev/null -m 3 https://127.0.0.1/", check=False).returncode == 0, 180, "nginx is back")
    check_from_outside(app, probe, settings_ports, "host restart")
