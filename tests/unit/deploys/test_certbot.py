"""certbot: the lineage fact (its shell command run for real on openssl-made files), the order
decision, and the ``certonly`` operation on fake facts (data cases, one runner)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pyinfra.facts.server import Command

from deploys.contract.tls import LETS_ENCRYPT, LETS_ENCRYPT_STAGING
from deploys.facts.certbot import CertbotCertificates, Lineage, parse_certificates
from deploys.operations import certbot
from deploys.roles.tls import placeholder
from tests.unit.deploys.fake_host import run_op

NAMES = ("order.test", "www.order.test")
VALID = Lineage("orderops", NAMES, "0A1B", "Dec  3 12:00:00 2031 GMT", False, LETS_ENCRYPT)


def _cert(tmp: Path, lineage: str, names: tuple[str, ...], days: int, server: str | None) -> None:
    live = tmp / "live" / lineage
    live.mkdir(parents=True)
    san = ",".join(f"DNS:{n}" for n in names)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days), "-subj", f"/CN={names[0]}",
         "-addext", f"subjectAltName={san}", "-keyout", str(live / "privkey.pem"), "-out", str(live / "cert.pem")],
        check=True, capture_output=True,
    )
    if server:
        (tmp / "renewal").mkdir(exist_ok=True)
        (tmp / "renewal" / f"{lineage}.conf").write_text(f"version = 2.1.0\n[renewalparams]\nserver = {server}\n")


def test_fact_reads_names_serial_expiry_and_server_of_every_lineage(tmp_path):
    _cert(tmp_path, "orderops", NAMES, 90, LETS_ENCRYPT_STAGING)
    _cert(tmp_path, "old", ("old.test",), 10, None)
    out = subprocess.run(["sh", "-c", CertbotCertificates().command(config_dir=str(tmp_path))],
                         capture_output=True, text=True, check=True).stdout
    found = parse_certificates(out.splitlines())
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(tmp_path / "live/orderops/cert.pem")],
                            capture_output=True, text=True, check=True).stdout.strip().split("=")[1]
    assert found["orderops"] == Lineage("orderops", NAMES, serial.upper(), found["orderops"].not_after, False, LETS_ENCRYPT_STAGING)
    assert found["orderops"].not_after.endswith("GMT")
    assert found["old"].names == ("old.test",) and found["old"].due is True and found["old"].server is None


def test_fact_without_lineages_is_empty(tmp_path):
    out = subprocess.run(["sh", "-c", CertbotCertificates().command(config_dir=str(tmp_path / "none"))],
                         capture_output=True, text=True, check=True).stdout
    assert parse_certificates(out.splitlines()) == {}


BASE = ("certbot certonly --non-interactive --agree-tos --config-dir /etc/letsencrypt "
        f"--server {LETS_ENCRYPT} --cert-name orderops --webroot --webroot-path /opt/orderops/acme "
        "-d order.test -d www.order.test")
TAIL = "--force-renewal --renew-with-new-domains"

CASES = {
    "valid lineage, same names in another order: no order": (
        {"orderops": VALID}, {"names": ("www.order.test", "order.test")}, [],
        ["certificate orderops for www.order.test, order.test is valid"], None),
    "no lineage: order, no e-mail": (
        {}, {}, [f"{BASE} --register-unsafely-without-email {TAIL}"], [], "no certificate yet"),
    "another lineage only: order": (
        {"other": VALID}, {}, [f"{BASE} --register-unsafely-without-email {TAIL}"], [], "no certificate yet"),
    "names changed: order": (
        {"orderops": Lineage("orderops", ("order.test",), "01", "x", False, LETS_ENCRYPT)}, {},
        [f"{BASE} --register-unsafely-without-email {TAIL}"], [], "names changed"),
    "server changed (staging -> production): order": (
        {"orderops": Lineage("orderops", NAMES, "01", "x", False, LETS_ENCRYPT_STAGING)}, {},
        [f"{BASE} --register-unsafely-without-email {TAIL}"], [], "ACME server changed"),
    "due: order with e-mail, hook and CA bundle": (
        {"orderops": Lineage("orderops", NAMES, "01", "Jan  1 00:00:00 2027 GMT", True, LETS_ENCRYPT)},
        {"email": "ops@example.com", "deploy_hook": "/opt/orderops/bin/certbot-deploy-hook.sh", "ca_bundle": "/etc/orderops/acme-ca.pem"},
        ["env REQUESTS_CA_BUNDLE=/etc/orderops/acme-ca.pem " + BASE
         + " --email ops@example.com --deploy-hook /opt/orderops/bin/certbot-deploy-hook.sh " + TAIL], [], "expires soon"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_certificate_operation(case):
    # No distribution branch: Debian's and Ubuntu's certbot packages share the command line and /etc/letsencrypt.
    lineages, kwargs, want_commands, want_noops, reason = CASES[case]
    asked = {}

    def fact(**kw):
        asked.update(kw)
        return lineages

    args = {"cert_name": "orderops", "names": NAMES, "webroot": "/opt/orderops/acme", "server": LETS_ENCRYPT, **kwargs}
    commands, noops = run_op(certbot.certificate, {CertbotCertificates: fact}, **args)
    assert (commands, noops) == (want_commands, want_noops)
    assert asked == {"config_dir": "/etc/letsencrypt", "renew_before_days": 30}
    expected = certbot.order_reason(lineages.get("orderops"), tuple(args["names"]), LETS_ENCRYPT)
    assert (expected is None) == (reason is None) and (reason is None or reason in expected)


def test_quoting_keeps_hostile_values_single_words():
    commands, _ = run_op(certbot.certificate, {CertbotCertificates: {}}, cert_name="orderops", names=("order.test",),
                         webroot="/srv/acme root", server=LETS_ENCRYPT, deploy_hook="/bin/hook; rm -rf /")
    assert "--webroot-path '/srv/acme root'" in commands[0] and "--deploy-hook '/bin/hook; rm -rf /'" in commands[0]


def test_empty_names_are_refused():
    with pytest.raises(ValueError, match="names"):
        run_op(certbot.certificate, {CertbotCertificates: {}}, cert_name="c", names=(), webroot="/w", server=LETS_ENCRYPT)


@pytest.mark.parametrize(("present", "n_commands"), [("present", 0), ("missing", 3)])
def test_placeholder_only_when_a_file_is_missing(present, n_commands):
    commands, noops = run_op(placeholder, {Command: lambda cmd: present}, cert="/t/fullchain.pem", key="/t/privkey.pem",
                             domain="order.test")
    assert len(commands) == n_commands and (noops == []) == bool(n_commands)
    if commands:
        assert commands[1] == "rm -f /t/fullchain.pem /t/privkey.pem" and "-days 90" in commands[2]
