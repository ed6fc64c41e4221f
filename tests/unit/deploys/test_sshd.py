"""sshd: effective-config parsing and the check that orderops' settings are in force."""

from deploys.facts.sshd import parse_sshd_t
from deploys.operations.sshd import mismatches
from deploys.roles.base import SSHD_SETTINGS
from templates import render

SSHD_T = """port 22
permitrootlogin without-password
passwordauthentication no
kbdinteractiveauthentication no
permitemptypasswords no
x11forwarding no
hostkey /etc/ssh/ssh_host_rsa_key
hostkey /etc/ssh/ssh_host_ed25519_key
""".splitlines()


def test_parse_keeps_repeated_keywords():
    conf = parse_sshd_t(SSHD_T)
    assert conf["hostkey"] == "/etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_ed25519_key"
    assert conf["passwordauthentication"] == "no"


def test_another_file_winning_is_reported():
    problems = mismatches(parse_sshd_t(SSHD_T), SSHD_SETTINGS)
    assert problems == ["PermitRootLogin: in force 'without-password', wanted 'no'"]


def test_all_in_force():
    conf = parse_sshd_t([l.replace("without-password", "no") for l in SSHD_T])
    assert mismatches(conf, SSHD_SETTINGS) == []
    assert mismatches(conf, {"PermitRootLogin": "prohibit-password"}) == [
        "PermitRootLogin: in force 'no', wanted 'prohibit-password'"]


def test_drop_in_template_sets_every_enforced_setting():
    lines = {l.split()[0]: l.split()[1] for l in render("sshd/orderops.conf.j2").splitlines() if l and not l.startswith("#")}
    for key, value in SSHD_SETTINGS.items():
        assert lines[key] == value
