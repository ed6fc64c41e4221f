"""
Manage ufw, the Uncomplicated Firewall (pyinfra ships no ufw operations).

Operations read the ``UfwStatus`` fact and yield ``ufw`` commands only when the firewall differs
from what is asked; otherwise they call ``host.noop``. A plain ``ufw allow 22/tcp`` adds the
IPv4 and the IPv6 rule together (and ``ufw delete allow 22/tcp`` removes both), so a rule counts
as present when either row is.

While ufw is inactive ``ufw status`` shows no rules and no defaults, so the operations then read
the stored rules (``UfwAddedRules``) and defaults (``UfwDefaults``) instead. Before ufw is
installed every fact returns its empty default: ufw counts as inactive with no rules, and the
operations yield the commands a fresh install needs.

**Example:**

.. code:: python

    from deploys.operations import ufw

    ufw.default(name="Deny incoming by default", direction="incoming", policy="deny")
    ufw.rules(name="Allow exactly SSH and HTTP(S)", allowed=[22, 80, 443], proto="tcp")
    ufw.enabled(name="Enable ufw", enabled=True)
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation

from deploys.facts.cache import cached_fact, declares
from deploys.facts.ufw import UfwAddedRules, UfwDefaults, UfwStatus, parse_location

# every ufw operation reads the status; the stored rules and defaults while ufw is inactive
_declares_status = declares(lambda a: [(UfwStatus, {}), (UfwAddedRules, {}), (UfwDefaults, {})])

DIRECTIONS = ("incoming", "outgoing", "routed")
POLICIES = ("allow", "deny", "reject")
ACTIONS = ("allow", "deny", "reject", "limit")
PROTOCOLS = ("tcp", "udp")

_PORTS = re.compile(r"^\d{1,5}(?:[:,]\d{1,5})*$")
_PLAIN_SPEC = re.compile(r"^\d+(?:[:,]\d+)*(?:/[a-z0-9]+)?$")
_MAX_PORTS_PER_RULE = 15  # ufw (iptables multiport) refuses longer port lists


def port_spec(port: int | str | Iterable[int | str], proto: str | None = "tcp") -> str:
    """
    Return ufw's ``PORT[/PROTOCOL]`` text for a port, a range or a list of ports.

    ``port_spec(22)`` is ``"22/tcp"``, ``port_spec("6000:6007")`` is ``"6000:6007/tcp"``,
    ``port_spec([80, 443])`` is ``"80,443/tcp"`` (one multiport rule) and
    ``port_spec(53, None)`` is ``"53"`` (TCP and UDP). This is also how ``ufw status`` shows the
    rule. Raises ``OperationValueError`` for anything else.
    """

    if isinstance(port, (list, tuple)):
        text = ",".join(str(p) for p in port)
    else:
        text = str(port).strip()

    if not _PORTS.match(text):
        raise OperationValueError(f"invalid ufw port {port!r}: use 22, '6000:6007' or [80, 443]")

    numbers = [int(n) for n in re.split(r"[:,]", text)]
    if not all(1 <= n <= 65535 for n in numbers):
        raise OperationValueError(f"invalid ufw port {port!r}: ports are 1-65535")
    for low, high in re.findall(r"(\d+):(\d+)", text):
        if int(low) >= int(high):
            raise OperationValueError(f"invalid ufw port range {low}:{high}")
    if len(numbers) > _MAX_PORTS_PER_RULE:
        raise OperationValueError(f"ufw allows at most {_MAX_PORTS_PER_RULE} ports in one rule")

    if proto is None:
        if re.search(r"[:,]", text):
            raise OperationValueError(f"ufw needs a protocol for port lists and ranges ({text})")
        return text
    if proto not in PROTOCOLS:
        raise OperationValueError(f"invalid ufw protocol {proto!r}: use one of {PROTOCOLS} or None")
    return f"{text}/{proto}"


@dataclass(frozen=True)
class _Rule:
    """One ufw rule as the operations compare it, from either source of rules."""

    action: str  # allow | deny | reject | limit
    direction: str  # in | out | route
    plain: str | None  # "22/tcp" for a rule `ufw <action> 22/tcp` can add and delete
    delete_args: tuple[str, ...] | None  # what follows `ufw delete <action>`; None: not handled


def _rule_from_status(row: dict[str, Any]) -> _Rule:
    action = row["action"].lower()
    direction = {"IN": "in", "OUT": "out", "FWD": "route"}[row["direction"]]
    if direction == "route":
        return _Rule(action, direction, None, None)

    to = parse_location(row["to"])
    source = parse_location(row["from"])

    if (
        to["address"] is None
        and to["port"]
        and not to["app"]
        and not to["interface"]
        and source["address"] == "any"
        and not (source["port"] or source["app"] or source["interface"] or source["proto"])
        and not row["log"]
    ):
        plain = f"{to['port']}/{to['proto']}" if to["proto"] else to["port"]
        return _Rule(action, direction, plain, (plain,))

    # Anything else: the full syntax, which deletes the IPv4 and IPv6 rows of "any" together.
    args = [direction]
    interface = to["interface"] if direction == "in" else source["interface"]
    if interface:
        args += ["on", interface]
    if row["log"]:
        args.append(row["log"])
    proto = to["proto"] or source["proto"]
    if proto and not (to["app"] or source["app"]):
        args += ["proto", proto]
    for keyword, location in (("from", source), ("to", to)):
        args += [keyword, location["address"] or "any"]
        if location["app"]:
            args += ["app", location["app"]]
        elif location["port"]:
            args += ["port", location["port"]]
    return _Rule(action, direction, None, tuple(args))


def _rule_from_added(line: str) -> _Rule:
    words = shlex.split(line)
    if words[0] == "route":
        return _Rule(words[1], "route", None, None)

    action, rest = words[0], words[1:]
    if "comment" in rest:
        rest = rest[: rest.index("comment")]
    direction = "out" if rest[:1] == ["out"] else "in"
    plain = rest[0] if len(rest) == 1 and _PLAIN_SPEC.match(rest[0]) else None
    return _Rule(action, direction, plain, tuple(rest))


def _sourced_args(args: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """A rule from one source to one port in :func:`source_rule_args`' form, whichever way it was read
    (``ufw status``: ``in proto P from ADDR to any port N``; ``ufw show added``: ``from ADDR to any
    port N proto P``), else ``None``."""
    words = list(args or ())
    if len(words) == 9 and words[:2] == ["in", "proto"] and words[3] == "from" and words[5:8] == ["to", "any", "port"]:
        return tuple(words)
    rest = words[1:] if words[:1] == ["in"] else words
    if len(rest) == 8 and rest[0] == "from" and rest[2:5] == ["to", "any", "port"] and rest[6] == "proto":
        return ("in", "proto", rest[7], "from", rest[1], "to", "any", "port", rest[5])
    return None


def source_rule_args(source: str, port: int | str, proto: str = "tcp") -> tuple[str, ...]:
    """What follows ``ufw allow`` (and ``ufw delete allow``) for one port from one source address:
    ``("in", "proto", "tcp", "from", "10.0.0.5", "to", "any", "port", "9100")``. Raises
    ``OperationValueError`` for a source that is not an IP address or network, or a bad port."""
    try:
        address = str(ip_network(source, strict=False))
    except ValueError:
        raise OperationValueError(f"invalid ufw source {source!r}: use an IP address or network") from None
    if address.endswith(("/32", "/128")):
        address = address.rsplit("/", 1)[0]
    spec = port_spec(port, proto)
    number, _, proto = spec.partition("/")
    return ("in", "proto", proto, "from", address, "to", "any", "port", number)


def _current_rules() -> list[_Rule]:
    status = cached_fact(host, UfwStatus)
    if status["active"]:
        return [_rule_from_status(row) for row in status["rules"]]
    return [_rule_from_added(line) for line in cached_fact(host, UfwAddedRules)]


def _ufw_rule(action: str, spec: str, delete: bool = False) -> StringCommand:
    words = ["ufw", "delete"] if delete else ["ufw"]
    return StringCommand(*words, QuoteString(action), QuoteString(spec))


@_declares_status
@operation()
def default(direction: str = "incoming", policy: str = "deny") -> Iterator[StringCommand]:
    """
    Set ufw's default policy for one direction of traffic.

    + direction: ``incoming``, ``outgoing`` or ``routed``
    + policy: ``allow``, ``deny`` or ``reject``

    **Example:**

    .. code:: python

        ufw.default(
            name="Deny incoming traffic by default",
            direction="incoming",
            policy="deny",
        )
    """

    if direction not in DIRECTIONS:
        raise OperationValueError(f"invalid ufw direction {direction!r}: use one of {DIRECTIONS}")
    if policy not in POLICIES:
        raise OperationValueError(f"invalid ufw policy {policy!r}: use one of {POLICIES}")

    current = cached_fact(host, UfwStatus)[f"default_{direction}"]
    # Inactive ufw shows no defaults, and shows "disabled" for routed while the kernel does not
    # forward: the configured policy is in /etc/default/ufw then.
    if current is None or current == "disabled":
        current = cached_fact(host, UfwDefaults).get(direction)

    if current == policy:
        host.noop(f"ufw default {direction} policy is {policy}")
        return

    yield StringCommand("ufw", "default", QuoteString(policy), QuoteString(direction))


@_declares_status
@operation()
def rule(
    port: int | str | list[int | str],
    proto: str | None = "tcp",
    action: str = "allow",
    present: bool = True,
) -> Iterator[StringCommand]:
    """
    Add or delete one incoming ufw rule for a port, a port range or a list of ports.

    + port: a port (``22``), a range (``"6000:6007"``) or a list of ports (``[80, 443]``, one
      multiport rule ``80,443/tcp``)
    + proto: ``tcp``, ``udp``, or ``None`` for both (not with ranges and lists)
    + action: ``allow``, ``deny``, ``reject`` or ``limit``
    + present: whether the rule should exist; ``False`` deletes it

    The rule is from anywhere, IPv4 and IPv6 together, as ``ufw allow 22/tcp`` makes it.
    Adding a rule for a port that has one with another action replaces that one (ufw does so).

    **Examples:**

    .. code:: python

        ufw.rule(
            name="Rate-limit SSH",
            port=22,
            action="limit",
        )

        ufw.rule(
            name="Remove the old web port",
            port=8080,
            present=False,
        )
    """

    if action not in ACTIONS:
        raise OperationValueError(f"invalid ufw action {action!r}: use one of {ACTIONS}")
    spec = port_spec(port, proto)

    exists = any(
        r.action == action and r.direction == "in" and r.plain == spec for r in _current_rules()
    )

    if present and not exists:
        yield _ufw_rule(action, spec)
    elif not present and exists:
        yield _ufw_rule(action, spec, delete=True)
    else:
        host.noop(f"ufw rule {action} {spec} {'exists' if exists else 'does not exist'}")


@_declares_status
@operation()
def rules(
    allowed: Iterable[int | str],
    proto: str | None = "tcp",
    exclusive: bool = True,
    allowed_from: Iterable[tuple[str, int]] = (),
) -> Iterator[StringCommand]:
    """
    Converge the set of incoming ``allow`` rules: one plain rule per allowed port, and one rule
    per ``(source, port)`` of ``allowed_from``.

    + allowed: ports to allow from anywhere: ``22``, ``"6000:6007"``, or ``"53/udp"`` to give a
      port its own protocol
    + proto: protocol of the ports given without one: ``tcp``, ``udp`` or ``None`` for both
    + allowed_from: ``(source address or network, port)`` pairs allowed from that source only
      (``ufw allow in proto tcp from 10.0.0.5 to any port 9100``; ``proto`` must be ``tcp`` or ``udp``)
    + exclusive: delete every other incoming ``allow`` rule (other ports, other sources,
      interfaces, applications)

    Missing rules are added before others are deleted, so SSH stays reachable throughout. Rules
    with other actions (``deny``, ``limit``...), outgoing and routed rules are left alone.

    **Example:**

    .. code:: python

        ufw.rules(
            name="Allow exactly SSH, HTTP and HTTPS in",
            allowed=[22, 80, 443],
            proto="tcp",
        )
    """

    wanted: list[str] = []
    for item in allowed:
        text = str(item)
        if "/" in text:
            port, _, item_proto = text.partition("/")
            spec = port_spec(port, item_proto)
        else:
            spec = port_spec(item, proto)
        if spec not in wanted:
            wanted.append(spec)

    wanted_from: list[tuple[str, ...]] = []
    for source, port in allowed_from:
        args = source_rule_args(source, port, proto or "tcp")
        if args not in wanted_from:
            wanted_from.append(args)

    allow_in = [r for r in _current_rules() if r.action == "allow" and r.direction == "in"]
    present = {r.plain for r in allow_in if r.plain}
    present_from = {_sourced_args(r.delete_args) for r in allow_in if not r.plain}

    changed = False
    for spec in wanted:
        if spec not in present:
            changed = True
            yield _ufw_rule("allow", spec)
    for args in wanted_from:
        if args not in present_from:
            changed = True
            yield StringCommand("ufw", "allow", *(QuoteString(a) for a in args))

    if exclusive:
        deleted: set[tuple[str, ...]] = set()
        for r in allow_in:
            if (r.plain in wanted or r.delete_args is None or r.delete_args in deleted
                    or _sourced_args(r.delete_args) in wanted_from):
                continue
            deleted.add(r.delete_args)
            changed = True
            yield StringCommand("ufw", "delete", "allow", *(QuoteString(a) for a in r.delete_args))

    if not changed:
        qualifier = "exactly" if exclusive else "at least"
        sourced = [f"{a[8]}/{a[2]} from {a[4]}" for a in wanted_from]
        host.noop(f"ufw allows {qualifier} {', '.join(wanted + sourced) or 'nothing'} in")


@_declares_status
@operation()
def enabled(enabled: bool = True) -> Iterator[StringCommand]:
    """
    Enable (and start at boot) or disable ufw.

    + enabled: whether ufw should be active

    Enabling uses ``--force``: ufw otherwise asks for confirmation when run over SSH. Add the
    rule that allows SSH first.

    **Example:**

    .. code:: python

        ufw.enabled(
            name="Enable the firewall",
            enabled=True,
        )
    """

    active = cached_fact(host, UfwStatus)["active"]

    if enabled and not active:
        yield StringCommand("ufw", "--force", "enable")
    elif not enabled and active:
        yield StringCommand("ufw", "disable")
    else:
        host.noop(f"ufw is {'enabled' if active else 'disabled'}")
