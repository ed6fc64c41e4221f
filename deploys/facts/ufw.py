"""
Facts about ufw, the Uncomplicated Firewall (pyinfra ships no ufw support).

All commands run with ``LC_ALL=C``: ufw translates its output (``Status: aktiv``), and the
parsers below read the untranslated English text.

The sample outputs in the docstrings were produced by Debian 12's ufw 0.36.2 (its own
formatting code, ``backend_iptables.get_status`` and ``frontend.get_show_added``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from typing_extensions import override

from pyinfra.api import FactBase, FactProcessError, StringCommand

__all__ = [
    "UfwStatus",
    "UfwAddedRules",
    "UfwDefaults",
    "UfwParseError",
    "parse_ufw_status",
    "parse_ufw_show_added",
    "parse_ufw_defaults",
    "parse_location",
    "inactive_status",
]

class UfwParseError(ValueError):
    """A line of ufw output that the parser does not understand."""


def inactive_status() -> dict[str, Any]:
    """The status of a firewall that is off (also what ``UfwStatus`` returns without ufw)."""

    return {
        "active": False,
        "logging": None,
        "default_incoming": None,
        "default_outgoing": None,
        "default_routed": None,
        "new_profiles": None,
        "rules": [],
    }


_STATUS_LINE = re.compile(r"^Status:\s+(?P<status>active|inactive)$")
_LOGGING_LINE = re.compile(r"^Logging:\s+(?:on\s+\((?P<level>\w+)\)|(?P<other>\w+))$")
_DEFAULT_LINE = re.compile(r"^Default:\s+(?P<policies>.*)$")
_DEFAULT_ITEM = re.compile(r"(?P<policy>\w+)\s+\((?P<direction>incoming|outgoing|routed)\)")
_PROFILES_LINE = re.compile(r"^New profiles:\s+(?P<value>\S+)$")
_HEADER_LINE = re.compile(r"^(?:To\s+Action\s+From|--\s+------\s+----)$")
_NUMBER_PREFIX = re.compile(r"^\[\s*\d+\]\s")
_RULE_LINE = re.compile(
    r"^(?P<to>\S.*?)\s+"
    r"(?P<action>ALLOW|DENY|REJECT|LIMIT)(?:\s(?P<direction>IN|OUT|FWD))?\s+"
    r"(?P<from>\S.*?)"
    r"(?:\s+\((?P<attrs>(?:log-all|log|out)(?:,\s(?:log-all|log|out))*)\))?"
    r"(?:\s+#\s(?P<comment>.*))?$"
)
_V6_MARK = re.compile(r"\s*\(v6\)")


def parse_ufw_status(output: list[str] | str) -> dict[str, Any]:
    """
    Parse the output of ``ufw status verbose`` (``ufw status`` and ``ufw status numbered`` too).

    Returns a dict like:

    .. code:: python

        {
            "active": True,
            "logging": "low",            # "off", "low", "medium", "high", "full", "unknown"
            "default_incoming": "deny",  # "deny" | "allow" | "reject"
            "default_outgoing": "allow",
            "default_routed": "deny",    # also "disabled" when the kernel does not forward
            "new_profiles": "skip",
            "rules": [
                {"to": "22/tcp", "action": "ALLOW", "direction": "IN", "from": "Anywhere",
                 "v6": False, "log": None, "comment": None},
                ...
            ],
        }

    The defaults and logging are ``None`` when the output does not show them (an inactive
    firewall, or the non-verbose forms). Each IPv4 and IPv6 rule is its own row; the ``(v6)``
    markers are removed from ``to``/``from`` and reported as ``v6``. Rows without a direction
    (non-verbose output) are ``IN`` rules. A rule's ``to``/``from`` are ufw's columns (e.g.
    ``8080/tcp on eth0``, ``10.0.0.0/8``), ``action`` is ALLOW | DENY | REJECT | LIMIT, ``direction``
    IN | OUT | FWD (a ``ufw route`` rule), ``log`` ``log`` | ``log-all`` | ``None``.

    Texts handled, exactly as ufw prints them (columns are padded to 26 and 12 characters, a
    long "To" pushes the rest of its row right)::

        Status: inactive

        Status: active
        Logging: off
        Default: deny (incoming), allow (outgoing), disabled (routed)
        New profiles: skip

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
        8080/tcp (v6) on eth0      ALLOW IN    Anywhere (v6)
        8443/tcp (v6)              ALLOW IN    Anywhere (v6)              (log)
        9000/tcp                   ALLOW IN    2001:db8::/32
        80,443/tcp (WWW Full (v6)) ALLOW IN    Anywhere (v6)

        53/udp                     ALLOW OUT   Anywhere
        25 (v6)                    DENY OUT    Anywhere (v6)

        Anywhere on eth0           ALLOW FWD   Anywhere on eth1
        Anywhere (v6) on eth0      ALLOW FWD   Anywhere (v6) on eth1

    ``ufw status numbered`` rows (``[ 1] 22/tcp  ALLOW IN  Anywhere``, ``(out)`` attributes)
    parse the same way. Raises :class:`UfwParseError` on a line it does not understand, and
    when no ``Status:`` line is present (e.g. translated output), rather than guess.
    """

    lines = output.splitlines() if isinstance(output, str) else list(output)
    status = inactive_status()
    seen_status = False

    for raw_line in lines:
        line = raw_line.strip()
        if not line:
            continue

        match = _STATUS_LINE.match(line)
        if match:
            status["active"] = match.group("status") == "active"
            seen_status = True
            continue

        match = _LOGGING_LINE.match(line)
        if match:
            status["logging"] = match.group("level") or match.group("other")
            continue

        match = _DEFAULT_LINE.match(line)
        if match:
            for item in _DEFAULT_ITEM.finditer(match.group("policies")):
                status[f"default_{item.group('direction')}"] = item.group("policy")
            continue

        match = _PROFILES_LINE.match(line)
        if match:
            status["new_profiles"] = match.group("value")
            continue

        if _HEADER_LINE.match(line):
            continue

        match = _RULE_LINE.match(_NUMBER_PREFIX.sub("", line))
        if not match:
            raise UfwParseError(f"unrecognised line in ufw status output: {raw_line!r}")

        to, source = match.group("to"), match.group("from")
        attrs = (match.group("attrs") or "").split(", ")
        log = next((attr for attr in attrs if attr in ("log", "log-all")), None)
        status["rules"].append(
            {
                "to": _V6_MARK.sub("", to),
                "action": match.group("action"),
                "direction": match.group("direction") or ("OUT" if "out" in attrs else "IN"),
                "from": _V6_MARK.sub("", source),
                "v6": "(v6)" in to or "(v6)" in source or _is_v6_address(to) or _is_v6_address(source),
                "log": log,
                "comment": match.group("comment"),
            },
        )

    if not seen_status:
        raise UfwParseError("no 'Status:' line in ufw status output")

    return status


def _is_v6_address(location: str) -> bool:
    first = location.split()[0]
    if ":" not in first or "/" in first and not first.split("/")[-1].isdigit():
        return False  # port ranges like 6000:6007/tcp
    try:
        return ipaddress.ip_network(first, strict=False).version == 6
    except ValueError:
        return False


_PORT_SPEC = re.compile(r"^(?P<port>\d+(?:[:,]\d+)*)(?:/(?P<proto>[a-z0-9]+))?$")
_ANYWHERE = re.compile(r"^Anywhere(?:/(?P<proto>[a-z0-9]+))?$")
_ADDRESS_PROTO = re.compile(r"^(?P<address>.+?)/(?P<proto>[a-z][a-z0-9]*)$")


def parse_location(text: str) -> dict[str, Any]:
    """
    Split a "To" or "From" column of ``ufw status verbose`` into its parts.

    Returns ``{"address", "port", "proto", "app", "interface", "v6"}``; ``address`` is ``"any"``
    for ``Anywhere`` and ``None`` when only a port is shown (which also means any address).

    .. code:: python

        parse_location("22/tcp")
        # {"address": None, "port": "22", "proto": "tcp", "app": None, "interface": None, "v6": False}
        parse_location("80,443/tcp (WWW Full (v6))")   # app "WWW Full", v6 True
        parse_location("8080/tcp (v6) on eth0")        # interface "eth0", v6 True
        parse_location("10.1.0.0/16 5353/udp")         # address, port "5353", proto "udp"
        parse_location("Anywhere (v6)")                # address "any", v6 True

    Raises :class:`UfwParseError` when the text has none of these shapes.
    """

    rest = text.strip()
    location: dict[str, Any] = {
        "address": None,
        "port": None,
        "proto": None,
        "app": None,
        "interface": None,
        "v6": "(v6)" in rest,
    }
    rest = _V6_MARK.sub("", rest)

    match = re.search(r"\s+on\s+(?P<interface>\S+)$", rest)
    if match:
        location["interface"] = match.group("interface")
        rest = rest[: match.start()]

    match = re.search(r"\s+\((?P<app>[^()]+)\)$", rest)
    if match:
        location["app"] = match.group("app")
        rest = rest[: match.start()]

    parts = rest.split()
    if len(parts) == 2:
        location["address"], port_spec = parts
        match = _PORT_SPEC.match(port_spec)
        if not match:
            raise UfwParseError(f"unrecognised ufw location: {text!r}")
        location["port"], location["proto"] = match.group("port"), match.group("proto")
    elif len(parts) == 1:
        (part,) = parts
        match = _ANYWHERE.match(part) or _PORT_SPEC.match(part)
        if match and part.startswith("Anywhere"):
            location["address"] = "any"
            location["proto"] = match.group("proto")
        elif match:
            location["port"], location["proto"] = match.group("port"), match.group("proto")
        else:
            match = _ADDRESS_PROTO.match(part)
            if match:  # "192.168.1.5/tcp": an address with a protocol but no port
                location["address"], location["proto"] = match.group("address"), match.group("proto")
            else:
                location["address"] = part
    else:
        raise UfwParseError(f"unrecognised ufw location: {text!r}")

    if location["address"] not in (None, "any") and not location["v6"]:
        location["v6"] = _is_v6_address(location["address"])

    return location


def parse_ufw_show_added(output: list[str] | str) -> list[str]:
    """
    Parse ``ufw show added``: the rules as the ufw commands that add them, without ``ufw``.

    ufw lists these whether or not the firewall is enabled (``ufw status`` shows no rules while
    it is inactive). Texts handled::

        Added user rules (see 'ufw status' for running firewall):
        ufw limit 22/tcp comment 'ssh rate limit'
        ufw allow 80,443/tcp
        ufw allow from 10.0.0.0/8 to any port 5432 proto tcp
        ufw allow in on eth0 to any port 8080 proto tcp
        ufw allow out 53/udp
        ufw allow log 8443/tcp
        ufw route allow in on eth1 out on eth0
        ufw allow 'WWW Full'

        Added user rules (see 'ufw status' for running firewall):
        (None)

    gives ``["limit 22/tcp comment 'ssh rate limit'", "allow 80,443/tcp", ...]`` and ``[]``.
    """

    lines = output.splitlines() if isinstance(output, str) else list(output)
    rules = []
    for raw_line in lines:
        line = raw_line.strip()
        if not line or line == "(None)" or line.startswith("Added user rules"):
            continue
        if not line.startswith("ufw "):
            raise UfwParseError(f"unrecognised line in ufw show added output: {raw_line!r}")
        rules.append(line[len("ufw ") :])
    return rules


_POLICY_NAMES = {"DROP": "deny", "ACCEPT": "allow", "REJECT": "reject"}
_POLICY_KEYS = {
    "DEFAULT_INPUT_POLICY": "incoming",
    "DEFAULT_OUTPUT_POLICY": "outgoing",
    "DEFAULT_FORWARD_POLICY": "routed",
}


def parse_ufw_defaults(output: list[str] | str) -> dict[str, str]:
    """
    Parse the default policies from ``/etc/default/ufw``.

    ``DEFAULT_INPUT_POLICY="DROP"`` becomes ``{"incoming": "deny"}``; ``ACCEPT`` is ``allow``,
    ``REJECT`` is ``reject``; ``OUTPUT`` is ``outgoing`` and ``FORWARD`` is ``routed``. Other
    lines and comments are ignored.
    """

    lines = output.splitlines() if isinstance(output, str) else list(output)
    defaults = {}
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key in _POLICY_KEYS:
            policy = _POLICY_NAMES.get(value.strip().strip("\"'").upper())
            if policy:
                defaults[_POLICY_KEYS[key]] = policy
    return defaults


class UfwStatus(FactBase[dict[str, Any]]):
    """
    Returns the state of ufw as ``ufw status verbose`` shows it.

    .. code:: python

        {
            "active": True,
            "logging": "low",
            "default_incoming": "deny",
            "default_outgoing": "allow",
            "default_routed": "deny",
            "new_profiles": "skip",
            "rules": [
                {"to": "22/tcp", "action": "ALLOW", "direction": "IN", "from": "Anywhere",
                 "v6": False, "log": None, "comment": None},
                {"to": "22/tcp", "action": "ALLOW", "direction": "IN", "from": "Anywhere",
                 "v6": True, "log": None, "comment": None},
            ],
        }

    An inactive firewall shows neither rules nor defaults (see ``UfwAddedRules`` and
    ``UfwDefaults``). Without ufw installed this returns the inactive status. See
    :func:`parse_ufw_status` for the exact texts handled.
    """

    @override
    def requires_command(self, *args, **kwargs) -> str:
        return "ufw"

    @staticmethod
    def default() -> dict[str, Any]:
        return inactive_status()

    @override
    def command(self) -> StringCommand:
        return StringCommand("LC_ALL=C", "ufw", "status", "verbose")

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        try:
            return parse_ufw_status(output)
        except UfwParseError as e:
            raise FactProcessError(str(e)) from e


class UfwAddedRules(FactBase[list[str]]):
    """
    Returns the rules ufw has stored, as the ``ufw`` arguments that add them, enabled or not.

    .. code:: python

        ["allow 22/tcp", "allow from 10.0.0.0/8 to any port 5432 proto tcp"]

    Returns ``[]`` without ufw. See :func:`parse_ufw_show_added`.
    """

    @override
    def requires_command(self, *args, **kwargs) -> str:
        return "ufw"

    @staticmethod
    def default() -> list[str]:
        return []

    @override
    def command(self) -> StringCommand:
        return StringCommand("LC_ALL=C", "ufw", "show", "added")

    @override
    def process(self, output: list[str]) -> list[str]:
        try:
            return parse_ufw_show_added(output)
        except UfwParseError as e:
            raise FactProcessError(str(e)) from e


class UfwDefaults(FactBase[dict[str, str]]):
    """
    Returns the default policies ufw has configured (``/etc/default/ufw``), enabled or not.

    .. code:: python

        {"incoming": "deny", "outgoing": "allow", "routed": "deny"}

    Returns ``{}`` without ufw.
    """

    @override
    def requires_command(self, *args, **kwargs) -> str:
        return "ufw"

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    @override
    def command(self) -> str:
        return "cat /etc/default/ufw"

    @override
    def process(self, output: list[str]) -> dict[str, str]:
        return parse_ufw_defaults(output)
