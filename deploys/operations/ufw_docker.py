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

Exception: packets routed to a container address directly (no DNAT; only a neighbour on the same
link that routes the bridge subnet through the host can send them) reach the ports Docker
accepts for published containers; ufw's ``routed`` default does not see them either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand

from deploys.facts.ufw_docker import FAMILIES, DockerUserChains, UfwAfterRules

__all__ = ["docker_user", "policy_rules", "render_section", "with_section", "BEGIN", "END"]

BEGIN = "# BEGIN orderops DOCKER-USER, managed by deploys/operations/ufw_docker.py"
END = "# END orderops DOCKER-USER"
_SECTION = re.compile(rf"^{re.escape(BEGIN)}\n.*?^{re.escape(END)}\n", re.S | re.M)
#: the section as uploaded, kept on the host next to ufw's files
STAGED = "/etc/ufw/orderops-docker-user.rules"


def policy_rules(allowed_tcp: Iterable[int]) -> list[str]:
    """The chain in ``iptables -S`` form: ``-N DOCKER-USER`` then the rules (same for v4 and v6).

    + allowed_tcp: host TCP ports a published container may be reached on (1..65535)

    Raises ``OperationValueError`` for a port out of range.
    """
    ports = sorted(set(int(p) for p in allowed_tcp))
    for port in ports:
        if not 1 <= port <= 65535:
            raise OperationValueError(f"port out of range: {port}")
    rules = ["-N DOCKER-USER", "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    rules += [f"-A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport {p} -j RETURN" for p in ports]
    rules += ["-A DOCKER-USER -m conntrack --ctstate DNAT -j DROP", "-A DOCKER-USER -j RETURN"]
    return rules


def render_section(allowed_tcp: Iterable[int]) -> str:
    """The ``*filter`` section appended to ufw's after(6).rules (``iptables-restore`` syntax).

    Declaring ``:DOCKER-USER`` flushes the chain on every load (``iptables-restore -n``
    flushes declared chains), so a reload replaces the rules instead of adding copies.
    """
    rules = policy_rules(allowed_tcp)
    body = [":DOCKER-USER - [0:0]"] + rules[1:]
    return "\n".join([BEGIN, "*filter", *body, "COMMIT", END]) + "\n"


def with_section(text: str, section: str) -> str:
    """``text`` (an after.rules file) with orderops' section removed and appended at the end,
    as the host-side edit of :func:`docker_user` does (``sed`` delete, then append)."""
    return _SECTION.sub("", text) + section


@operation()
def docker_user(allowed_tcp: list[int], ipv6: bool = True):
    """
    Converge the ``DOCKER-USER`` policy: ufw's after.rules files and the live chains.

    + allowed_tcp: host TCP ports published containers may be reached on from outside
    + ipv6: manage ``after6.rules`` and the IPv6 chain too (ufw's ``IPV6=yes``, the default)

    Writes the section into the files that lack it, then ``ufw reload`` when a file changed or a
    live chain differs (someone flushed it, or the host booted without the section). Runs after
    ufw is installed and enabled (``test -f`` fails the operation when a file is missing).
    """
    files = host.get_fact(UfwAfterRules)
    live = host.get_fact(DockerUserChains)
    section = render_section(allowed_tcp)
    wanted = policy_rules(allowed_tcp)
    families = [f for f in FAMILIES if f == "ipv4" or ipv6]

    reload = False
    staged = False
    for family in families:
        _, path = FAMILIES[family]
        text = files.get(family)
        # None: ufw is installed by an earlier operation of this run; the edit works the same
        if text is None or with_section(text, section) != text:
            if not staged:
                yield FileUploadCommand(StringIO(section), STAGED)
                yield StringCommand("chmod 0644", QuoteString(STAGED))
                staged = True
            yield StringCommand(
                "test -f", QuoteString(path), "&&",
                "sed -i", QuoteString("/^# BEGIN orderops DOCKER-USER/,/^# END orderops DOCKER-USER/d"), QuoteString(path), "&&",
                "cat", QuoteString(STAGED), ">>", QuoteString(path),
            )
            reload = True
        if live.get(family) != wanted:
            reload = True
    if not reload:
        host.noop("DOCKER-USER policy in place (files and live chains)")
        return
    yield StringCommand("ufw reload")
    # prove the reload loaded it: a broken section makes this fail instead of passing silently
    for family in families:
        tool, _ = FAMILIES[family]
        yield StringCommand(tool, "-w -C DOCKER-USER -m conntrack --ctstate DNAT -j DROP")
