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
