"""
A firewall policy Docker cannot bypass: the ``DOCKER-USER`` chain, loaded by ufw.

Docker publishes a port by DNAT in ``nat/PREROUTING`` and accepts the packets in ``FORWARD``;
they never pass ``INPUT``, where ufw's rules are (issue 10; test-hosts.md §7). Docker jumps from
``FORWARD`` to ``DOCKER-USER`` before its own rules and never flushes that chain, so the policy
goes there, for IPv4 and IPv6 (the approach of ufw-docker: a section of ufw's ``after.rules`` /
``after6.rules``, so ufw loads it at boot, before dockerd starts, and on every ``ufw reload``)::

    -A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
    -A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport <allowed> -j RETURN   (each)
    -A DOCKER-USER -m conntrack --ctstate DNAT -j DROP
    -A DOCKER-USER -j RETURN

Only DNATed (published) connections are filtered: a published port answers from outside only
when the inventory allows its *host* port, whatever a container publishes; containers' own
outbound and inter-container traffic passes. IPv6 has two paths, both covered:

- Engines >= 27 (and older ones with ``"ip6tables": true``) DNAT IPv6 as well: the ``after6.rules``
  chain filters it.
- Debian's docker.io 20.10 without ip6tables publishes IPv6 through ``docker-proxy`` listening on
  ``[::]:port``: that traffic is local, passes ``INPUT`` and ufw's default deny filters it. The
  IPv6 ``DOCKER-USER`` chain then exists without a jump to it (harmless).

fail2ban's API jail bans in ``DOCKER-USER`` through a jump to its own chain (``f2b-<jail>``,
deploys/roles/fail2ban.py). Loading the section flushes the chain, jumps included, on every
``ufw reload`` / ``ufw enable``; :func:`ban_jumps` installs ufw's ``after.init`` hook, which puts
them back right after the load, so a ban survives a reload (the ban chains are never flushed).

Exception: packets routed to a container address directly (no DNAT; only a neighbour on the same
link that routes the bridge subnet through the host can send them) reach the ports Docker
accepts for published containers; ufw's ``routed`` default does not see them either.
"""

from __future__ import annotations

import re
from ipaddress import ip_network
from collections.abc import Iterable
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand

from deploys.facts.cache import cached_fact, declares
from deploys.facts.ufw_docker import AFTER_INIT, FAMILIES, BanChains, DockerUserChains, UfwAfterInit, UfwAfterRules
from templates import render

__all__ = ["docker_user", "ban_jumps", "after_init_text", "jump_rule", "policy_rules", "render_section", "with_section",
           "BEGIN", "END", "AFTER_INIT"]

BEGIN = "# BEGIN orderops DOCKER-USER, managed by deploys/operations/ufw_docker.py"
END = "# END orderops DOCKER-USER"
_SECTION = re.compile(rf"^{re.escape(BEGIN)}\n.*?^{re.escape(END)}\n", re.S | re.M)
#: the section as uploaded, kept on the host next to ufw's files
STAGED = "/etc/ufw/orderops-docker-user.rules"


def policy_rules(allowed_tcp: Iterable[int], allowed_from: Iterable[tuple[str, int]] = (), family: str = "ipv4") -> list[str]:
    """The chain of ``family`` in ``iptables -S`` form: ``-N DOCKER-USER`` then the rules.

    + allowed_tcp: host TCP ports a published container may be reached on (1..65535)
    + allowed_from: ``(source, port)`` pairs reachable from that source only; those of ``family``
      (``ipv4``/``ipv6``) become ``-s <network> ... --ctorigdstport <port> -j RETURN``

    Raises ``OperationValueError`` for a port out of range.
    """
    ports = sorted(set(int(p) for p in allowed_tcp))
    for port in ports:
        if not 1 <= port <= 65535:
            raise OperationValueError(f"port out of range: {port}")
    rules = ["-N DOCKER-USER", "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    rules += [f"-A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport {p} -j RETURN" for p in ports]
    rules += [f"-A DOCKER-USER -s {source} -p tcp -m conntrack --ctstate DNAT --ctorigdstport {p} -j RETURN"
              for source, p in _sourced(allowed_from, family)]
    rules += ["-A DOCKER-USER -m conntrack --ctstate DNAT -j DROP", "-A DOCKER-USER -j RETURN"]
    return rules


def _sourced(allowed_from: Iterable[tuple[str, int]], family: str) -> list[tuple[str, int]]:
    """``(network as iptables -S prints it, port)`` of the pairs of ``family`` (``ipv4``/``ipv6``), sorted.
    Raises ``OperationValueError`` for a source that is no IP address or network, or a bad port."""
    out = set()
    for source, port in allowed_from:
        try:
            network = ip_network(source, strict=False)
        except ValueError:
            raise OperationValueError(f"invalid source {source!r}: use an IP address or network") from None
        if not 1 <= int(port) <= 65535:
            raise OperationValueError(f"port out of range: {port}")
        if network.version == (4 if family == "ipv4" else 6):
            out.add((network, int(port)))
    return [(str(n), p) for n, p in sorted(out, key=lambda item: (item[0].network_address, item[0].prefixlen, item[1]))]


def render_section(allowed_tcp: Iterable[int], allowed_from: Iterable[tuple[str, int]] = (), family: str = "ipv4") -> str:
    """The ``*filter`` section appended to ufw's after(6).rules (``iptables-restore`` syntax).

    Declaring ``:DOCKER-USER`` flushes the chain on every load (``iptables-restore -n``
    flushes declared chains), so a reload replaces the rules instead of adding copies.
    """
    rules = policy_rules(allowed_tcp, allowed_from, family)
    body = [":DOCKER-USER - [0:0]"] + rules[1:]
    return "\n".join([BEGIN, "*filter", *body, "COMMIT", END]) + "\n"


def with_section(text: str, section: str) -> str:
    """``text`` (an after.rules file) with orderops' section removed and appended at the end,
    as the host-side edit of :func:`docker_user` does (``sed`` delete, then append)."""
    return _SECTION.sub("", text) + section


def own_rules(lines: list[str] | None) -> list[str] | None:
    """``iptables -S DOCKER-USER`` lines without fail2ban's jumps to its ``f2b-<jail>`` chains
    (deploys/roles/fail2ban.py inserts them at the top): they are not drift. A ``ufw reload``
    drops them with the rest of the chain; ufw's ``after.init`` (:func:`ban_jumps`) puts them back."""
    return None if lines is None else [l for l in lines if " -j f2b-" not in l]


def _families(ipv6: bool) -> list[str]:
    """The address families the policy manages: IPv4, and IPv6 unless ``ipv6`` is false."""
    return [f for f in FAMILIES if f == "ipv4" or ipv6]


@declares(lambda a: [(UfwAfterRules, {}), (DockerUserChains, {})])
@operation()
def docker_user(allowed_tcp: list[int], ipv6: bool = True, allowed_from: list[tuple[str, int]] = ()):
    """
    Converge the ``DOCKER-USER`` policy: ufw's after.rules files and the live chains.

    + allowed_tcp: host TCP ports published containers may be reached on from outside
    + allowed_from: ``(source address or network, TCP port)`` pairs reachable from that source only
      (each family's file and chain gets the pairs of its family)
    + ipv6: manage ``after6.rules`` and the IPv6 chain too (ufw's ``IPV6=yes``, the default)

    Writes the section into the files that lack it, then ``ufw reload`` when a file changed or a
    live chain differs (someone flushed it, or the host booted without the section). Runs after
    ufw is installed and enabled (``test -f`` fails the operation when a file is missing).
    """
    files = cached_fact(host, UfwAfterRules)
    live = cached_fact(host, DockerUserChains)
    allowed_from = list(allowed_from)
    families = _families(ipv6)

    reload = False
    staged: dict[str, str] = {}
    for family in families:
        _, path = FAMILIES[family]
        section = render_section(allowed_tcp, allowed_from, family)
        text = files.get(family)
        # None: ufw is installed by an earlier operation of this run; the edit works the same
        if text is None or with_section(text, section) != text:
            # one staged file per distinct section (the families differ only by their sources)
            if section not in staged:
                staged[section] = STAGED if not staged else f"{STAGED}.{family}"
                yield FileUploadCommand(StringIO(section), staged[section])
                yield StringCommand("chmod 0644", QuoteString(staged[section]))
            yield StringCommand(
                "test -f", QuoteString(path), "&&",
                "sed -i", QuoteString("/^# BEGIN orderops DOCKER-USER/,/^# END orderops DOCKER-USER/d"), QuoteString(path), "&&",
                "cat", QuoteString(staged[section]), ">>", QuoteString(path),
            )
            reload = True
        if own_rules(live.get(family)) != policy_rules(allowed_tcp, allowed_from, family):
            reload = True
    if not reload:
        host.noop("DOCKER-USER policy in place (files and live chains)")
        return
    yield StringCommand("ufw reload")
    # prove the reload loaded it: a broken section makes this fail instead of passing silently
    for family in families:
        tool, _ = FAMILIES[family]
        yield StringCommand(tool, "-w -C DOCKER-USER -m conntrack --ctstate DNAT -j DROP")


_TARGET = re.compile(r"^f2b-[A-Za-z0-9_.-]{1,24}$")
_WORD = re.compile(r"^[A-Za-z0-9,:._-]+$")


def jump_rule(target: str, spec: str) -> str:
    """fail2ban's jump from ``DOCKER-USER`` to its ban chain as ``iptables -S`` prints it.

    + target: the ban chain, ``f2b-<jail>`` (fail2ban's ``_ipt_rule_target``; iptables names are at most 28 characters)
    + spec: the match in front of ``-j`` as fail2ban's action writes it (``-p tcp -m multiport --dports 80,443``)

    Raises ``OperationValueError`` for a name or word a shell or iptables would read otherwise.
    """
    if not _TARGET.match(target):
        raise OperationValueError(f"not a fail2ban ban chain: {target!r}")
    if not spec.split() or not all(_WORD.match(word) for word in spec.split()):
        raise OperationValueError(f"not a plain iptables match: {spec!r}")
    return f"-A DOCKER-USER {' '.join(spec.split())} -j {target}"


def after_init_text(jumps: Iterable[tuple[str, str]], ipv6: bool = True) -> str:
    """``/etc/ufw/after.init`` (templates/ufw/after.init.j2) that restores ``jumps`` after ufw
    loaded its rules, in IPv4 and (with ``ipv6``) IPv6: each ``(target, spec)`` as :func:`jump_rule`."""
    jumps = [(target, " ".join(spec.split())) for target, spec in jumps]
    for target, spec in jumps:
        jump_rule(target, spec)
    tools = [FAMILIES[f][0] for f in _families(ipv6)]
    return render("ufw/after.init.j2", tools=tools, jumps=jumps)


@declares(lambda a: [(UfwAfterInit, {}), (BanChains, {}), (DockerUserChains, {})])
@operation()
def ban_jumps(jumps: list[tuple[str, str]], ipv6: bool = True):
    """
    fail2ban's bans in ``DOCKER-USER`` survive a ``ufw reload``: ufw's ``after.init`` re-inserts
    the jumps to the ban chains that exist (the chains, with their addresses, are not ufw's and
    stay; only DOCKER-USER is flushed, by orderops' section of after(6).rules, :func:`docker_user`).

    + jumps: ``(ban chain, match)`` pairs of the jails that ban in DOCKER-USER, as :func:`jump_rule`
    + ipv6: restore IPv6 jumps too (as :func:`docker_user`'s ``ipv6``)

    Writes the hook (0755) when it differs, and runs it (``after.init start``, idempotent) when it
    was written or a ban chain exists without its jump (a reload before the hook existed, or a
    flush by hand), so the host is repaired now, not at the next ``ufw reload``.
    """
    script = after_init_text(jumps, ipv6)
    current = cached_fact(host, UfwAfterInit)
    chains = cached_fact(host, BanChains)
    live = cached_fact(host, DockerUserChains)

    write = current != {"executable": True, "text": script}
    missing = [
        f"{FAMILIES[family][0]} {jump_rule(target, spec)}"
        for family in _families(ipv6) for target, spec in jumps
        if target in chains.get(family, []) and live.get(family) is not None
        and jump_rule(target, spec) not in live[family]
    ]
    if write:
        yield FileUploadCommand(StringIO(script), AFTER_INIT)
        yield StringCommand("chmod 0755", QuoteString(AFTER_INIT))
    if write or missing:
        yield StringCommand(QuoteString(AFTER_INIT), "start")
        return
    host.noop("ufw's after.init restores fail2ban's DOCKER-USER jumps; every ban chain has its jump")
