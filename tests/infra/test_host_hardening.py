"""Host baseline on every host: sshd in force (``sshd -T``), sysctls, core dumps, umask, apt lock."""

from __future__ import annotations

from deploys.facts.sshd import parse_sshd_t
from deploys.operations.sshd import mismatches
from deploys.operations.sysctl import namespaced
from deploys.roles.base import sshd_settings
from deploys.roles.hardening import APT_LOCK_FILE, SYSCTL_BASELINE, SYSCTL_FILE, sysctl_text


def test_sshd_runs_with_the_hardened_settings(any_host, settings):
    result = any_host.run("sshd -T -C user=%s,host=check,addr=127.0.0.1", settings.deploy_user)
    assert result.rc == 0, result.stderr
    assert mismatches(parse_sshd_t(result.stdout.splitlines()), sshd_settings(settings)) == []


def test_sshd_offers_no_nist_sha1_or_ecdsa(any_host):
    conf = parse_sshd_t(any_host.run("sshd -T").stdout.splitlines())
    offered = " ".join(conf[k] for k in ("kexalgorithms", "ciphers", "macs", "hostkeyalgorithms", "hostkey"))
    for weak in ("nistp", "ecdsa", "sha1", "hmac-sha2-256,", "umac-64", "-cbc", "diffie-hellman"):
        assert weak not in offered + ",", f"{weak} still offered: {offered}"


def test_deploy_user_is_in_the_ssh_login_group(any_host, settings):
    assert settings.ssh_allow_groups[0] in any_host.user(settings.deploy_user).groups


def test_sysctl_baseline_file_and_values(any_host):
    assert any_host.file(SYSCTL_FILE).content_string == sysctl_text()
    in_container = any_host.run("awk '$5 == \"/proc/sys\" {print $6}' /proc/self/mountinfo").stdout.startswith("ro")
    wrong = {}
    for key, value in SYSCTL_BASELINE.items():
        if in_container and not namespaced(key):
            continue
        got = any_host.run("sysctl -n %s", key).stdout.strip()
        if got != value:
            wrong[key] = got
    assert wrong == {}, f"sysctls not in force: {wrong}"
    if in_container:
        log = any_host.run("journalctl -t orderops-sysctl --no-pager -o cat").stdout
        for key in SYSCTL_BASELINE:
            if not namespaced(key):
                assert f"skipped {key}: /proc/sys is read-only in this container" in log, key
        assert "namespaced net.* keys" in log


def test_core_dumps_off_umask_and_apt_lock(any_host, settings):
    assert "hard    core    0" in any_host.file("/etc/security/limits.d/10-orderops-coredump.conf").content_string
    assert "DefaultLimitCORE=0" in any_host.file("/etc/systemd/system.conf.d/10-orderops-coredump.conf").content_string
    assert any_host.run("bash -lc umask").stdout.strip() == "0027"
    assert f'DPkg::Lock::Timeout "{settings.apt_lock_timeout}";' in any_host.file(APT_LOCK_FILE).content_string
    assert any_host.run("apt-config dump DPkg::Lock::Timeout").stdout.strip() == f'DPkg::Lock::Timeout "{settings.apt_lock_timeout}";'


def test_unattended_security_upgrades(any_host, settings):
    assert any_host.package("unattended-upgrades").is_installed
    dump = any_host.run("apt-config dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert f'Unattended-Upgrade::Automatic-Reboot "{str(settings.auto_reboot).lower()}";' in dump
    assert "Security" in dump or "-security" in dump  # the distribution's security origin


def test_controller_records_only_the_host_keys_sshd_offers(any_host, settings):
    """The runbooks' known_hosts (controller role) loses the ECDSA/RSA keys sshd no longer offers."""
    import pytest

    from deploys.contract.paths import RunbookLayout

    if "controller" not in settings.groups:
        pytest.skip("not a controller host")
    text = any_host.file(RunbookLayout(settings.runbook_dir).known_hosts).content_string
    kinds = {line.split()[1] for line in text.splitlines() if line.strip()}
    assert kinds == {"ssh-ed25519"}, kinds


#: Services a deployed host may run (``systemctl list-units --type=service --state=running``), each
#: with its reason. A name ending in ``@`` allows the template's instances. Anything else running
#: fails the check: disable it (inventory ``disabled_services``) or add it here with its reason.
ALLOWED_RUNNING: dict[str, str] = {
    # every host
    "ssh.service": "remote administration; the deploy and the runbooks connect through it (Debian/Ubuntu name)",
    "sshd.service": "the same daemon under its alias on some releases",
    "systemd-journald.service": "the journal: fail2ban's jails and the order service's container logs read it",
    "systemd-logind.service": "login sessions of SSH users (pam_systemd)",
    "dbus.service": "system bus: systemctl, logind and timedated talk over it",
    "user@": "the systemd --user manager of a logged-in user (the deploy user's SSH session, this check's own)",
    "fail2ban.service": "bans addresses after failed SSH and API logins (app hosts)",
    "unattended-upgrades.service": "finishes an interrupted security upgrade at shutdown (it waits for the signal)",
    "cron.service": "the distribution's periodic jobs",
    "systemd-timesyncd.service": "NTP: TLS and tokens need a right clock (real hosts; skipped in containers)",
    "auditd.service": "audit rules for Docker's files on real hosts (docker role)",
    # the stack
    "docker.service": "Docker Engine: runs the order stack's and the monitoring's containers",
    "containerd.service": "Docker Engine's container runtime (docker-apt packages)",
    # the base system of a real Debian/Ubuntu server (absent in the test host's container)
    "systemd-udevd.service": "device events (disks, network interfaces)",
    "systemd-networkd.service": "network configuration (Ubuntu's netplan backend)",
    "systemd-resolved.service": "DNS resolver (Ubuntu)",
    "networkd-dispatcher.service": "hooks on network state changes (Ubuntu)",
    "networking.service": "ifupdown network configuration (Debian)",
    "rsyslog.service": "syslog to files (Ubuntu's default)",
    "polkit.service": "authorisation of privileged D-Bus calls (Ubuntu's default)",
    "multipathd.service": "storage multipath (Ubuntu server's default; the root disk may sit on it)",
    "irqbalance.service": "spreads interrupts over the CPUs",
    "qemu-guest-agent.service": "the hypervisor's agent on a VM (shutdown, snapshots)",
    "getty@": "console login",
    "serial-getty@": "serial console login",
    "console-getty.service": "console login in a container",
}


def _allowed(unit: str) -> bool:
    return unit in ALLOWED_RUNNING or any(k.endswith("@") and unit.startswith(k) for k in ALLOWED_RUNNING)


def test_only_the_services_the_host_needs_run(any_host):
    out = any_host.run("systemctl list-units --type=service --state=running --no-legend --plain --no-pager")
    assert out.rc == 0, out.stderr
    running = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert "ssh.service" in running or "sshd.service" in running, running  # the listing is real
    extra = [unit for unit in running if not _allowed(unit)]
    assert extra == [], f"running beyond the allow-list: {extra}"


def test_unneeded_services_are_absent_or_masked(any_host, settings):
    """Each of the inventory's ``disabled_services`` the host has is masked and not running."""
    wrong = {}
    for unit in settings.disabled_services:
        props = any_host.run("systemctl show --property=LoadState,ActiveState -- %s", unit).stdout
        state = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
        if state.get("LoadState") == "not-found":
            continue
        if state.get("LoadState") != "masked" or state.get("ActiveState") not in ("inactive", "failed"):
            wrong[unit] = state
    assert wrong == {}, wrong
