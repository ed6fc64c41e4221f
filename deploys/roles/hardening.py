"""Role ``hardening``: the host baseline besides sshd and the firewall.

==========================  ===============================================================
what                        where
==========================  ===============================================================
apt waits for the dpkg      ``/etc/apt/apt.conf.d/90orderops-lock`` (``DPkg::Lock::Timeout``),
lock                        written by :func:`apt_lock_timeout` before the first apt operation
kernel/network sysctls      ``/etc/sysctl.d/60-orderops-baseline.conf``; applied in full on a
                            real host, only ``net.ipv4.*``/``net.ipv6.*`` in a container (the
                            rest skipped, each skip logged: journal tag ``orderops-sysctl``);
                            ``orderops-sysctl.service`` re-applies at boot, where
                            systemd-sysctl skips a read-only ``/proc/sys``
core dumps off              limits.d ``* hard core 0``, systemd ``DefaultLimitCORE=0``,
                            systemd-coredump ``Storage=none``, ``fs.suid_dumpable = 0``
default umask 027           ``/etc/profile.d/orderops-umask.sh`` for login shells. Not in
                            ``/etc/login.defs``: Ubuntu's pam_umask would apply it to the
                            deploy's own SSH sessions, and the files pyinfra writes with sudo
                            (the controller's venv) must stay readable by the runbook user.
security updates            ``unattended-upgrades`` with the distribution's own origins (Debian:
                            ``Debian-Security``; Ubuntu: ``-security``), daily;
                            ``20orderops-auto-upgrades``; reboot when a package needs it only if
                            the inventory says so (``auto_reboot``, off by default, at
                            ``auto_reboot_time``)
only the services the host  the inventory's ``disabled_services`` (default
needs                       ``inventories.schema.UNNEEDED_SERVICES``, each with its reason:
                            snapd, ModemManager, avahi, cups, bluetooth, rpcbind, crash
                            reporters, udisks2) stopped, disabled and masked where present
                            (:mod:`deploys.operations.units`); the schema refuses a unit the
                            roles need. tests/infra/test_host_hardening.py checks the running
                            services against an allow-list.
==========================  ===============================================================

Sources of the values: CIS Debian/Ubuntu benchmarks (network parameters, kernel hardening),
kernel.org ``Documentation/admin-guide/sysctl/{net,kernel,fs}.rst``.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import apt

from deploys.operations import sysctl, units
from deploys.operations.prefetched import files, systemd
from inventories.schema import HostSettings
from templates import TEMPLATE_DIR

__all__ = ["hardening", "auto_upgrades_text", "apt_lock_timeout", "SYSCTL_BASELINE", "SYSCTL_FILE", "sysctl_text", "APT_LOCK_FILE"]

SYSCTL_FILE = "/etc/sysctl.d/60-orderops-baseline.conf"
APT_LOCK_FILE = "/etc/apt/apt.conf.d/90orderops-lock"

#: The kernel/network baseline. Forwarding stays as it is (Docker needs ip_forward).
SYSCTL_BASELINE: dict[str, str] = {
    # no ICMP redirects (accepted or sent), no source-routed packets
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.secure_redirects": "0",
    "net.ipv4.conf.default.secure_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv6.conf.all.accept_source_route": "0",
    "net.ipv6.conf.default.accept_source_route": "0",
    # reverse-path filter (strict), SYN cookies, log martians, ignore broadcast/bogus ICMP
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.default.rp_filter": "1",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv4.conf.default.log_martians": "1",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
    "net.ipv4.icmp_ignore_bogus_error_responses": "1",
    # kernel pointers and dmesg for root only; protected links, FIFOs and files in sticky dirs
    "kernel.kptr_restrict": "2",
    "kernel.dmesg_restrict": "1",
    "fs.protected_hardlinks": "1",
    "fs.protected_symlinks": "1",
    "fs.protected_fifos": "1",
    "fs.protected_regular": "2",
    # no core dumps of setuid programs
    "fs.suid_dumpable": "0",
}


def sysctl_text(values: dict[str, str] = SYSCTL_BASELINE) -> str:
    """The baseline file's text (``key = value`` lines)."""
    head = "# Managed by orderops (deploys/roles/hardening.py).\n"
    return head + "".join(f"{key} = {value}\n" for key, value in values.items())


def auto_upgrades_text(settings: HostSettings) -> str:
    """``/etc/apt/apt.conf.d/20orderops-auto-upgrades``: daily lists + unattended security
    upgrades; the reboot policy from the inventory."""
    reboot = "true" if settings.auto_reboot else "false"
    return (
        "// Managed by orderops (deploys/roles/hardening.py)\n"
        'APT::Periodic::Update-Package-Lists "1";\n'
        'APT::Periodic::Unattended-Upgrade "1";\n'
        f'Unattended-Upgrade::Automatic-Reboot "{reboot}";\n'
        f'Unattended-Upgrade::Automatic-Reboot-Time "{settings.auto_reboot_time}";\n'
    )


def apt_lock_timeout(seconds: int) -> None:
    """apt and dpkg wait up to ``seconds`` for the dpkg lock (e.g. held by unattended-upgrades)
    instead of failing the deploy. Call before the first apt operation."""
    files.put(
        name="apt waits for the dpkg lock",
        src=StringIO(f'// Managed by orderops (deploys/roles/hardening.py)\nDPkg::Lock::Timeout "{int(seconds)}";\n'),
        dest=APT_LOCK_FILE, mode="644",
    )


@deploy("hardening")
def hardening(settings: HostSettings) -> None:
    """Converge the host baseline of one host (see the module docstring)."""
    files.put(name="sysctl baseline applier", src=str(TEMPLATE_DIR / "host" / "sysctl-apply.sh"), dest=sysctl.APPLY_SCRIPT, mode="755")
    files.put(name="sysctl baseline file", src=StringIO(sysctl_text()), dest=SYSCTL_FILE, mode="644")
    sysctl.applied(name="sysctl baseline in force", values=SYSCTL_BASELINE, path=SYSCTL_FILE)
    unit = files.put(
        name="sysctl baseline at boot (orderops-sysctl.service)",
        src=StringIO(
            "# Managed by orderops (deploys/roles/hardening.py)\n[Unit]\nDescription=orderops sysctl baseline\n"
            "After=systemd-sysctl.service\nBefore=network-pre.target docker.service\nWants=network-pre.target\n\n"
            f"[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart={sysctl.APPLY_SCRIPT} {SYSCTL_FILE}\n\n"
            "[Install]\nWantedBy=multi-user.target\n",
        ),
        dest="/etc/systemd/system/orderops-sysctl.service", mode="644",
    )
    systemd.service(name="orderops-sysctl.service enabled", service="orderops-sysctl.service", enabled=True, daemon_reload=unit.will_change)

    files.put(name="No core dumps (limits)", src=StringIO("# Managed by orderops\n*    hard    core    0\nroot hard    core    0\n"),
              dest="/etc/security/limits.d/10-orderops-coredump.conf", mode="644")
    files.put(name="No core dumps (systemd services)", src=StringIO("# Managed by orderops\n[Manager]\nDefaultLimitCORE=0\n"),
              dest="/etc/systemd/system.conf.d/10-orderops-coredump.conf", mode="644", create_remote_dir=True)
    files.put(name="No core dumps (systemd-coredump)", src=StringIO("# Managed by orderops\n[Coredump]\nStorage=none\nProcessSizeMax=0\n"),
              dest="/etc/systemd/coredump.conf.d/10-orderops.conf", mode="644", create_remote_dir=True)
    apt.packages(name="unattended-upgrades", packages=["unattended-upgrades"], no_recommends=True)
    files.put(name="Automatic security updates", src=StringIO(auto_upgrades_text(settings)),
              dest="/etc/apt/apt.conf.d/20orderops-auto-upgrades", mode="644")
    units.masked(name="Services a production host does not run: masked where present", units=list(settings.disabled_services))
    files.put(name="Restrictive default umask (login shells)", src=StringIO("# Managed by orderops\numask 027\n"),
              dest="/etc/profile.d/orderops-umask.sh", mode="644")
