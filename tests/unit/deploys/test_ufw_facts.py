"""ufw facts: parsing real ``ufw status verbose`` / ``ufw show added`` / ``/etc/default/ufw`` texts.

The ``ufw status verbose`` and ``ufw show added`` samples were printed by Debian 12's ufw 0.36.2
(its own formatting code, run against a scratch rules directory); ``OLD_UFW_STATUS`` is the
shape older releases print (no routed policy, application names in the "To" column).
"""

from __future__ import annotations

from unittest.mock import patch

import pytest
from pyinfra.api import Config, FactProcessError, Inventory, State
from pyinfra.api.facts import get_fact
from pyinfra.connectors.util import CommandOutput, OutputLine

from deploys.facts.ufw import (
    UfwAddedRules,
    UfwDefaults,
    UfwParseError,
    UfwStatus,
    inactive_status,
    parse_location,
    parse_ufw_defaults,
    parse_ufw_show_added,
    parse_ufw_status,
)

INACTIVE = "Status: inactive\n"

# A host after the firewall role: v4 and v6 rows, Docker hosts forward so routed is "deny".
ACTIVE_WEB = """\
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
80/tcp                     ALLOW IN    Anywhere
443/tcp                    ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
80/tcp (v6)                ALLOW IN    Anywhere (v6)
443/tcp (v6)               ALLOW IN    Anywhere (v6)

"""

# Enabled, no rules yet, logging off, kernel not forwarding.
ACTIVE_EMPTY = """\
Status: active
Logging: off
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip
"""

MIXED = """\
Status: active
Logging: on (medium)
Default: deny (incoming), allow (outgoing), allow (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     LIMIT IN    Anywhere                   # ssh rate limit
80,443/tcp                 ALLOW IN    Anywhere
6000:6007/tcp              ALLOW IN    Anywhere
53                         ALLOW IN    Anywhere
23/tcp                     DENY IN     Anywhere
25/tcp                     REJECT IN   Anywhere
5432/tcp                   ALLOW IN    10.0.0.0/8
8080/tcp on eth0           ALLOW IN    Anywhere
8443/tcp                   ALLOW IN    Anywhere                   (log)
Anywhere                   ALLOW IN    192.168.1.5
80,443/tcp (WWW Full)      ALLOW IN    Anywhere
53/udp                     ALLOW IN    10.1.0.0/16 5353/udp
10.0.0.1 80/tcp            ALLOW IN    Anywhere
22/tcp (v6)                LIMIT IN    Anywhere (v6)              # ssh rate limit
80,443/tcp (v6)            ALLOW IN    Anywhere (v6)
6000:6007/tcp (v6)         ALLOW IN    Anywhere (v6)
53 (v6)                    ALLOW IN    Anywhere (v6)
23/tcp (v6)                DENY IN     Anywhere (v6)
25/tcp (v6)                REJECT IN   Anywhere (v6)
8080/tcp (v6) on eth0      ALLOW IN    Anywhere (v6)
8443/tcp (v6)              ALLOW IN    Anywhere (v6)              (log)
9000/tcp                   ALLOW IN    2001:db8::/32
80,443/tcp (WWW Full (v6)) ALLOW IN    Anywhere (v6)

53/udp                     ALLOW OUT   Anywhere
25                         DENY OUT    Anywhere
53/udp (v6)                ALLOW OUT   Anywhere (v6)
25 (v6)                    DENY OUT    Anywhere (v6)

Anywhere on eth0           ALLOW FWD   Anywhere on eth1
Anywhere (v6) on eth0      ALLOW FWD   Anywhere (v6) on eth1

"""

# (to, action, direction, from, v6, log, comment) of every MIXED row, in order.
MIXED_ROWS = [
    ("22/tcp", "LIMIT", "IN", "Anywhere", False, None, "ssh rate limit"),
    ("80,443/tcp", "ALLOW", "IN", "Anywhere", False, None, None),
    ("6000:6007/tcp", "ALLOW", "IN", "Anywhere", False, None, None),
    ("53", "ALLOW", "IN", "Anywhere", False, None, None),
    ("23/tcp", "DENY", "IN", "Anywhere", False, None, None),
    ("25/tcp", "REJECT", "IN", "Anywhere", False, None, None),
    ("5432/tcp", "ALLOW", "IN", "10.0.0.0/8", False, None, None),
    ("8080/tcp on eth0", "ALLOW", "IN", "Anywhere", False, None, None),
    ("8443/tcp", "ALLOW", "IN", "Anywhere", False, "log", None),
    ("Anywhere", "ALLOW", "IN", "192.168.1.5", False, None, None),
    ("80,443/tcp (WWW Full)", "ALLOW", "IN", "Anywhere", False, None, None),
    ("53/udp", "ALLOW", "IN", "10.1.0.0/16 5353/udp", False, None, None),
    ("10.0.0.1 80/tcp", "ALLOW", "IN", "Anywhere", False, None, None),
    ("22/tcp", "LIMIT", "IN", "Anywhere", True, None, "ssh rate limit"),
    ("80,443/tcp", "ALLOW", "IN", "Anywhere", True, None, None),
    ("6000:6007/tcp", "ALLOW", "IN", "Anywhere", True, None, None),
    ("53", "ALLOW", "IN", "Anywhere", True, None, None),
    ("23/tcp", "DENY", "IN", "Anywhere", True, None, None),
    ("25/tcp", "REJECT", "IN", "Anywhere", True, None, None),
    ("8080/tcp on eth0", "ALLOW", "IN", "Anywhere", True, None, None),
    ("8443/tcp", "ALLOW", "IN", "Anywhere", True, "log", None),
    ("9000/tcp", "ALLOW", "IN", "2001:db8::/32", True, None, None),
    ("80,443/tcp (WWW Full)", "ALLOW", "IN", "Anywhere", True, None, None),
    ("53/udp", "ALLOW", "OUT", "Anywhere", False, None, None),
    ("25", "DENY", "OUT", "Anywhere", False, None, None),
    ("53/udp", "ALLOW", "OUT", "Anywhere", True, None, None),
    ("25", "DENY", "OUT", "Anywhere", True, None, None),
    ("Anywhere on eth0", "ALLOW", "FWD", "Anywhere on eth1", False, None, None),
    ("Anywhere on eth0", "ALLOW", "FWD", "Anywhere on eth1", True, None, None),
]

NUMBERED = """\
Status: active

     To                         Action      From
     --                         ------      ----
[ 1] 22/tcp                     LIMIT IN    Anywhere                   # ssh rate limit
[ 9] 53/udp                     ALLOW OUT   Anywhere                   (out)
[11] 8443/tcp                   ALLOW IN    Anywhere                   (log)
[12] Anywhere on eth0           ALLOW FWD   Anywhere on eth1
[23] 8443/tcp (v6)              ALLOW IN    Anywhere (v6)              (log)
"""

PLAIN = """\
Status: active

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW       Anywhere
22/tcp (v6)                ALLOW       Anywhere (v6)
"""

OLD_UFW_STATUS = """\
Status: active
Logging: on (low)
Default: deny (incoming), deny (outgoing)
New profiles: skip

To                         Action      From
--                         ------      ----
9000/tcp (OpenSim Listener) ALLOW IN    Anywhere
9000,9001,9002,9003/udp (OpenSim Regions) ALLOW IN    Anywhere
"""

SHOW_ADDED = """\
Added user rules (see 'ufw status' for running firewall):
ufw limit 22/tcp comment 'ssh rate limit'
ufw allow 80,443/tcp
ufw allow from 10.0.0.0/8 to any port 5432 proto tcp
ufw allow in on eth0 to any port 8080 proto tcp
ufw allow out 53/udp
ufw allow log 8443/tcp
ufw route allow in on eth1 out on eth0
ufw allow 'WWW Full'
"""

SHOW_ADDED_NONE = """\
Added user rules (see 'ufw status' for running firewall):
(None)
"""

# Excerpt of Debian's /etc/default/ufw, as shipped.
DEFAULT_UFW = """\
# /etc/default/ufw
#

# Set to yes to apply rules to support IPv6 (no means only IPv6 on loopback
# accepted). You will need to 'disable' and then 'enable' the firewall for
# the changes to take affect.
IPV6=yes

# Set the default input policy to ACCEPT, DROP, or REJECT. Please note that if
# you change this you will most likely want to adjust your rules.
DEFAULT_INPUT_POLICY="DROP"

# Set the default output policy to ACCEPT, DROP, or REJECT. Please note that if
# you change this you will most likely want to adjust your rules.
DEFAULT_OUTPUT_POLICY="ACCEPT"

# Set the default forward policy to ACCEPT, DROP or REJECT.  Please note that
# if you change this you will most likely want to adjust your rules
DEFAULT_FORWARD_POLICY="REJECT"

# Set the default application policy to ACCEPT, DROP, REJECT or SKIP. Please
# note that setting this to ACCEPT may be a security risk. See 'man ufw' for
# details
DEFAULT_APPLICATION_POLICY="SKIP"
"""


def rows(status):
    """The rules of a parsed status as comparable tuples."""
    return [
        (r["to"], r["action"], r["direction"], r["from"], r["v6"], r["log"], r["comment"])
        for r in status["rules"]
    ]


def test_inactive():
    assert parse_ufw_status(INACTIVE) == {
        "active": False,
        "logging": None,
        "default_incoming": None,
        "default_outgoing": None,
        "default_routed": None,
        "new_profiles": None,
        "rules": [],
    }


def test_active_with_v4_and_v6_rules():
    def rule(port, v6):
        return {
            "to": f"{port}/tcp",
            "action": "ALLOW",
            "direction": "IN",
            "from": "Anywhere",
            "v6": v6,
            "log": None,
            "comment": None,
        }

    assert parse_ufw_status(ACTIVE_WEB) == {
        "active": True,
        "logging": "low",
        "default_incoming": "deny",
        "default_outgoing": "allow",
        "default_routed": "deny",
        "new_profiles": "skip",
        "rules": [rule(p, False) for p in (22, 80, 443)] + [rule(p, True) for p in (22, 80, 443)],
    }


def test_active_without_rules_logging_off_routing_disabled():
    status = parse_ufw_status(ACTIVE_EMPTY)
    assert status["active"] is True
    assert status["logging"] == "off"
    assert (status["default_incoming"], status["default_outgoing"], status["default_routed"]) == (
        "deny",
        "allow",
        "disabled",
    )
    assert status["rules"] == []


def test_mixed_actions_ranges_lists_comments_and_directions():
    status = parse_ufw_status(MIXED)
    assert status["logging"] == "medium"
    assert status["default_routed"] == "allow"
    assert rows(status) == MIXED_ROWS


def test_column_padding_and_list_input_are_accepted():
    padded = [line.ljust(80) for line in ACTIVE_WEB.splitlines()]
    assert parse_ufw_status(padded) == parse_ufw_status(ACTIVE_WEB)


def test_numbered_output():
    assert rows(parse_ufw_status(NUMBERED)) == [
        ("22/tcp", "LIMIT", "IN", "Anywhere", False, None, "ssh rate limit"),
        ("53/udp", "ALLOW", "OUT", "Anywhere", False, None, None),
        ("8443/tcp", "ALLOW", "IN", "Anywhere", False, "log", None),
        ("Anywhere on eth0", "ALLOW", "FWD", "Anywhere on eth1", False, None, None),
        ("8443/tcp", "ALLOW", "IN", "Anywhere", True, "log", None),
    ]


def test_non_verbose_rows_are_incoming():
    assert rows(parse_ufw_status(PLAIN)) == [
        ("22/tcp", "ALLOW", "IN", "Anywhere", False, None, None),
        ("22/tcp", "ALLOW", "IN", "Anywhere", True, None, None),
    ]


def test_older_ufw_without_routed_policy_and_long_to_column():
    status = parse_ufw_status(OLD_UFW_STATUS)
    assert (status["default_incoming"], status["default_outgoing"], status["default_routed"]) == (
        "deny",
        "deny",
        None,
    )
    assert [r["to"] for r in status["rules"]] == [
        "9000/tcp (OpenSim Listener)",
        "9000,9001,9002,9003/udp (OpenSim Regions)",
    ]
    assert all(r["action"] == "ALLOW" and r["from"] == "Anywhere" for r in status["rules"])


@pytest.mark.parametrize(
    "text",
    [
        "Status: active\nTo Action From\n22/tcp SOMETIMES Anywhere\n",
        "Status: aktiv\n",  # translated output: refuse rather than report "inactive"
        "",
    ],
)
def test_unknown_text_is_an_error(text):
    with pytest.raises(UfwParseError):
        parse_ufw_status(text)


def test_fact_turns_parse_errors_into_fact_process_errors():
    with pytest.raises(FactProcessError):
        UfwStatus().process(["Status: active", "nonsense line"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22/tcp", (None, "22", "tcp", None, None, False)),
        ("53", (None, "53", None, None, None, False)),
        ("6000:6007/tcp", (None, "6000:6007", "tcp", None, None, False)),
        ("80,443/tcp (WWW Full)", (None, "80,443", "tcp", "WWW Full", None, False)),
        ("80,443/tcp (WWW Full (v6))", (None, "80,443", "tcp", "WWW Full", None, True)),
        ("8080/tcp (v6) on eth0", (None, "8080", "tcp", None, "eth0", True)),
        ("Anywhere", ("any", None, None, None, None, False)),
        ("Anywhere (v6)", ("any", None, None, None, None, True)),
        ("Anywhere/udp", ("any", None, "udp", None, None, False)),
        ("Anywhere (v6) on eth1", ("any", None, None, None, "eth1", True)),
        ("10.0.0.0/8", ("10.0.0.0/8", None, None, None, None, False)),
        ("192.168.1.5/tcp", ("192.168.1.5", None, "tcp", None, None, False)),
        ("10.1.0.0/16 5353/udp", ("10.1.0.0/16", "5353", "udp", None, None, False)),
        ("10.0.0.1 80/tcp", ("10.0.0.1", "80", "tcp", None, None, False)),
        ("2001:db8::/32", ("2001:db8::/32", None, None, None, None, True)),
    ],
)
def test_parse_location(text, expected):
    location = parse_location(text)
    assert tuple(location[k] for k in ("address", "port", "proto", "app", "interface", "v6")) == (
        expected
    )


def test_parse_location_refuses_unknown_shapes():
    with pytest.raises(UfwParseError):
        parse_location("one two three")


def test_show_added():
    assert parse_ufw_show_added(SHOW_ADDED) == [
        "limit 22/tcp comment 'ssh rate limit'",
        "allow 80,443/tcp",
        "allow from 10.0.0.0/8 to any port 5432 proto tcp",
        "allow in on eth0 to any port 8080 proto tcp",
        "allow out 53/udp",
        "allow log 8443/tcp",
        "route allow in on eth1 out on eth0",
        "allow 'WWW Full'",
    ]
    assert parse_ufw_show_added(SHOW_ADDED_NONE) == []
    with pytest.raises(UfwParseError):
        parse_ufw_show_added("Added user rules:\niptables -A ufw-user-input\n")


def test_defaults_file():
    assert parse_ufw_defaults(DEFAULT_UFW) == {
        "incoming": "deny",
        "outgoing": "allow",
        "routed": "reject",
    }
    assert parse_ufw_defaults("") == {}


def test_fact_commands_and_defaults():
    assert UfwStatus().command().get_raw_value() == "LC_ALL=C ufw status verbose"
    assert UfwAddedRules().command().get_raw_value() == "LC_ALL=C ufw show added"
    assert UfwDefaults().command() == "cat /etc/default/ufw"
    for fact in (UfwStatus, UfwAddedRules, UfwDefaults):
        assert fact().requires_command() == "ufw"

    assert UfwStatus.default() == inactive_status()
    first = UfwStatus.default()
    first["rules"].append({"to": "1/tcp"})
    assert UfwStatus.default()["rules"] == [], "default() must return a fresh value"
    assert UfwAddedRules.default() == []
    assert UfwDefaults.default() == {}


class TestThroughPyinfra:
    """The fact through pyinfra's own ``get_fact``, with the host's shell faked."""

    def make_host(self, stdout_lines):
        inventory = Inventory((["somehost"], {}))
        state = State(inventory, Config())
        host = inventory.get_host("somehost")
        host.connected = True
        commands = []

        def run_shell_command(command, **kwargs):
            commands.append(command.get_raw_value())
            return True, CommandOutput([OutputLine("stdout", line) for line in stdout_lines])

        return state, host, commands, run_shell_command

    def test_without_ufw_installed_the_fact_is_inactive(self):
        # pyinfra's requires_command guard prints this marker when the binary is missing.
        state, host, commands, run = self.make_host(["##PYINFRA_NOCMD##"])
        with patch.object(host, "run_shell_command", run):
            assert get_fact(state, host, UfwStatus) == inactive_status()
        assert commands == [
            "if command -v ufw >/dev/null 2>&1; then ( LC_ALL=C ufw status verbose ); "
            "else echo '##PYINFRA_NOCMD##'; fi",
        ]

    def test_with_ufw_installed(self):
        state, host, _, run = self.make_host(ACTIVE_WEB.splitlines())
        with patch.object(host, "run_shell_command", run):
            assert get_fact(state, host, UfwStatus) == parse_ufw_status(ACTIVE_WEB)
