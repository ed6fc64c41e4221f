"""DOCKER-USER policy: rendering, the after.rules edit, the operation on fake facts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pyinfra.api import OperationValueError

from deploys.facts.ufw_docker import AFTER_INIT, BanChains, DockerUserChains, UfwAfterInit, UfwAfterRules
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


def test_sources_go_to_their_family_only():
    sources = [("10.0.0.9", 9100), ("fd00::9", 9100), ("10.0.0.8/32", 3100)]
    v4, v6 = policy_rules([22], sources, "ipv4"), policy_rules([22], sources, "ipv6")
    assert v4[3:5] == ["-A DOCKER-USER -s 10.0.0.8/32 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 3100 -j RETURN",
                       "-A DOCKER-USER -s 10.0.0.9/32 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 9100 -j RETURN"]
    assert v6[3:4] == ["-A DOCKER-USER -s fd00::9/128 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 9100 -j RETURN"]
    assert v4[-2:] == v6[-2:] == ["-A DOCKER-USER -m conntrack --ctstate DNAT -j DROP", "-A DOCKER-USER -j RETURN"]
    assert policy_rules([22], (), "ipv6") == policy_rules([22])
    with pytest.raises(OperationValueError, match="source"):
        policy_rules([22], [("mon.example.com", 9100)])


SOURCES = [("10.0.0.9", 9100), ("fd00::9", 9100)]


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("iptables-restore"), reason="needs unshare + iptables")
@pytest.mark.parametrize("sources", [(), SOURCES], ids=["ports", "ports and sources"])
def test_section_loads_with_iptables_restore_and_reads_back_as_the_policy(sources):
    """iptables-restore -n (as ufw loads after.rules) in a throw-away network namespace."""
    for tool, family in (("iptables", "ipv4"), ("ip6tables", "ipv6")):
        proc = subprocess.run(
            ["unshare", "-n", "sh", "-c", f"{tool}-restore -n && {tool} -w -S DOCKER-USER"],
            input=render_section([22, 80, 443], sources, family), capture_output=True, text=True, check=False,
        )
        if "Operation not permitted" in proc.stderr:
            pytest.skip("no permission to create a network namespace")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == policy_rules([22, 80, 443], sources, family)


def _facts(v4_text, v6_text, v4_live, v6_live):
    return {UfwAfterRules: {"ipv4": v4_text, "ipv6": v6_text}, DockerUserChains: {"ipv4": v4_live, "ipv6": v6_live}}


PORTS = [22, 80, 443]
CONVERGED = with_section(UFW_AFTER, render_section(PORTS))

CASES = {
    "converged: noop": dict(
        facts=_facts(CONVERGED, CONVERGED, policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(allowed_tcp=PORTS), noop="DOCKER-USER policy in place",
    ),
    "converged, fail2ban's jump on top: noop (not drift)": dict(
        facts=_facts(CONVERGED, CONVERGED,
                     ["-N DOCKER-USER", "-A DOCKER-USER -p tcp -m multiport --dports 80,443 -j f2b-orderops-api",
                      *policy_rules(PORTS)[1:]], policy_rules(PORTS)),
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
    "sources: one staged section per family, reload": dict(
        facts=_facts(CONVERGED, CONVERGED, policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(allowed_tcp=PORTS, allowed_from=SOURCES),
        commands=[
            f"<upload {STAGED}>", f"chmod 0644 {STAGED}",
            f"test -f /etc/ufw/after.rules && {SED} /etc/ufw/after.rules && cat {STAGED} >> /etc/ufw/after.rules",
            f"<upload {STAGED}.ipv6>", f"chmod 0644 {STAGED}.ipv6",
            f"test -f /etc/ufw/after6.rules && {SED} /etc/ufw/after6.rules && cat {STAGED}.ipv6 >> /etc/ufw/after6.rules",
            *RELOAD_CHECKS,
        ],
    ),
    "sources converged: noop": dict(
        facts=_facts(with_section(UFW_AFTER, render_section(PORTS, SOURCES, "ipv4")),
                     with_section(UFW_AFTER, render_section(PORTS, SOURCES, "ipv6")),
                     policy_rules(PORTS, SOURCES, "ipv4"), policy_rules(PORTS, SOURCES, "ipv6")),
        kwargs=dict(allowed_tcp=PORTS, allowed_from=SOURCES), noop="DOCKER-USER policy in place",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_docker_user_cases(case):
    _, _, uploads = check_case(ufw_docker.docker_user, case)
    if uploads:
        assert uploads[STAGED] == render_section(case["kwargs"]["allowed_tcp"], case["kwargs"].get("allowed_from", ()))


def test_fact_parsing():
    out = ["##orderops-section ipv4", "-N DOCKER-USER", "-A DOCKER-USER -j RETURN", "##orderops-section ipv6", "##absent"]
    assert DockerUserChains().process(out) == {"ipv4": ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"], "ipv6": None}
    out = ["##orderops-section ipv4", "a", "", "b", "##orderops-section ipv6", "##absent"]
    assert UfwAfterRules().process(out) == {"ipv4": "a\n\nb\n", "ipv6": None}


# ---- fail2ban's jumps after a ufw reload: ufw's after.init (ban_jumps) ----

JUMPS = [("f2b-orderops-api", "-p tcp -m multiport --dports 80,443")]
JUMP = "-A DOCKER-USER -p tcp -m multiport --dports 80,443 -j f2b-orderops-api"
HOOK = ufw_docker.after_init_text(JUMPS)
HOOK_V4 = ufw_docker.after_init_text(JUMPS, ipv6=False)
UFW_TEMPLATE_HOOK = {"executable": False, "text": "#!/bin/sh\n# after.init: if executable, called by ufw-init.\nset -e\n"}
WITH_JUMP = [policy_rules(PORTS)[0], JUMP, *policy_rules(PORTS)[1:]]
RUN = f"{AFTER_INIT} start"
WRITE = [f"<upload {AFTER_INIT}>", f"chmod 0755 {AFTER_INIT}"]


def _ban_facts(hook, chains4, chains6, live4, live6):
    return {UfwAfterInit: hook, BanChains: {"ipv4": chains4, "ipv6": chains6}, DockerUserChains: {"ipv4": live4, "ipv6": live6}}


BAN_CASES = {
    "hook in place, jump in place: noop": dict(
        facts=_ban_facts({"executable": True, "text": HOOK}, ["f2b-orderops-api", "f2b-sshd"], [], WITH_JUMP, policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS), noop="every ban chain has its jump"),
    "hook in place, no ban chain (fail2ban not started): noop": dict(
        facts=_ban_facts({"executable": True, "text": HOOK}, [], [], policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS), noop="every ban chain has its jump"),
    "ufw's template hook (0640, does nothing): written, made executable, run": dict(
        facts=_ban_facts(UFW_TEMPLATE_HOOK, [], [], policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS), commands=[*WRITE, RUN]),
    "no hook yet (ufw installed by this run): written and run": dict(
        facts=_ban_facts(None, [], [], None, None), kwargs=dict(jumps=JUMPS), commands=[*WRITE, RUN]),
    "right text but not executable (ufw-init skips it): rewritten": dict(
        facts=_ban_facts({"executable": False, "text": HOOK}, [], [], policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS), commands=[*WRITE, RUN]),
    "hook in place, ban chain lost its jump (reloaded before the hook, or flushed): run only": dict(
        facts=_ban_facts({"executable": True, "text": HOOK}, ["f2b-orderops-api"], [], policy_rules(PORTS), policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS), commands=[RUN]),
    "IPv6 ban chain without its jump: run": dict(
        facts=_ban_facts({"executable": True, "text": HOOK}, ["f2b-orderops-api"], ["f2b-orderops-api"], WITH_JUMP, policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS), commands=[RUN]),
    "ipv6 off: the IPv6 chain is not looked at": dict(
        facts=_ban_facts({"executable": True, "text": HOOK_V4}, ["f2b-orderops-api"], ["f2b-orderops-api"], WITH_JUMP, policy_rules(PORTS)),
        kwargs=dict(jumps=JUMPS, ipv6=False), noop="every ban chain has its jump"),
    "ipv6 off, hook for both families on the host: rewritten for IPv4 only": dict(
        facts=_ban_facts({"executable": True, "text": HOOK}, [], [], policy_rules(PORTS), None),
        kwargs=dict(jumps=JUMPS, ipv6=False), commands=[*WRITE, RUN]),
    "ban chain but no DOCKER-USER in that family: nothing to restore": dict(
        facts=_ban_facts({"executable": True, "text": HOOK}, [], ["f2b-orderops-api"], WITH_JUMP, None),
        kwargs=dict(jumps=JUMPS), noop="every ban chain has its jump"),
}


@pytest.mark.parametrize("case", BAN_CASES.values(), ids=BAN_CASES.keys())
def test_ban_jumps_cases(case):
    _, _, uploads = check_case(ufw_docker.ban_jumps, case)
    if uploads:
        assert uploads[AFTER_INIT] == ufw_docker.after_init_text(case["kwargs"]["jumps"], case["kwargs"].get("ipv6", True))


def test_hook_restores_each_family_it_manages():
    assert "restore iptables f2b-orderops-api -p tcp -m multiport --dports 80,443 " in HOOK
    assert "restore ip6tables f2b-orderops-api" in HOOK and "ip6tables" not in HOOK_V4.split("case", 1)[1]
    assert ufw_docker.jump_rule(*JUMPS[0]) == JUMP


@pytest.mark.parametrize("target, spec", [("f2b-x; reboot", "-p tcp"), ("sshd", "-p tcp"), ("f2b-x", "-p tcp $(id)"), ("f2b-x", "  ")])
def test_jump_refuses_what_a_shell_or_iptables_would_read_otherwise(target, spec):
    with pytest.raises(OperationValueError):
        ufw_docker.after_init_text([(target, spec)])


def test_ban_facts_parse():
    out = ["##orderops-section ipv4", "f2b-orderops-api", "f2b-sshd", "##orderops-section ipv6", ""]
    assert BanChains().process(out) == {"ipv4": ["f2b-orderops-api", "f2b-sshd"], "ipv6": []}
    assert UfwAfterInit().process(["##absent"]) is None
    assert UfwAfterInit().process(["##x", "#!/bin/sh", "", "exit 0"]) == {"executable": True, "text": "#!/bin/sh\n\nexit 0\n"}


BAN_STATE = """\
*filter
:f2b-orderops-api - [0:0]
-A f2b-orderops-api -s {banned} -j REJECT
-A f2b-orderops-api -j RETURN
COMMIT
"""


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("iptables-restore"), reason="needs unshare + iptables")
@pytest.mark.parametrize("tool, banned", [("iptables", "192.0.2.7"), ("ip6tables", "2001:db8::7")])
def test_hook_puts_the_jump_back_after_a_ufw_style_load(tmp_path, tool, banned):
    """In a throw-away network namespace: the policy loaded, a ban chain with fail2ban's jump, then
    the section loaded again as ``ufw reload`` does (the jump is gone), then ``after.init start``:
    the jump is back once, on top, as fail2ban wrote it; a second start adds nothing."""
    hook = tmp_path / "after.init"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    restore = f"{tool}-restore -n"
    section = tmp_path / "section.rules"
    section.write_text(render_section(PORTS))
    bans = tmp_path / "bans.rules"
    bans.write_text(BAN_STATE.format(banned=banned))
    script = (
        f"{restore} < {section} && {restore} < {bans} && {tool} -w -I DOCKER-USER 1 -p tcp -m multiport --dports 80,443 -j f2b-orderops-api"
        f" && {tool} -w -S DOCKER-USER && echo ---reload && {restore} < {section} && {tool} -w -S DOCKER-USER"
        f" && echo ---hook && {hook} start && {hook} start && {tool} -w -S DOCKER-USER && {tool} -w -S f2b-orderops-api"
    )
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if "Operation not permitted" in proc.stderr:
        pytest.skip("no permission to create a network namespace")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before, rest = proc.stdout.split("---reload\n")
    reloaded, after = rest.split("---hook\n")
    assert before.splitlines() == WITH_JUMP
    assert reloaded.splitlines() == policy_rules(PORTS), "the load flushes the chain (the bug the hook answers)"
    assert after.splitlines()[: len(WITH_JUMP)] == WITH_JUMP
    assert f"-A f2b-orderops-api -s {banned}/{128 if ':' in banned else 32} -j REJECT" in after
