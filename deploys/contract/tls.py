"""TLS on an app host: where certbot keeps its state, the lineage orderops orders, the ACME servers.

Shared by the deploy (role ``tls``) and the runbooks (the daily certificate step)::

    /etc/letsencrypt/                       LETSENCRYPT_DIR: certbot's config dir, mounted whole into nginx
      live/orderops/{fullchain,privkey,cert}.pem   CERT_NAME's lineage (symlinks into ../../archive/)
      renewal/orderops.conf                 its renewal configuration (server, webroot, deploy hook)
    /etc/orderops/acme-ca.pem               ACME_CA_BUNDLE_PATH: extra CAs certbot trusts (inventory acme_ca_bundle)
    /etc/systemd/system/certbot.service.d/orderops.conf   CERTBOT_DROP_IN: unattended renewal settings

nginx always reads ``<stack_dir>/tls/{fullchain,privkey}.pem`` (:class:`deploys.contract.paths.StackLayout`):
with ``tls_mode: self-signed`` they are files; with ``acme`` first a placeholder, then symlinks to
the lineage's ``live/`` files, which resolve inside the nginx container because ``/etc/letsencrypt``
is mounted there at the same path.
"""

from __future__ import annotations

import shlex

__all__ = [
    "LETSENCRYPT_DIR", "CERT_NAME", "live_file", "renewal_conf", "ACME_CA_BUNDLE_PATH", "CERTBOT_DROP_IN",
    "CERTBOT_PACKAGE", "CERTBOT_TIMER", "LETS_ENCRYPT", "LETS_ENCRYPT_STAGING", "served_certificate_command",
]

#: certbot's configuration directory (Debian and Ubuntu packages' default ``--config-dir``).
LETSENCRYPT_DIR = "/etc/letsencrypt"
#: The certbot lineage (``--cert-name``) of the stack's certificate.
CERT_NAME = "orderops"
#: Extra CA certificates (PEM) certbot trusts for the ACME server, via ``REQUESTS_CA_BUNDLE``.
ACME_CA_BUNDLE_PATH = "/etc/orderops/acme-ca.pem"
#: Drop-in of the packaged ``certbot.service`` (run by ``certbot.timer``).
CERTBOT_DROP_IN = "/etc/systemd/system/certbot.service.d/orderops.conf"
#: The Debian/Ubuntu package, and the renewal timer it ships (twice a day, randomised by systemd).
CERTBOT_PACKAGE = "certbot"
CERTBOT_TIMER = "certbot.timer"

#: ACME directory URLs of Let's Encrypt (https://letsencrypt.org/docs/environments/).
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def live_file(name: str, cert_name: str = CERT_NAME) -> str:
    """``/etc/letsencrypt/live/<cert_name>/<name>`` (``cert.pem``, ``chain.pem``, ``fullchain.pem``, ``privkey.pem``)."""
    return f"{LETSENCRYPT_DIR}/live/{cert_name}/{name}"


def renewal_conf(cert_name: str = CERT_NAME) -> str:
    """The lineage's renewal configuration file."""
    return f"{LETSENCRYPT_DIR}/renewal/{cert_name}.conf"


def served_certificate_command(domain: str, port: int = 443, address: str = "127.0.0.1",
                               options: tuple[str, ...] = ("-serial", "-enddate")) -> str:
    """Shell command printing the certificate nginx serves for ``domain`` (SNI) on ``address:port``
    through ``openssl x509 -noout <options>``: by default ``serial=<HEX>`` and ``notAfter=<openssl
    date>`` lines (the daily runbook); the monthly one asks for ``-subject -enddate -ext subjectAltName``."""
    return (
        f"openssl s_client -connect {shlex.quote(f'{address}:{port}')} -servername {shlex.quote(domain)} </dev/null 2>/dev/null"
        f" | openssl x509 -noout {shlex.join(options)}"
    )
