"""sshd: effective-config parsing and the check that orderops' settings are in force."""

from deploys.facts.sshd import parse_sshd_t
from deploys.operations.sshd import mismatches
import hashlib

import pytest
from pyinfra.facts.files import Sha256File

from deploys.operations import sshd
from deploys.roles.base import SSHD_ALGORITHMS, SSHD_SETTINGS, sshd_drop_in, sshd_settings

from .opcases import check_case

SSHD_T = """port 22
permitrootlogin without-password
passwordauthentication no
kbdinteractiveauthentication no
permitemptypasswords no
x11forwarding no
hostkey /etc/ssh/ssh_host_rsa_key
hostkey /etc/ssh/ssh_host_ed25519_key
""".splitlines()

#: what sshd -T prints once the drop-in is in force (keywords lower-case)
IN_FORCE = [f"{k.lower()} {v}" for k, v in SSHD_SETTINGS.items()]


def test_parse_keeps_repeated_keywords():
    conf = parse_sshd_t(SSHD_T)
    assert conf["hostkey"] == "/etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_ed25519_key"
    assert conf["passwordauthentication"] == "no"


def test_another_file_winning_is_reported():
    problems = mismatches(parse_sshd_t(SSHD_T), {"PermitRootLogin": "no", "PasswordAuthentication": "no"})
    assert problems == ["PermitRootLogin: in force 'without-password', wanted 'no'"]
    # the distribution's ECDSA/RSA host keys still offered: reported
    problems = mismatches(parse_sshd_t(SSHD_T), {"HostKey": "/etc/ssh/ssh_host_ed25519_key"})
    assert problems == ["HostKey: in force '/etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_ed25519_key', wanted '/etc/ssh/ssh_host_ed25519_key'"]


def test_all_in_force():
    conf = parse_sshd_t(IN_FORCE)
    assert mismatches(conf, SSHD_SETTINGS) == []
    assert mismatches(conf, {"PermitRootLogin": "prohibit-password"}) == [
        "PermitRootLogin: in force 'no', wanted 'prohibit-password'"]


def _settings(**extra):
    from inventories.schema import HostSettings

    secrets = {n: "x" * 30 for n in ("postgres_password", "redis_password", "secret_key", "admin_password")}
    images = {r: f"example/{r}:1" for r in ("order_service", "postgres", "redis", "nginx")}
    return HostSettings.model_validate(
        dict(host="h", environment="local", domain="order.test", secrets=secrets, images=images, **extra))


def test_drop_in_template_sets_every_enforced_setting():
    settings = _settings(ssh_allow_groups=("orderops-ssh", "admins"))
    lines = {l.split(None, 1)[0]: l.split(None, 1)[1] for l in sshd_drop_in(settings).splitlines() if l and not l.startswith("#")}
    wanted = sshd_settings(settings)
    assert wanted["AllowGroups"] == "orderops-ssh admins"
    for key, value in wanted.items():
        assert lines[key] == value
    assert set(lines) - set(wanted) == {"MaxAuthTries", "LoginGraceTime"}


def test_only_modern_algorithms():
    kex = SSHD_ALGORITHMS["KexAlgorithms"].split(",")
    assert all(k.startswith(("sntrup761", "curve25519")) for k in kex)
    macs = SSHD_ALGORITHMS["MACs"].split(",")
    assert macs and all(m.startswith("hmac-sha2-") and m.endswith("-etm@openssh.com") for m in macs)
    ciphers = SSHD_ALGORITHMS["Ciphers"].split(",")
    assert all(("chacha20-poly1305" in c) or ("-gcm" in c) or c.endswith("-ctr") for c in ciphers)
    assert "ecdsa" not in SSHD_ALGORITHMS["HostKeyAlgorithms"] and "rsa" not in SSHD_ALGORITHMS["HostKeyAlgorithms"]


def test_bad_allow_group_is_an_inventory_error():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a valid group name"):
        _settings(ssh_allow_groups=("bad group",))


CASES = {
    "up to date: noop": dict(
        facts={(Sha256File, (("path", "/etc/ssh/sshd_config.d/00-orderops.conf"),)): hashlib.sha256(b"PermitRootLogin no\n").hexdigest()},
        kwargs=dict(filename="00-orderops.conf", content="PermitRootLogin no\n", probe_user="deploy"),
        noop="up to date",
    ),
    "changed: staged, then check + reload + login probe + restore script": dict(
        facts={(Sha256File, (("path", "/etc/ssh/sshd_config.d/00-orderops.conf"),)): None},
        kwargs=dict(filename="00-orderops.conf", content="PermitRootLogin no\n", probe_user="deploy"),
        commands=[
            "mkdir -p /etc/ssh/sshd_config.d",
            "<upload /etc/ssh/sshd_config.d/00-orderops.conf.orderops-new>",
            "/usr/local/sbin/orderops-sshd-apply /etc/ssh/sshd_config.d/00-orderops.conf "
            "/etc/ssh/sshd_config.d/00-orderops.conf.orderops-new ssh deploy",
        ],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_drop_in_cases(case):
    check_case(sshd.drop_in, case)
