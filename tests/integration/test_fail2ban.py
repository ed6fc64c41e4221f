"""fail2ban from outside: a probe in its own container (its own network namespace and address on
the test hosts' network) fails to log in 5 times over HTTPS; then the host's 443 refuses it, while
other clients still get through. The ban sits in DOCKER-USER (Docker-published ports never pass INPUT).
"""

from __future__ import annotations

import subprocess

import pytest

from testhosts.state import StatePaths, load_images
from tests.integration.conftest import host_network, ssh

pytestmark = pytest.mark.integration

# 5 refused logins, then a TCP connect to 443 until refused (fail2ban reads the journal within seconds)
PROBE = r"""
ip=$(hostname -i | tr ' ' '\n' | grep -m1 '\.'); echo "probe=$ip"  # the IPv4 address: TARGET is IPv4
for i in 1 2 3 4 5; do
  curl -sk -o /dev/null -w 'login=%{http_code}\n' --resolve order.test:443:$TARGET https://order.test/api/login/access-token \
       -d username=nobody@order.test -d password=wrong
done
for i in $(seq 1 30); do
  curl -sk -o /dev/null --connect-timeout 3 --resolve order.test:443:$TARGET https://order.test/api/health; rc=$?
  if [ $rc -eq 7 ] || [ $rc -eq 28 ]; then echo "after=refused rc=$rc"; exit 0; fi
  sleep 1
done
echo "after=open"
"""


def test_five_bad_logins_from_a_probe_then_443_refuses_it(app_host):
    _, data = app_host
    image = load_images(StatePaths.from_env()).pebble  # any local image with curl: the probe only needs a client
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", host_network(data), "-e", f"TARGET={data['testhost_ip']}", "--entrypoint", "sh", image, "-c", PROBE],
        capture_output=True, text=True, timeout=180, check=False,
    )
    out = proc.stdout
    probe = out.split("probe=", 1)[1].split()[0]
    try:
        assert out.count("login=400") == 5, out
        assert "after=refused" in out, out + ssh(data, "sudo fail2ban-client status orderops-api", check=False).stdout
        status = ssh(data, "sudo fail2ban-client status orderops-api").stdout
        assert probe in status
        rules = ssh(data, "sudo iptables -S DOCKER-USER").stdout
        assert "-j f2b-orderops-api" in rules, rules
        # everyone else still gets in (this machine, through the published port)
        ok = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"{data['probe_https_url']}/api/health"],
                            capture_output=True, text=True, timeout=30, check=False).stdout
        assert ok == "200"
    finally:
        ssh(data, f"sudo fail2ban-client set orderops-api unbanip {probe}", check=False)


def test_sshd_jail_runs_on_the_journal(app_host):
    _, data = app_host
    status = ssh(data, "sudo fail2ban-client status sshd").stdout
    assert "Journal matches:" in status and "sshd.service" in status, status
