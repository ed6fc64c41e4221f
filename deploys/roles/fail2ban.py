"""Role ``fail2ban``: jails for sshd and for the order service's refused logins.

Both read the journal: sshd logs there, and the order service's container logs there through
Docker's ``journald`` log driver with tag :data:`API_LOG_TAG` (compose, deploys/roles/order_stack.py).
The sshd jail bans in INPUT (sshd runs on the host); the API jail in ``DOCKER-USER``, because
connections to Docker-published ports are DNATed in PREROUTING and forwarded: INPUT never sees them.

Files::

    /etc/fail2ban/jail.d/orderops.local          the jails (thresholds: inventory fail2ban_*)
    /etc/fail2ban/filter.d/orderops-api.conf     the refused-login line of the order service
    /etc/systemd/system/fail2ban.service.d/orderops.conf   start after dockerd (DOCKER-USER exists)
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from deploys.contract.services import API_LOG_TAG
from inventories.schema import HostSettings
from templates import render

__all__ = ["fail2ban", "jail_text", "API_LOG_TAG", "JAIL_FILE", "FILTER_FILE", "DROP_IN"]

JAIL_FILE = "/etc/fail2ban/jail.d/orderops.local"
FILTER_FILE = "/etc/fail2ban/filter.d/orderops-api.conf"
DROP_IN = "/etc/systemd/system/fail2ban.service.d/orderops.conf"
#: fail2ban, and python3-systemd for its journal backend.
PACKAGES = ["fail2ban", "python3-systemd"]


def jail_text(settings: HostSettings) -> str:
    """The rendered ``jail.d/orderops.local``."""
    return render(
        "fail2ban/jail.local.j2", bantime=settings.fail2ban_bantime, findtime=settings.fail2ban_findtime,
        maxretry=settings.fail2ban_maxretry, api_tag=API_LOG_TAG,
    )


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
