"""DOCKER-USER policy: rendering, the after.rules edit, the operation on fake facts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pyinfra.api import OperationValueError

from deploys.facts.ufw_docker import DockerUserChains, UfwAfterRules
from deploys.operations import ufw_docker
from deploys.operations.ufw_docker import STAGED, policy_rules, render_section, with_section

from .opcases import check_case

UFW_AFTER = "# rules.input-after\n*filter\n:ufw-after-input - [0:0]\nCOMMIT\n"
SED = "sed -i '/^# BEGIN orderops DOCKER-USER/,/^# END orderops DOCKER-USER/d'"
RELOAD_CHECKS = [
    "ufw reload",
    "iptables -w -C DOCKER-USER -m conntrack --ctstate DNAT -j DROP",
    "ip6tables -w -C DOCKER-USER -m conntrack --ctstate DNAT -j DROP",
]


def test_policy_allows_only_the_listed_ports_then_drops_dnat():
    rules = policy_rules([443, 80, 80])
    assert rules == [
        "-N DOCKER-USER",
        "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport 80 -j RETURN",
        "-A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport 443 -j RETURN",
        "-A DOCKER-USER -m conntrack --ctstate DNAT -j DROP",
        "-A DOCKER-USER -j RETURN",
    ]
    with pytest.raises(OperationValueError, match="70000"):
        policy_rules([70000])


def test_section_replaces_itself_and_keeps_ufws_rules():
    once = with_section(UFW_AFTER, render_section([22, 443]))
    assert once.startswith(UFW_AFTER) and once.count("BEGIN orderops") == 1
    changed = with_section(once, render_section([22, 80, 443]))
    assert changed.count("BEGIN orderops") == 1 and "--ctorigdstport 80 " in changed
    assert with_section(changed, render_section([22, 80, 443])) == changed


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("iptables-restore"), reason="needs unshare + iptables")
def test_section_loads_with_iptables_restore_and_reads_back_as_the_policy():
    """iptables-restore -n (as ufw loads after.rules) in a throw-away network namespace."""
    section = render_section([22, 80, 443])
    for tool in ("iptables", "ip6tables"):
        proc = subprocess.run(
            ["unshare", "-n", "sh", "-c", f"{tool}-restore -n && {tool} -w -S DOCKER-USER"],
            input=section, capture_output=True, text=True, check=False,
        )
        if "Operation not permitted" in proc.stderr:
            pytest.skip("no permission to create a network namespace")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == policy_rules([22, 80, 443])


def _facts(v4_text, v6_text, v4_live, v6_live):
    return {UfwAfterRules: {"ipv4": v4_text, "ipv6": v6_text}, DockerUserChains: {"ipv4": v4_live, "ipv6": v6_live}}


PORTS = [22, 80, 443]
CONVERGED = with_section(UFW_AFTER, render_section(PORTS))

CASES = {
    "converged: noop": dict(
        facts=_facts(CONVERGED, CONVERGED, policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(allowed_tcp=PORTS), noop="DOCKER-USER policy in place",
    ),
    "fresh ufw: both files edited, reload, checks": dict(
        facts=_facts(UFW_AFTER, UFW_AFTER, None, None),
        kwargs=dict(allowed_tcp=PORTS),
        commands=[
            f"<upload {STAGED}>", f"chmod 0644 {STAGED}",
            f"test -f /etc/ufw/after.rules && {SED} /etc/ufw/after.rules && cat {STAGED} >> /etc/ufw/after.rules",
            f"test -f /etc/ufw/after6.rules && {SED} /etc/ufw/after6.rules && cat {STAGED} >> /etc/ufw/after6.rules",
            *RELOAD_CHECKS,
        ],
    ),
    "ufw not installed yet (files None): same edit": dict(
        facts=_facts(None, None, None, None),
        kwargs=dict(allowed_tcp=PORTS, ipv6=False),
        commands=[
            f"<upload {STAGED}>", f"chmod 0644 {STAGED}",
            f"test -f /etc/ufw/after.rules && {SED} /etc/ufw/after.rules && cat {STAGED} >> /etc/ufw/after.rules",
            "ufw reload", RELOAD_CHECKS[1],
        ],
    ),
    "files right, IPv4 chain flushed at runtime: reload only": dict(
        facts=_facts(CONVERGED, CONVERGED, ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"], policy_rules(PORTS)),
        kwargs=dict(allowed_tcp=PORTS), commands=RELOAD_CHECKS,
    ),
    "allowed ports changed: both files, reload": dict(
        facts=_facts(CONVERGED, CONVERGED, policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(allowed_tcp=[22, 443]),
        commands=[
            f"<upload {STAGED}>", f"chmod 0644 {STAGED}",
            f"test -f /etc/ufw/after.rules && {SED} /etc/ufw/after.rules && cat {STAGED} >> /etc/ufw/after.rules",
            f"test -f /etc/ufw/after6.rules && {SED} /etc/ufw/after6.rules && cat {STAGED} >> /etc/ufw/after6.rules",
            *RELOAD_CHECKS,
        ],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_docker_user_cases(case):
    _, _, uploads = check_case(ufw_docker.docker_user, case)
    if uploads:
        assert uploads[STAGED] == render_section(case["kwargs"]["allowed_tcp"])


def test_fact_parsing():
    out = ["##orderops-section ipv4", "-N DOCKER-USER", "-A DOCKER-USER -j RETURN", "##orderops-section ipv6", "##absent"]
    assert DockerUserChains().process(out) == {"ipv4": ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"], "ipv6": None}
    out = ["##orderops-section ipv4", "a", "", "b", "##orderops-section ipv6", "##absent"]
    assert UfwAfterRules().process(out) == {"ipv4": "a\n\nb\n", "ipv6": None}
