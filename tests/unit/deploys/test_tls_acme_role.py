"""The ACME side of the TLS role: what it writes (renewal drop-in, deploy hook) and the nginx mount."""

from __future__ import annotations

from deploys.contract.tls import ACME_CA_BUNDLE_PATH, LETS_ENCRYPT_STAGING, LETSENCRYPT_DIR
from deploys.roles.order_stack import compose_project
from deploys.roles.tls import deploy_hook_text, drop_in_text

ACME = {"tls_mode": "acme", "acme_directory_url": LETS_ENCRYPT_STAGING, "acme_email": "ops@example.com"}


def _service_lines(text: str) -> list[str]:
    return [l for l in text.splitlines() if l and not l.startswith("#")]


def test_drop_in_replaces_execstart_without_random_sleep_and_trusts_the_bundle(make_settings, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    lines = _service_lines(drop_in_text(make_settings(**ACME, acme_ca_bundle=str(bundle))))
    assert lines == [
        "[Service]", "ExecStart=", "ExecStart=/usr/bin/certbot -q renew --no-random-sleep-on-renew",
        f"Environment=REQUESTS_CA_BUNDLE={ACME_CA_BUNDLE_PATH}",
    ]


def test_drop_in_without_bundle_keeps_the_system_cas(make_settings):
    assert not any("REQUESTS_CA_BUNDLE" in l for l in _service_lines(drop_in_text(make_settings(**ACME))))


def test_deploy_hook_reloads_nginx_in_the_project(make_settings):
    text = deploy_hook_text(make_settings(**ACME))
    assert text.startswith("#!/bin/sh\n")
    last = text.strip().splitlines()[-1]
    assert last.startswith("exec docker compose") and "-p orderops" in last and last.endswith("exec -T nginx nginx -s reload")


def test_nginx_sees_all_of_letsencrypt_only_in_acme_mode(make_settings):
    acme = compose_project(make_settings(**ACME))["services"]["nginx"]["volumes"]
    self_signed = compose_project(make_settings())["services"]["nginx"]["volumes"]
    assert f"{LETSENCRYPT_DIR}:{LETSENCRYPT_DIR}:ro" in acme
    assert not any(LETSENCRYPT_DIR in v for v in self_signed)
