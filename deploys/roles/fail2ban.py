"""Role ``fail2ban``: jails for sshd and for the order service's refused logins.

Both read the journal: sshd logs there, and the order service's container logs there through
Docker's ``journald`` log driver with tag :data:`API_LOG_TAG` (compose, deploys/roles/order_stack.py).
The sshd jail bans in INPUT (sshd runs on the host); the API jail in ``DOCKER-USER``, because
connections to Docker-published ports are DNATed in PREROUTING and forwarded: INPUT never sees them.

Files::

    /etc/fail2ban/jail.d/orderops.local          the jails (thresholds: inventory fail2ban_*)
    /etc/fail2ban/filter.d/orderops-api.conf     the refused-login line of the order service
    /etc/systemd/system/fail2ban.service.d/orderops.conf   start after dockerd (DOCKER-USER exists)
    /etc/ufw/after.init                          puts the API jail's jump back after ufw reloaded
                                                 (deploys/operations/ufw_docker.py: ban_jumps)

A ban is a rule in the jail's chain ``f2b-<jail>``; the chain is reached through a jump fail2ban
inserts at the top of the jail's ``chain`` (``-p tcp -m multiport --dports <ports>``). ufw flushes
``DOCKER-USER`` whenever it loads its rules, so the jump is restored by ufw's after.init, written
from the same jail data (:func:`docker_user_jumps`).
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import apt

from deploys.contract.services import API_LOG_TAG
from deploys.operations import ufw_docker
from deploys.operations.prefetched import files, systemd
from inventories.schema import HostSettings
from templates import render

__all__ = ["fail2ban", "jail_text", "docker_user_jumps", "API_LOG_TAG", "API_JAIL", "API_PORTS", "JAIL_FILE", "FILTER_FILE", "DROP_IN"]

JAIL_FILE = "/etc/fail2ban/jail.d/orderops.local"
FILTER_FILE = "/etc/fail2ban/filter.d/orderops-api.conf"
DROP_IN = "/etc/systemd/system/fail2ban.service.d/orderops.conf"
#: the jail of refused API logins: its name (fail2ban's ban chain is ``f2b-<name>``) and the
#: published ports it closes to a banned address (nginx's HTTP and HTTPS)
API_JAIL = "orderops-api"
API_PORTS = (80, 443)
#: fail2ban, and python3-systemd for its journal backend.
PACKAGES = ["fail2ban", "python3-systemd"]


def jail_text(settings: HostSettings) -> str:
    """The rendered ``jail.d/orderops.local``."""
    return render(
        "fail2ban/jail.local.j2", bantime=settings.fail2ban_bantime, findtime=settings.fail2ban_findtime,
        maxretry=settings.fail2ban_maxretry, api_tag=API_LOG_TAG, api_jail=API_JAIL,
        api_ports=",".join(str(p) for p in API_PORTS),
    )


def docker_user_jumps() -> list[tuple[str, str]]:
    """``(ban chain, match)`` of each jail that bans in ``DOCKER-USER``, as fail2ban's
    ``iptables-multiport`` action inserts its jump (action.d/iptables.conf, ``ipt_multiport``:
    ``-p <protocol> -m multiport --dports <port>``; protocol ``tcp``, the action's default)."""
    return [(f"f2b-{API_JAIL}", "-p tcp -m multiport --dports " + ",".join(str(p) for p in API_PORTS))]


@deploy("fail2ban")
def fail2ban(settings: HostSettings) -> None:
    """Install fail2ban with the orderops jails and keep it running (restarted when a file changed)."""
    apt.packages(name="fail2ban", packages=PACKAGES, no_recommends=True)
    changed = [
        files.put(name="fail2ban jails", src=StringIO(jail_text(settings)), dest=JAIL_FILE, mode="644"),
        files.put(name="fail2ban filter: refused logins", src=StringIO(render("fail2ban/orderops-api.conf.j2")),
                  dest=FILTER_FILE, mode="644"),
    ]
    files.directory(name="fail2ban.service drop-in directory", path="/etc/systemd/system/fail2ban.service.d", mode="755")
    drop_in = files.put(name="fail2ban starts after dockerd", src=StringIO(render("fail2ban/fail2ban.service.conf.j2")),
                        dest=DROP_IN, mode="644")
    systemd.daemon_reload(name="systemd reads the fail2ban drop-in", _if=drop_in.did_change)
    systemd.service(
        name="fail2ban running", service="fail2ban", enabled=True, running=True,
        restarted=True, _if=lambda: any(op.did_change() for op in [*changed, drop_in]),
    )
    systemd.service(name="fail2ban enabled", service="fail2ban", enabled=True, running=True)
    ufw_docker.ban_jumps(name="bans survive a ufw reload (after.init restores the DOCKER-USER jumps)",
                         jumps=docker_user_jumps())
