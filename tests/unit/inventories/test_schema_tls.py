"""Inventory TLS fields: tls_mode acme needs its directory URL, names include the domain, the CA
bundle must be a readable PEM file, production needs a contact address."""

import pytest

from deploys.contract.tls import LETS_ENCRYPT_STAGING
from inventories.schema import InventoryError

ACME = {"tls_mode": "acme", "acme_directory_url": LETS_ENCRYPT_STAGING, "acme_email": "ops@example.com"}


def test_self_signed_is_the_default_and_names_default_to_domain(make_settings):
    s = make_settings()
    assert s.tls_mode == "self-signed" and s.acme_directory_url is None
    assert s.certificate_names == ("orders.example.com",)


def test_acme_settings(make_settings, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    s = make_settings(**ACME, acme_ca_bundle=str(bundle), acme_names=["orders.example.com", "www.orders.example.com"])
    assert s.certificate_names == ("orders.example.com", "www.orders.example.com")
    assert s.acme_ca_bundle == bundle


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"tls_mode": "letsencrypt"}, "tls_mode", "self-signed"),
        ({**ACME, "acme_directory_url": None}, "acme_directory_url", "required when tls_mode is 'acme'"),
        ({**ACME, "acme_directory_url": "http://acme.example.com/dir"}, "acme_directory_url", "https://"),
        ({**ACME, "acme_directory_url": "https://acme.example.com/dir;rm"}, "acme_directory_url", "https://"),
        ({**ACME, "acme_email": None}, "acme_email", "required in production"),
        ({**ACME, "acme_email": "ops at example"}, "acme_email", "not an e-mail address"),
        ({**ACME, "acme_names": ["www.orders.example.com"]}, "acme_names", "must include domain"),
        ({**ACME, "acme_names": ["orders.example.com", "Bad Name"]}, "acme_names", "DNS name"),
        ({**ACME, "acme_names": ["orders.example.com", "orders.example.com"]}, "acme_names", "unique"),
        ({**ACME, "acme_ca_bundle": "/nonexistent/ca.pem"}, "acme_ca_bundle", "cannot read"),
    ],
)
def test_bad_tls_field_is_named(make_settings, override, field, message):
    with pytest.raises(InventoryError) as e:
        make_settings(**override)
    assert e.value.field == field, str(e.value)
    assert message in e.value.message


def test_ca_bundle_without_certificate_is_refused(make_settings, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(InventoryError) as e:
        make_settings(**ACME, acme_ca_bundle=str(bundle))
    assert e.value.field == "acme_ca_bundle" and "no PEM certificate" in e.value.message


def test_local_hosts_may_register_without_email(make_settings):
    s = make_settings(**{**ACME, "acme_email": None}, environment="local")
    assert s.acme_email is None
