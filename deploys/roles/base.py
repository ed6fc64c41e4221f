"""Role ``base``: packages, time, the deploy user, sshd hardening, orderops' own directories."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import apt, server

from deploys.contract.paths import STATE_DIR, UPLOAD_DIR
from deploys.contract.sshd import SSHD_ALGORITHMS, SSHD_SETTINGS, policy
from deploys.operations import sshd
from deploys.operations.prefetched import files, systemd
from deploys.roles.hardening import apt_lock_timeout
from inventories.schema import HostSettings
from templates import TEMPLATE_DIR, render

__all__ = ["base", "BASE_PACKAGES", "SSHD_SETTINGS", "SSHD_ALGORITHMS", "sshd_settings", "sshd_drop_in"]

#: Packages every host gets. ``ufw`` is the firewall role's; ``openssl`` makes the TLS role's
#: self-signed certificate; ``systemd-timesyncd`` keeps the clock (NTP).
BASE_PACKAGES = [
    "ca-certificates", "curl", "openssl", "tzdata", "sudo", "python3", "gnupg",
    "systemd-timesyncd", "ufw", "util-linux", "procps",
]

# The sshd policy (SSHD_SETTINGS, SSHD_ALGORITHMS) is the host contract's: deploys/contract/sshd.py.


def sshd_settings(settings: HostSettings) -> dict[str, str]:
    """Every setting of the drop-in as ``sshd -T`` must show it: :data:`SSHD_SETTINGS` plus
    ``AllowGroups`` from the inventory (``ssh_allow_groups``): :func:`deploys.contract.sshd.policy`."""
    return policy(settings.ssh_allow_groups)


def sshd_drop_in(settings: HostSettings) -> str:
    """The text of ``/etc/ssh/sshd_config.d/00-orderops.conf``."""
    return render("sshd/orderops.conf.j2", allow_groups=settings.ssh_allow_groups, algorithms=SSHD_ALGORITHMS)


@deploy("base")
def base(settings: HostSettings) -> None:
    """Converge the base system of one host from its validated ``settings``."""
    apt_lock_timeout(settings.apt_lock_timeout)
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

    # AllowGroups: the deploy user and the connecting user are members of the first group
    login_users = sorted({settings.deploy_user, host.data.get("ssh_user") or settings.deploy_user})
    server.group(name="SSH login group", group=settings.ssh_allow_groups[0])
    for user in login_users:
        server.user(name=f"{user} may log in over SSH", user=user, groups=[settings.ssh_allow_groups[0]], append=True)
    files.put(
        name="sshd drop-in installer (check, reload, login probe, restore)",
        src=str(TEMPLATE_DIR / "sshd" / "apply-drop-in.sh"), dest=sshd.APPLY_SCRIPT, mode="755",
    )
    sshd.drop_in(
        name="sshd hardening drop-in", filename="00-orderops.conf", content=sshd_drop_in(settings),
        probe_user=host.data.get("ssh_user") or settings.deploy_user, service="ssh",
    )
    sshd.enforced(name="sshd uses the hardened settings", settings=sshd_settings(settings))

