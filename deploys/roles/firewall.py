"""Role ``firewall``: ufw denies incoming traffic except the allowed TCP ports (22/80/443).

Ports that Docker publishes bypass ufw's INPUT chain (Docker DNATs them in PREROUTING), so the
order stack publishes only nginx's 80/443, which are allowed anyway; PostgreSQL and Redis
publish nothing.
"""

from __future__ import annotations

from pyinfra.api import deploy

from deploys.operations import ufw
from inventories.schema import HostSettings

__all__ = ["firewall"]


@deploy("firewall")
def firewall(settings: HostSettings) -> None:
    """Converge ufw on one host: default deny in, allow out, exactly the allowed TCP ports."""
    ufw.default(name="ufw: deny incoming by default", direction="incoming", policy="deny")
    ufw.default(name="ufw: allow outgoing by default", direction="outgoing", policy="allow")
    ufw.rules(name="ufw: allowed TCP ports", allowed=list(settings.firewall_allow_tcp), proto="tcp", exclusive=True)
    ufw.enabled(name="ufw enabled", enabled=True)
