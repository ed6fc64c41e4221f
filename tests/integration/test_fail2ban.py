"""fail2ban from outside: a probe in its own container (its own network namespace and address on
the test hosts' network) fails to log in 5 times over HTTPS; then the host's 443 refuses it, while
other clients still get through. The ban sits in DOCKER-USER (Docker-published ports never pass INPUT);
it survives a ``ufw reload`` (which flushes DOCKER-USER; ufw's after.init puts the jump back) and
a restart of fail2ban (which restores its bans from its database).
"""

from __future__ import annotations

import subprocess
import time
import uuid

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


# one connect to 443 from the probe: "rc=0" served, 7 (refused) or 28 (timeout) when banned
CONNECT = r"""curl -sk -o /dev/null --connect-timeout 3 --resolve order.test:443:$TARGET https://order.test/api/health; echo "rc=$?" """
JUMP = "-A DOCKER-USER -p tcp -m multiport --dports 80,443 -j f2b-orderops-api"


def _jumps(data) -> list[str]:
    return [line for line in ssh(data, "sudo iptables -w -S DOCKER-USER").stdout.splitlines() if "-j f2b-" in line]


def _until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, what
            return value
        time.sleep(1)


def test_a_ban_survives_ufw_reload(app_host):
    """One probe container (one address throughout): banned by 5 bad logins; ``ufw reload``
    flushes DOCKER-USER and ufw's after.init restores fail2ban's jump, exactly as fail2ban wrote
    it, so the probe stays refused; ``systemctl restart fail2ban`` then removes the restored jump
    (its actionstop deletes that exact rule) and bans again from its database; unbanned, the probe
    is served again."""
    _, data = app_host
    image = load_images(StatePaths.from_env()).pebble
    name = f"{data['testhost_container']}-banprobe-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", host_network(data), "-e", f"TARGET={data['testhost_ip']}",
                    "--entrypoint", "sleep", image, "600"], capture_output=True, text=True, check=True, timeout=120)

    def probe(script: str) -> str:
        return subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True,
                              timeout=180, check=False).stdout

    probe_ip = None
    try:
        out = probe(PROBE)
        probe_ip = out.split("probe=", 1)[1].split()[0]
        assert "after=refused" in out, out + ssh(data, "sudo fail2ban-client status orderops-api", check=False).stdout
        assert _jumps(data) == [JUMP]

        reload = ssh(data, "sudo ufw reload")
        assert "Firewall reloaded" in reload.stdout, reload.stdout + reload.stderr
        assert _jumps(data) == [JUMP], "after.init restores fail2ban's jump once, as fail2ban wrote it"
        assert probe_ip in ssh(data, "sudo iptables -w -S f2b-orderops-api").stdout
        out = probe(CONNECT)
        assert "rc=7" in out or "rc=28" in out, f"the probe got through after ufw reload: {out}"
        assert "restored iptables DOCKER-USER" in ssh(data, "sudo journalctl -t orderops-ufw --no-pager -o cat -n 20").stdout

        # a second reload path: disable + enable (ufw-init stop, then start)
        ssh(data, "sudo ufw disable && sudo ufw --force enable")
        assert _jumps(data) == [JUMP]

        ssh(data, "sudo systemctl restart fail2ban")
        _until(lambda: probe_ip in ssh(data, "sudo fail2ban-client status orderops-api", check=False).stdout,
               "fail2ban restores the ban from its database after a restart")
        _until(lambda: _jumps(data) == [JUMP], f"one jump after the restart: {_jumps(data)}", timeout=30)
        out = probe(CONNECT)
        assert "rc=7" in out or "rc=28" in out, f"the probe got through after restarting fail2ban: {out}"

        ssh(data, f"sudo fail2ban-client set orderops-api unbanip {probe_ip}")
        out = probe(CONNECT)
        assert "rc=0" in out, f"the unbanned probe is not served: {out}"
    finally:
        if probe_ip:
            ssh(data, f"sudo fail2ban-client set orderops-api unbanip {probe_ip}", check=False)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
