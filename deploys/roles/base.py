"""Role ``base``: packages, time, the deploy user, sshd hardening, orderops' own directories."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from deploys.contract.paths import STATE_DIR, UPLOAD_DIR
from deploys.operations import sshd
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

#: Algorithms sshd offers (issue 10; OpenSSH >= 8.5, i.e. Ubuntu 22.04 and Debian 12 on):
#: key exchange sntrup761/curve25519 only, the Ed25519 host key only, AEAD ciphers and CTR,
#: SHA-2 MACs in encrypt-then-MAC mode only. paramiko 4 (pyinfra, testinfra) speaks
#: curve25519-sha256@libssh.org, aes*-ctr/gcm and the -etm MACs.
SSHD_ALGORITHMS = {
    "KexAlgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
    "HostKeyAlgorithms": "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com",
    "Ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
    "MACs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
    # users' keys: Ed25519 (also FIDO) and RSA with SHA-2 signatures
    "PubkeyAcceptedAlgorithms": "ssh-ed25519,sk-ssh-ed25519@openssh.com,rsa-sha2-512,rsa-sha2-256",
}

#: The sshd settings orderops enforces whatever the inventory says (``sshd -T`` must show them).
SSHD_SETTINGS = {
    "PubkeyAuthentication": "yes",
    "AuthenticationMethods": "publickey",
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitRootLogin": "no",
    "PermitEmptyPasswords": "no",
    "X11Forwarding": "no",
    "HostKey": "/etc/ssh/ssh_host_ed25519_key",
    **SSHD_ALGORITHMS,
}



def sshd_settings(settings: HostSettings) -> dict[str, str]:
    """Every setting of the drop-in as ``sshd -T`` must show it: :data:`SSHD_SETTINGS` plus
    ``AllowGroups`` from the inventory (``ssh_allow_groups``)."""
    return {**SSHD_SETTINGS, "AllowGroups": " ".join(settings.ssh_allow_groups)}


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

