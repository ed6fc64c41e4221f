"""The test-host harness itself, end to end: images cached by content, a host up, ssh/sudo/systemd.

Runs the CLI (`python -m testhosts`) in its own state dir, host prefix and ports, so it never
touches hosts started by `make hosts-up` (which use .orderops/, orderops-N and 2200+N). The heavy
caches (rootfs, compose .deb, wheelhouse) are shared with the default state dir unless
ORDEROPS_CACHE_DIR says otherwise; only the target image's last layer (the harness key) differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Next to the main harness of this environment (its prefix/offset shifted), never on its names.
PREFIX = os.environ.get("ORDEROPS_HOST_PREFIX", "orderops") + "-it"
_BASE_OFFSET = int(os.environ.get("ORDEROPS_PORT_OFFSET", "0"))
# 100 ports beside the main harness (default: ssh 2301, http 8181, https 8541), within the allowed 0..358
PORT_OFFSET = _BASE_OFFSET + 100 if _BASE_OFFSET + 100 <= 358 else _BASE_OFFSET - 100


def _docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if not _docker_available():
        pytest.fail("the integration tier needs a running Docker daemon (dockerd)")
    state = tmp_path_factory.mktemp("testhosts-state")
    env = {
        **os.environ,
        "ORDEROPS_STATE_DIR": str(state),
        "ORDEROPS_CACHE_DIR": os.environ.get("ORDEROPS_CACHE_DIR", str(ROOT / ".orderops" / "cache")),
        "ORDEROPS_HOST_PREFIX": PREFIX,
        "ORDEROPS_PORT_OFFSET": str(PORT_OFFSET),
    }

    def cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "testhosts", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
        sys.stdout.write(proc.stderr[-4000:])
        return proc

    cli.state = state  # type: ignore[attr-defined]
    yield cli
    cli("down", timeout=300)
    # the key-specific target tag of this throwaway state dir
    images_json = state / "images.json"
    if images_json.exists():
        target = json.loads(images_json.read_text())["target"]
        subprocess.run(["docker", "rmi", target], capture_output=True)


def _images(cli) -> dict:
    args = ["images", "--json"]
    if not (ROOT / "order_service" / "Dockerfile").exists():
        args.append("--skip-service")
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_images_second_run_rebuilds_nothing(harness):
    first = _images(harness)
    names = {r["name"] for r in first["results"]}
    assert {"debian", "base", "target", "postgres", "redis", "nginx", "python", "compose-deb"} <= names
    second = _images(harness)
    rebuilt = [(r["name"], r["action"]) for r in second["results"] if r["action"] != "cached"]
    assert rebuilt == [], f"second run rebuilt {rebuilt}"
    assert second["seconds"] < 30, second
    assert [r["ref"] for r in second["results"]] == [r["ref"] for r in first["results"]]
    refs = json.loads((harness.state / "images.json").read_text())
    flat = {}
    for role, ref in refs.items():
        if isinstance(ref, dict):  # a group of images (the monitoring stack): one ref per service
            flat.update({f"{role}.{name}": sub for name, sub in ref.items()})
        else:
            flat[role] = ref
    assert flat, refs
    for role, ref in flat.items():
        if ref is not None:
            assert ":" in ref and not ref.endswith(":latest"), (role, ref)
            assert subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def test_host_up_ssh_sudo_systemd(harness):
    proc = harness("up", "-n", "1", "--timeout", "180")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((harness.state / "hosts.json").read_text())
    assert state["version"] == 1 and state["ssh_user"] == "deploy"
    assert Path(state["compose_deb"]).is_file()
    [host] = state["hosts"]
    assert host["name"] == f"{PREFIX}-1" and host["groups"] == ["app", "controller"]
    from testhosts.hosts import ports_for

    assert (host["ssh_port"], host["http_port"], host["https_port"]) == ports_for(1, PORT_OFFSET)

    out = subprocess.run(
        ["ssh", "-i", state["ssh_key"], "-p", str(host["ssh_port"]), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
         "deploy@127.0.0.1",
         "sudo -n true && systemctl is-system-running && sudo -n id -u && python3 --version "
         "&& mountpoint -q /var/lib/docker && echo docker-volume"],
        capture_output=True, text=True, timeout=60,
    )
    lines = out.stdout.split()
    assert out.returncode == 0, out.stdout + out.stderr
    assert lines[0] == "running" and lines[1] == "0", out.stdout
    assert "Python 3" in out.stdout and lines[-1] == "docker-volume", out.stdout

    # never privileged, never the machine's cgroup tree
    inspect = json.loads(subprocess.run(["docker", "inspect", host["container"]], capture_output=True,
                                        text=True, check=True).stdout)[0]
    assert inspect["HostConfig"]["Privileged"] is False
    assert inspect["HostConfig"]["CgroupnsMode"] == "private"
    assert not any(m.get("Source", "").startswith("/sys/fs/cgroup") for m in inspect["Mounts"])

    # status lists it; down removes container and volume
    assert harness("status").returncode == 0
    proc = harness("down")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert subprocess.run(["docker", "inspect", host["container"]], capture_output=True).returncode != 0
    assert subprocess.run(["docker", "volume", "inspect", f"{host['container']}-docker"],
                          capture_output=True).returncode != 0
    assert not (harness.state / "hosts.json").exists()
