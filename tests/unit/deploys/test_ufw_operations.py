"""ufw operations on fake facts (no host), in the spirit of pyinfra's own operation tests.

pyinfra's tests run an operation's generator with a fake context host whose ``get_fact`` serves
canned fact data, compare the yielded commands with the expected ones and check the ``noop``
description when nothing is yielded. ``FakeHost`` below does the same for ``op._inner``.

``FakeUfw`` goes one step further for convergence checks: it prints what ufw prints (``ufw status
verbose``, ``ufw show added``), so the facts are parsed from text, and it applies the plain
commands the operations yield, so a second run must report a noop.
"""

from __future__ import annotations

import shlex
from typing import Any
from unittest.mock import patch

import pytest
from pyinfra.api import Config, Inventory, OperationValueError, State
from pyinfra.api.operation import add_op
from pyinfra.connectors.util import CommandOutput, OutputLine
from pyinfra.context import ctx_host, ctx_state

from deploys.facts.ufw import (
    UfwAddedRules,
    UfwDefaults,
    UfwStatus,
    inactive_status,
    parse_ufw_show_added,
    parse_ufw_status,
)
from deploys.operations import ufw

from .test_ufw_facts import ACTIVE_WEB, MIXED, SHOW_ADDED


class FakeHost:
    """Context host for an operation: canned facts by fact class, recorded noops."""

    def __init__(self, facts: dict[type, Any]):
        self.facts = facts
        self.noops: list[str] = []
        self.name = "fakehost"

    def get_fact(self, fact_cls, *args, **kwargs):
        """Return the canned data; a fact the test did not provide is a test failure."""
        assert not args and not kwargs, f"unexpected fact arguments {args} {kwargs}"
        if fact_cls not in self.facts:
            raise AssertionError(f"operation asked for {fact_cls.name}, which the test did not provide")
        return self.facts[fact_cls]

    def noop(self, description: str) -> None:
        """Record pyinfra's "nothing to do" description."""
        self.noops.append(description)


def run(op, facts: dict[type, Any], **kwargs) -> tuple[list[str], list[str]]:
    """Run ``op``'s generator against ``facts``; return (commands, noop descriptions)."""
    host = FakeHost(facts)
    with ctx_host.use(host):
        commands = [command.get_raw_value() for command in op._inner(**kwargs)]
    return commands, host.noops


def status(text: str) -> dict[type, Any]:
    """Facts of an active firewall as ``ufw status verbose`` prints ``text``."""
    return {UfwStatus: parse_ufw_status(text)}


# Facts before ufw is installed: pyinfra returns every fact's default.
NOT_INSTALLED = {
    UfwStatus: UfwStatus.default(),
    UfwAddedRules: UfwAddedRules.default(),
    UfwDefaults: UfwDefaults.default(),
}


class FakeUfw:
    """A tiny ufw: plain port rules, policies, enable/disable; prints ufw's texts."""

    def __init__(self, active=True, rules=(), defaults=None):
        self.active = active
        self.rules: list[tuple[str, str]] = list(rules)  # (action, "22/tcp")
        self.defaults = {"incoming": "deny", "outgoing": "allow", "routed": "deny"}
        self.defaults.update(defaults or {})

    def status_text(self) -> str:
        if not self.active:
            return "Status: inactive\n"
        d = self.defaults
        lines = [
            "Status: active",
            "Logging: on (low)",
            f"Default: {d['incoming']} (incoming), {d['outgoing']} (outgoing), {d['routed']} (routed)",
            "New profiles: skip",
            "",
        ]
        if self.rules:
            lines += [
                "To                         Action      From",
                "--                         ------      ----",
            ]
            for v6 in ("", " (v6)"):
                for action, spec in self.rules:
                    lines.append(f"{spec + v6:<26} {action.upper() + ' IN':<12}{'Anywhere' + v6:<26}")
        return "\n".join(lines) + "\n"

    def added_text(self) -> str:
        lines = [f"ufw {action} {spec}" for action, spec in self.rules] or ["(None)"]
        return "\n".join(["Added user rules (see 'ufw status' for running firewall):", *lines])

    def facts(self) -> dict[type, Any]:
        return {
            UfwStatus: parse_ufw_status(self.status_text()),
            UfwAddedRules: parse_ufw_show_added(self.added_text()),
            UfwDefaults: dict(self.defaults),
        }

    def apply(self, command: str) -> None:
        words = shlex.split(command)
        assert words[0] == "ufw", command
        args = words[1:]
        if args == ["--force", "enable"]:
            self.active = True
        elif args == ["disable"]:
            self.active = False
        elif args[0] == "default":
            self.defaults[args[2]] = args[1]
        elif args[0] == "delete":
            assert (args[1], args[2]) in self.rules, f"ufw: Could not delete non-existent rule ({command})"
            self.rules.remove((args[1], args[2]))
        else:
            action, spec = args
            # Like ufw: a rule for the same port with another action is updated in place.
            self.rules = [(a, s) for a, s in self.rules if s != spec] + [(action, spec)]


def converge(fake: FakeUfw, op, **kwargs) -> list[str]:
    """Run ``op`` and apply its commands; assert a second run changes nothing. Return commands."""
    commands, _ = run(op, fake.facts(), **kwargs)
    for command in commands:
        fake.apply(command)
    again, noops = run(op, fake.facts(), **kwargs)
    assert again == [], f"not idempotent: second run yields {again}"
    assert len(noops) == 1
    return commands


# --- ufw.default ---------------------------------------------------------------------------


def test_default_sets_a_different_policy():
    facts = status(ACTIVE_WEB.replace("deny (incoming)", "allow (incoming)"))
    assert run(ufw.default, facts, direction="incoming", policy="deny") == (
        ["ufw default deny incoming"],
        [],
    )


def test_default_is_a_noop_when_set():
    assert run(ufw.default, status(ACTIVE_WEB), direction="incoming", policy="deny") == (
        [],
        ["ufw default incoming policy is deny"],
    )
    assert run(ufw.default, status(ACTIVE_WEB), direction="outgoing", policy="allow") == (
        [],
        ["ufw default outgoing policy is allow"],
    )


def test_default_reads_the_defaults_file_while_inactive():
    facts = {UfwStatus: inactive_status(), UfwDefaults: {"incoming": "deny", "routed": "deny"}}
    assert run(ufw.default, facts, direction="incoming", policy="deny")[0] == []
    assert run(ufw.default, facts, direction="routed", policy="reject")[0] == ["ufw default reject routed"]


def test_default_routed_disabled_reads_the_defaults_file():
    # The kernel does not forward: status says "disabled" whatever the configured policy.
    text = "Status: active\nDefault: deny (incoming), allow (outgoing), disabled (routed)\n"
    facts = {UfwStatus: parse_ufw_status(text), UfwDefaults: {"routed": "deny"}}
    assert run(ufw.default, facts, direction="routed", policy="deny") == (
        [],
        ["ufw default routed policy is deny"],
    )


def test_default_before_ufw_is_installed():
    assert run(ufw.default, NOT_INSTALLED, direction="incoming", policy="deny")[0] == [
        "ufw default deny incoming",
    ]


@pytest.mark.parametrize("kwargs", [{"direction": "inbound"}, {"policy": "drop"}])
def test_default_refuses_bad_values(kwargs):
    with pytest.raises(OperationValueError):
        run(ufw.default, status(ACTIVE_WEB), **kwargs)


# --- ufw.rule ------------------------------------------------------------------------------


def test_rule_adds_a_missing_rule():
    assert run(ufw.rule, status(ACTIVE_WEB), port=8080) == (["ufw allow 8080/tcp"], [])


def test_rule_is_a_noop_when_present():
    assert run(ufw.rule, status(ACTIVE_WEB), port="22", proto="tcp") == (
        [],
        ["ufw rule allow 22/tcp exists"],
    )


def test_rule_counts_an_ipv4_only_rule_as_present():
    v4_only = "\n".join(line for line in ACTIVE_WEB.splitlines() if "(v6)" not in line)
    assert run(ufw.rule, status(v4_only), port=22)[0] == []


def test_rule_deletes():
    assert run(ufw.rule, status(ACTIVE_WEB), port=80, present=False) == (["ufw delete allow 80/tcp"], [])
    assert run(ufw.rule, status(ACTIVE_WEB), port=8080, present=False) == (
        [],
        ["ufw rule allow 8080/tcp does not exist"],
    )


@pytest.mark.parametrize(
    ("kwargs", "command"),
    [
        ({"port": [80, 443]}, "ufw allow 80,443/tcp"),
        ({"port": "6000:6007", "proto": "udp"}, "ufw allow 6000:6007/udp"),
        ({"port": 53, "proto": None}, "ufw allow 53"),
        ({"port": 22, "action": "limit"}, "ufw limit 22/tcp"),
        ({"port": 23, "action": "deny"}, "ufw deny 23/tcp"),
        ({"port": 25, "action": "reject"}, "ufw reject 25/tcp"),
    ],
)
def test_rule_port_forms_and_actions(kwargs, command):
    assert run(ufw.rule, status("Status: active\n"), **kwargs)[0] == [command]


def test_rule_matches_lists_ranges_and_actions_as_ufw_shows_them():
    facts = status(MIXED)
    assert run(ufw.rule, facts, port=[80, 443])[0] == []
    assert run(ufw.rule, facts, port="6000:6007")[0] == []
    assert run(ufw.rule, facts, port=53, proto=None)[0] == []
    assert run(ufw.rule, facts, port=22, action="limit")[0] == []
    # 22/tcp is there as LIMIT, not ALLOW; 5432/tcp only from 10.0.0.0/8; 8443/tcp only logged.
    assert run(ufw.rule, facts, port=22)[0] == ["ufw allow 22/tcp"]
    assert run(ufw.rule, facts, port=5432)[0] == ["ufw allow 5432/tcp"]
    assert run(ufw.rule, facts, port=8443)[0] == ["ufw allow 8443/tcp"]


def test_rule_while_inactive_reads_the_stored_rules():
    facts = {UfwStatus: inactive_status(), UfwAddedRules: parse_ufw_show_added(SHOW_ADDED)}
    assert run(ufw.rule, facts, port=[80, 443])[0] == []
    assert run(ufw.rule, facts, port=22, action="limit")[0] == []
    assert run(ufw.rule, facts, port=22)[0] == ["ufw allow 22/tcp"]


def test_rule_before_ufw_is_installed():
    assert run(ufw.rule, NOT_INSTALLED, port=22)[0] == ["ufw allow 22/tcp"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"port": "ssh"},
        {"port": "22; reboot"},
        {"port": "7:5"},
        {"port": "6000:6007", "proto": None},
        {"port": [80, 443], "proto": None},
        {"port": list(range(1, 17))},
        {"port": 22, "proto": "icmp"},
        {"port": 22, "action": "accept"},
    ],
)
def test_rule_refuses_bad_values(kwargs):
    with pytest.raises(OperationValueError):
        run(ufw.rule, status(ACTIVE_WEB), **kwargs)


# --- ufw.rules -----------------------------------------------------------------------------


def test_rules_before_ufw_is_installed():
    assert run(ufw.rules, NOT_INSTALLED, allowed=[22, 80, 443]) == (
        ["ufw allow 22/tcp", "ufw allow 80/tcp", "ufw allow 443/tcp"],
        [],
    )


def test_rules_noop_when_converged():
    assert run(ufw.rules, status(ACTIVE_WEB), allowed=[22, 80, 443]) == (
        [],
        ["ufw allows exactly 22/tcp, 80/tcp, 443/tcp in"],
    )
    assert run(ufw.rules, status(ACTIVE_WEB), allowed=[443, 22], exclusive=False) == (
        [],
        ["ufw allows at least 443/tcp, 22/tcp in"],
    )


def test_rules_adds_before_deleting_and_deletes_v4_and_v6_once():
    facts = status(ACTIVE_WEB)
    assert run(ufw.rules, facts, allowed=[22, 8443]) == (
        ["ufw allow 8443/tcp", "ufw delete allow 80/tcp", "ufw delete allow 443/tcp"],
        [],
    )


def test_rules_not_exclusive_keeps_other_rules():
    assert run(ufw.rules, status(ACTIVE_WEB), allowed=[22, 8443], exclusive=False)[0] == [
        "ufw allow 8443/tcp",
    ]


def test_rules_exclusive_deletes_every_other_allow_in_rule():
    # Every delete below was checked against ufw 0.36.2: each removes its rule (v4 and v6).
    # LIMIT/DENY/REJECT, outgoing and routed rules stay.
    commands, noops = run(ufw.rules, status(MIXED), allowed=[22, 80, 443])
    assert commands == [
        "ufw allow 22/tcp",
        "ufw allow 80/tcp",
        "ufw allow 443/tcp",
        "ufw delete allow 80,443/tcp",
        "ufw delete allow 6000:6007/tcp",
        "ufw delete allow 53",
        "ufw delete allow in proto tcp from 10.0.0.0/8 to any port 5432",
        "ufw delete allow in on eth0 proto tcp from any to any port 8080",
        "ufw delete allow in log proto tcp from any to any port 8443",
        "ufw delete allow in from 192.168.1.5 to any",
        "ufw delete allow in from any to any app 'WWW Full'",
        "ufw delete allow in proto udp from 10.1.0.0/16 port 5353 to any port 53",
        "ufw delete allow in proto tcp from any to 10.0.0.1 port 80",
        "ufw delete allow in proto tcp from 2001:db8::/32 to any port 9000",
    ]
    assert noops == []


def test_rules_exclusive_while_inactive_deletes_stored_rules_as_stored():
    facts = {UfwStatus: inactive_status(), UfwAddedRules: parse_ufw_show_added(SHOW_ADDED)}
    assert run(ufw.rules, facts, allowed=[22, 80, 443])[0] == [
        "ufw allow 22/tcp",
        "ufw allow 80/tcp",
        "ufw allow 443/tcp",
        "ufw delete allow 80,443/tcp",
        "ufw delete allow from 10.0.0.0/8 to any port 5432 proto tcp",
        "ufw delete allow in on eth0 to any port 8080 proto tcp",
        "ufw delete allow log 8443/tcp",
        "ufw delete allow 'WWW Full'",
    ]


def test_rules_items_with_their_own_protocol_and_duplicates():
    assert run(ufw.rules, status("Status: active\n"), allowed=[22, "53/udp", "22", "6000:6007"])[0] == [
        "ufw allow 22/tcp",
        "ufw allow 53/udp",
        "ufw allow 6000:6007/tcp",
    ]


def test_rules_empty_exclusive_removes_all_allow_in_rules():
    assert run(ufw.rules, status(ACTIVE_WEB), allowed=[]) == (
        ["ufw delete allow 22/tcp", "ufw delete allow 80/tcp", "ufw delete allow 443/tcp"],
        [],
    )


def test_rules_refuses_bad_ports():
    with pytest.raises(OperationValueError):
        run(ufw.rules, status(ACTIVE_WEB), allowed=[22, "http"])


# --- ufw.enabled ---------------------------------------------------------------------------


def test_enabled():
    inactive = {UfwStatus: inactive_status()}
    assert run(ufw.enabled, inactive) == (["ufw --force enable"], [])
    assert run(ufw.enabled, status(ACTIVE_WEB)) == ([], ["ufw is enabled"])
    assert run(ufw.enabled, status(ACTIVE_WEB), enabled=False) == (["ufw disable"], [])
    assert run(ufw.enabled, inactive, enabled=False) == ([], ["ufw is disabled"])
    assert run(ufw.enabled, NOT_INSTALLED) == (["ufw --force enable"], [])


# --- convergence ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        {"active": False},
        {"active": False, "rules": [("allow", "8080/tcp"), ("allow", "22/tcp")]},
        {"rules": [("allow", "22/tcp"), ("allow", "80/tcp"), ("allow", "443/tcp")]},
        {"rules": [("limit", "22/tcp"), ("allow", "80,443/tcp"), ("deny", "23/tcp")]},
        {"rules": [("allow", "53"), ("allow", "6000:6007/tcp")], "defaults": {"incoming": "allow"}},
    ],
    ids=["fresh", "inactive-stale", "converged", "mixed", "open"],
)
def test_the_firewall_role_sequence_converges(start):
    """default deny in, allowed ports exactly, enable: then every operation is a noop."""
    fake = FakeUfw(**start)
    converge(fake, ufw.default, direction="incoming", policy="deny")
    converge(fake, ufw.rules, allowed=[22, 80, 443])
    converge(fake, ufw.enabled)

    for op, kwargs in [
        (ufw.default, {"direction": "incoming", "policy": "deny"}),
        (ufw.rules, {"allowed": [22, 80, 443]}),
        (ufw.enabled, {}),
    ]:
        assert run(op, fake.facts(), **kwargs)[0] == []
    assert fake.active
    assert fake.defaults["incoming"] == "deny"
    assert [spec for action, spec in fake.rules if action == "allow"] == ["22/tcp", "80/tcp", "443/tcp"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 22, "action": "limit"},
        {"port": [80, 443]},
        {"port": 53, "proto": None},
        {"port": 80, "present": False},
    ],
)
def test_rule_converges(kwargs):
    converge(FakeUfw(rules=[("allow", "22/tcp"), ("allow", "80/tcp")]), ufw.rule, **kwargs)


# --- through pyinfra's operation machinery -------------------------------------------------


def test_change_detection_before_ufw_is_installed():
    """pyinfra's own ``add_op``: facts of a host without ufw fall back to their defaults."""
    inventory = Inventory((["somehost"], {}))
    state = State(inventory, Config())
    host = inventory.get_host("somehost")
    state.activate_host(host)
    host.connected = True

    def run_shell_command(command, **kwargs):
        # What pyinfra's requires_command guard prints when the binary is missing.
        return True, CommandOutput([OutputLine("stdout", "##PYINFRA_NOCMD##")])

    with patch.object(host, "run_shell_command", run_shell_command):
        metas = {
            "rules": add_op(state, ufw.rules, allowed=[22, 80, 443])[host],
            "enabled": add_op(state, ufw.enabled)[host],
        }
        assert all(meta.will_change for meta in metas.values())

        op_data = state.get_op_data_for_host(host, metas["rules"]._hash)
        with ctx_state.use(state), ctx_host.use(host):
            commands = [command.get_raw_value() for command in op_data.command_generator()]

    assert commands == ["ufw allow 22/tcp", "ufw allow 80/tcp", "ufw allow 443/tcp"]
    assert state.get_op_meta(metas["enabled"]._hash).names == {"ufw.enabled"}


# --- ufw.rules with sources (the monitoring stack on its own host) --------------------------

# as ufw 0.36.2 prints a rule from one address to one port (IPv4 only: no "(v6)" twin)
SOURCED = ACTIVE_WEB.replace(
    "22/tcp (v6)", "9100/tcp                   ALLOW IN    10.0.0.9\n22/tcp (v6)", 1)


def test_rules_from_sources_added_then_noop():
    assert run(ufw.rules, status(ACTIVE_WEB), allowed=[22, 80, 443], allowed_from=[("10.0.0.9", 9100)])[0] == [
        "ufw allow in proto tcp from 10.0.0.9 to any port 9100",
    ]
    assert run(ufw.rules, status(SOURCED), allowed=[22, 80, 443], allowed_from=[("10.0.0.9/32", 9100)]) == (
        [], ["ufw allows exactly 22/tcp, 80/tcp, 443/tcp, 9100/tcp from 10.0.0.9 in"])


def test_rules_from_sources_exclusive_deletes_a_source_no_longer_wanted():
    assert run(ufw.rules, status(SOURCED), allowed=[22, 80, 443], allowed_from=[("10.0.0.8", 9100)])[0] == [
        "ufw allow in proto tcp from 10.0.0.8 to any port 9100",
        "ufw delete allow in proto tcp from 10.0.0.9 to any port 9100",
    ]
    assert run(ufw.rules, status(SOURCED), allowed=[22, 80, 443])[0] == [
        "ufw delete allow in proto tcp from 10.0.0.9 to any port 9100"]


def test_rules_from_sources_while_inactive_match_the_stored_form():
    added = SHOW_ADDED.replace("ufw limit 22/tcp comment 'ssh rate limit'\n", "") + \
        "ufw allow 22/tcp\nufw allow from 10.0.0.9 to any port 9100 proto tcp\n"
    facts = {UfwStatus: inactive_status(), UfwAddedRules: parse_ufw_show_added(added)}
    commands = run(ufw.rules, facts, allowed=[22], allowed_from=[("10.0.0.9", 9100)])[0]
    assert not any("10.0.0.9" in c for c in commands), commands


def test_rules_refuse_a_source_that_is_no_address():
    with pytest.raises(OperationValueError, match="source"):
        run(ufw.rules, status(ACTIVE_WEB), allowed=[22], allowed_from=[("mon.example.com", 9100)])
