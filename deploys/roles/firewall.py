"""Role ``firewall``: only the inventory's TCP ports (``firewall_allow_tcp``) are reachable.

Two places, because ports that Docker publishes bypass ufw's INPUT chain (Docker DNATs them in
PREROUTING and accepts them in FORWARD):

- ufw: deny incoming, allow outgoing, allow exactly the ports (host services, and IPv6 that
  Docker 20.10 publishes through docker-proxy);
- ``DOCKER-USER`` (IPv4 and IPv6), loaded by ufw from its after(6).rules: a published port is
  reachable only when its host port is allowed (:mod:`deploys.operations.ufw_docker`).

Internal services (PostgreSQL, Redis, the API) publish no host port at all; nginx publishes 80/443.
A monitoring stack split over hosts (``HostSettings.firewall_allow_from``) adds rules from single
sources in both places: an app host's exporters and ``/metrics`` from the monitoring hosts'
addresses, a monitoring host's Loki push port from the app hosts' addresses.
"""

from __future__ import annotations

from pyinfra.api import deploy

from deploys.operations import ufw, ufw_docker
from inventories.schema import HostSettings

__all__ = ["firewall"]


@deploy("firewall")
def firewall(settings: HostSettings) -> None:
    """Converge ufw on one host: default deny in, allow out, exactly the allowed TCP ports."""
    ufw.default(name="ufw: deny incoming by default", direction="incoming", policy="deny")
    ufw.default(name="ufw: allow outgoing by default", direction="outgoing", policy="allow")
    sourced = list(settings.firewall_allow_from)  # split monitoring only: exporters / Loki from the other side
    ufw.rules(name="ufw: allowed TCP ports" + (" (and monitoring sources)" if sourced else ""),
              allowed=list(settings.firewall_allow_tcp), proto="tcp", exclusive=True, allowed_from=sourced)
    ufw.enabled(name="ufw enabled", enabled=True)
    ufw_docker.docker_user(name="DOCKER-USER: published ports only where allowed (IPv4, IPv6)",
                           allowed_tcp=list(settings.firewall_allow_tcp), allowed_from=sourced)
