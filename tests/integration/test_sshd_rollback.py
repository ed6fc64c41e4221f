"""sshd changes are proven by a fresh login, and rolled back when it fails (issue 10)."""

from __future__ import annotations

import hashlib

import pytest

from deploys.roles.base import sshd_drop_in
from inventories.schema import validate_groups
from tests.integration.conftest import run_pyinfra, ssh

pytestmark = pytest.mark.integration

DROP_IN = "/etc/ssh/sshd_config.d/00-orderops.conf"


def test_allowgroups_lockout_is_rolled_back(inventory):
    name, data = inventory["app"][0]
    settings = validate_groups(inventory)[name]
    good = hashlib.sha256(sshd_drop_in(settings).encode()).hexdigest()
    assert ssh(data, f"sudo sha256sum {DROP_IN}").stdout.split()[0] == good, "run the deploy first"

    result = run_pyinfra(deploy="tests/integration/deploys/sshd_lockout.py")
    assert result.returncode != 0, "the lockout was not detected"
    assert f"a fresh SSH login as {data['ssh_user']} failed after the reload" in result.output
    assert "previous sshd configuration restored" in result.output

    # a fresh login works, the old file and settings are back, no probe key or backup is left
    assert ssh(data, f"sudo sha256sum {DROP_IN}").stdout.split()[0] == good
    assert "allowgroups orderops-ssh" in ssh(data, "sudo sshd -T").stdout
    leftovers = ssh(data, f"sudo grep -c orderops-login-probe ~{data['ssh_user']}/.ssh/authorized_keys; "
                          f"sudo ls {DROP_IN}.orderops-old {DROP_IN}.orderops-new 2>&1", check=False).stdout
    assert leftovers.splitlines()[0] == "0", leftovers
    assert "No such file" in leftovers

    # and the next converge has nothing to do for sshd
    again = run_pyinfra("--limit", name)
    assert again.returncode == 0
    assert again.totals["success"] == 0, again.output[-3000:]
