"""The TLS role's self-signed certificate: the operation on fake facts, and its certificate check and
openssl command run for real (openssl of this machine) in a temporary directory."""

from __future__ import annotations

import subprocess

import pytest
from pyinfra.facts.server import Command

from deploys.roles.tls import certificate_check, self_signed
from tests.unit.deploys.fake_host import run_op


def test_valid_certificate_is_kept():
    commands, noops = run_op(self_signed, {Command: lambda cmd: "valid\n"}, cert="/t/fullchain.pem",
                             key="/t/privkey.pem", domain="order.test")
    assert (commands, noops) == ([], ["certificate for order.test is valid"])


def test_missing_certificate_is_made_with_a_private_key_under_umask_077():
    commands, noops = run_op(self_signed, {Command: lambda cmd: "missing\n"}, cert="/t/fullchain.pem",
                             key="/t/privkey.pem", domain="order.test")
    assert noops == [] and commands[0] == "install -d -m 0755 /t"
    # files or symlinks (a former ACME lineage) go first: openssl must never write through a link
    assert commands[1] == "rm -f /t/fullchain.pem /t/privkey.pem"
    assert commands[2].startswith("umask 077 && openssl req -x509") and "subjectAltName=DNS:order.test" in commands[2]
    assert commands[2].endswith("chmod 0644 /t/fullchain.pem")


def _sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def made(tmp_path):
    """A certificate for order.test made by the operation's own commands."""
    cert, key = str(tmp_path / "tls" / "fullchain.pem"), str(tmp_path / "tls" / "privkey.pem")
    commands, _ = run_op(self_signed, {Command: lambda cmd: "missing"}, cert=cert, key=key, domain="order.test", days=40)
    for command in commands:
        _sh(command)
    return cert, key


def test_made_certificate_passes_the_check_for_its_domain_only(made):
    cert, key = made
    assert _sh(certificate_check(cert, key, "order.test")) == "valid"
    assert _sh(certificate_check(cert, key, "other.test")) == "missing"
    assert oct(__import__("os").stat(key).st_mode & 0o777) == "0o600"


def test_a_certificate_expiring_within_the_renewal_window_is_replaced(tmp_path):
    cert, key = str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem")
    commands, _ = run_op(self_signed, {Command: lambda cmd: "missing"}, cert=cert, key=key, domain="order.test", days=10)
    for command in commands:
        _sh(command)
    assert _sh(certificate_check(cert, key, "order.test")) == "missing"  # 10 days < RENEW_BEFORE_DAYS


def test_a_symlink_into_certbot_live_is_not_a_self_signed_certificate(made, tmp_path):
    cert, key = made
    link = tmp_path / "linked.pem"
    link.symlink_to(cert)
    assert _sh(certificate_check(str(link), key, "order.test")) == "missing"
