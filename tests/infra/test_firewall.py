"""ufw on every host: active, deny incoming, exactly the inventory's TCP ports allowed in (and, with the
monitoring stack on its own host, exactly its single-source rules: ``HostSettings.firewall_allow_from``).

The output is read with the parser of the ``UfwStatus`` fact the deploy itself uses.
"""

from __future__ import annotations

from deploys.facts.ufw import parse_ufw_status

#: Actions that let traffic in (LIMIT allows, rate-limited).
OPENING_ACTIONS = ("ALLOW", "LIMIT")


def ufw_status(host):
    """The host's parsed ``ufw status verbose`` (untranslated)."""
    result = host.run("LC_ALL=C ufw status verbose")
    assert result.rc == 0, f"ufw status failed (rc {result.rc}): {result.stderr.strip()}"
    return parse_ufw_status(result.stdout)


def test_ufw_is_active_and_denies_incoming_by_default(any_host):
    status = ufw_status(any_host)
    assert status["active"], "ufw is inactive"
    assert status["default_incoming"] == "deny"


def test_ufw_allows_exactly_the_inventory_ports(any_host, settings):
    status = ufw_status(any_host)
    wanted = {f"{port}/tcp" for port in settings.firewall_allow_tcp}

    opening = [r for r in status["rules"] if r["direction"] == "IN" and r["action"] in OPENING_ACTIONS]
    # the only rules from single sources: a split monitoring stack's (exporters / Loki), exactly those
    sourced = {f"{r['to']} from {r['from']}" for r in opening if r["from"] != "Anywhere"}
    wanted_sourced = {f"{port}/tcp from {source}" for source, port in settings.firewall_allow_from}
    assert sourced == wanted_sourced, "rules from specific sources differ from the inventory's"

    v4 = {r["to"] for r in opening if not r["v6"] and r["from"] == "Anywhere"}
    v6 = {r["to"] for r in opening if r["v6"] and r["from"] == "Anywhere"}
    assert v4 == wanted, f"IPv4: allowed {sorted(v4)}, inventory wants {sorted(wanted)}"
    # IPv6 rules come with the IPv4 ones (unless IPV6=no in /etc/default/ufw).
    assert v6 in (wanted, set()), f"IPv6: allowed {sorted(v6)}, inventory wants {sorted(wanted)}"
