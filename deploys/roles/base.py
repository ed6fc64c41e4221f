"""Role ``base``: packages, time, the deploy user, sshd hardening, orderops' own directories."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from deploys.contract.paths import STATE_DIR, UPLOAD_DIR
from deploys.operations import sshd
from inventories.schema import HostSettings
from templates import render

__all__ = ["base", "BASE_PACKAGES", "SSHD_SETTINGS"]

#: Packages every host gets. ``ufw`` is the firewall role's; ``openssl`` makes the TLS role's
#: self-signed certificate; ``systemd-timesyncd`` keeps the clock (NTP).
BASE_PACKAGES = [
    "ca-certificates", "curl", "openssl", "tzdata", "sudo", "python3", "gnupg",
    "systemd-timesyncd", "ufw", "util-linux", "procps",
]

#: The sshd settings orderops enforces, as written in ``templates/sshd/orderops.conf.j2``.
SSHD_SETTINGS = {
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitRootLogin": "no",
    "PermitEmptyPasswords": "no",
    "X11Forwarding": "no",
}


@deploy("base")
def base(settings: HostSettings) -> None:
    """Converge the base system of one host from its validated ``settings``."""
    apt.packages(
        name="Base packages",
        packages=BASE_PACKAGES,
        update=True,
        cache_time=24 * 3600,
        no_recommends=True,
    )

    files.link(name="Time zone", path="/etc/localtime", target=f"/usr/share/zoneinfo/{settings.timezone}")
    files.put(name="Time zone name", src=StringIO(f"{settings.timezone}\n"), dest="/etc/timezone", mode="644")
    in_container = host.get_fact(Command, "systemd-detect-virt --container 2>/dev/null || true").strip() not in ("", "none")
    # systemd-timesyncd skips itself in containers (ConditionVirtualization=!container): only enable it there.
    systemd.service(
        name="NTP (systemd-timesyncd)",
        service="systemd-timesyncd",
        enabled=True,
        running=None if in_container else True,
    )

    server.user(
        name="Deploy user",
        user=settings.deploy_user,
        shell="/bin/bash",
        groups=["sudo"],
        append=True,
        create_home=True,
    )

    files.directory(name="orderops state directory", path=STATE_DIR, mode="755")
    files.directory(
        name="Private upload directory",
        path=UPLOAD_DIR,
        user=host.data.get("ssh_user") or "root",
        mode="700",
    )

    sshd.drop_in(name="sshd hardening drop-in", filename="00-orderops.conf", content=render("sshd/orderops.conf.j2"), service="ssh")
    sshd.enforced(name="sshd uses the hardened settings", settings=SSHD_SETTINGS)
