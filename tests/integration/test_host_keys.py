"""Host keys are verified on the default path: ``hosts-up`` recorded each test host's keys
(read through Docker) in ``.orderops/known_hosts``, the local inventory verifies them (pyinfra),
the runbooks' Ansible runs verify them too, and a swapped key is refused by both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.core.errors import ExecutorError
from runbooks.engine.targets import load_inventory
from runbooks.executors.ansible import AnsibleExecutor
from tests.integration.conftest import INVENTORY, ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host():
    return load_inventory(ROOT / INVENTORY)[0]


@pytest.fixture(scope="module")
def swapped_known_hosts(host, tmp_path_factory) -> Path:
    """The host's known_hosts lines with every key replaced by a fresh key of the same type."""
    d = tmp_path_factory.mktemp("keys")
    real = Path(host.data["ssh_known_hosts_file"]).read_text().splitlines()
    swapped = []
    for line in real:
        name, kind, _ = line.split(None, 2)
        algo = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ecdsa-sha2-nistp256": "ecdsa"}[kind]
        key = d / f"k-{algo}"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", algo, "-N", "", "-f", str(key)], check=True)
        swapped.append(f"{name} {' '.join(key.with_suffix('.pub').read_text().split()[:2])}")
    path = d / "known_hosts"
    path.write_text("\n".join(swapped) + "\n")
    return path


def _pyinfra_exec(*data: str) -> subprocess.CompletedProcess:
    args = [a for kv in data for a in ("--data", kv)]
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", *args, INVENTORY, "exec", "--", "true"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False, env={**os.environ})


def test_the_local_inventory_verifies_recorded_keys(host):
    assert host.data["ssh_strict_host_key_checking"] == "yes"
    assert Path(host.data["ssh_known_hosts_file"]).is_file()
    proc = _pyinfra_exec()
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert AnsibleExecutor().run(host, "true", timeout=120).rc == 0


def test_a_swapped_host_key_is_refused(host, swapped_known_hosts):
    proc = _pyinfra_exec(f"ssh_known_hosts_file={swapped_known_hosts}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and ("host key" in out.lower() or "BadHostKey" in out), out[-3000:]
    from dataclasses import replace

    forged = replace(host, data={**host.data, "ssh_known_hosts_file": str(swapped_known_hosts)})
    with pytest.raises(ExecutorError) as e:
        AnsibleExecutor().run(forged, "true", timeout=120)
    assert "unreachable" in str(e.value)
