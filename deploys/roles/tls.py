"""Role ``tls``: the certificate nginx serves.

``tls_mode: self-signed`` makes a self-signed certificate for the domain on the host once and
keeps it across runs (it is regenerated only when missing, or when it expires within 30 days).
certbot-issued certificates come in a later role.
"""

from __future__ import annotations

import posixpath
import shlex

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.facts.server import Command

from deploys.contract.paths import StackLayout
from inventories.schema import HostSettings

__all__ = ["tls", "self_signed", "certificate_check", "RENEW_BEFORE_DAYS"]

#: A certificate expiring within this many days is replaced.
RENEW_BEFORE_DAYS = 30


def certificate_check(cert: str, key: str, domain: str) -> str:
    """Shell command printing ``valid`` when ``key`` exists and ``cert`` names ``domain`` (DNS SAN) and
    is valid for :data:`RENEW_BEFORE_DAYS` more days, else ``missing``."""
    c, k = shlex.quote(cert), shlex.quote(key)
    return (
        f"if [ -s {k} ] && openssl x509 -in {c} -noout -checkend {RENEW_BEFORE_DAYS * 86400} >/dev/null 2>&1 "
        f"&& openssl x509 -in {c} -noout -ext subjectAltName 2>/dev/null | grep -qF {shlex.quote(f'DNS:{domain}')}; "
        "then echo valid; else echo missing; fi"
    )


@operation()
def self_signed(cert: str, key: str, domain: str, days: int = 825):
    """
    Make a self-signed certificate unless a valid one for ``domain`` exists.

    + cert: path of the PEM certificate (0644); its directory is created (0755)
    + key: path of the PEM private key (0600, written under umask 077)
    + domain: subject CN and DNS SAN
    + days: validity in days (825: the longest validity clients accept for TLS server certs)
    """
    if host.get_fact(Command, certificate_check(cert, key, domain)).strip() == "valid":
        host.noop(f"certificate for {domain} is valid")
        return
    yield StringCommand("install", "-d", "-m", "0755", QuoteString(posixpath.dirname(cert)))
    yield StringCommand(
        "umask 077 &&", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-days", str(days), "-subj", QuoteString(f"/CN={domain}"),
        "-addext", QuoteString(f"subjectAltName=DNS:{domain}"),
        "-keyout", QuoteString(key), "-out", QuoteString(cert), "2>/dev/null", "&&",
        "chmod", "0644", QuoteString(cert),
    )


@deploy("tls")
def tls(settings: HostSettings):
    """Ensure nginx's certificate and key exist in the stack's ``tls/`` directory on the host.

    Returns the certificate operation's meta, so the stack role can reload nginx when it changed.
    """
    layout = StackLayout(settings.stack_dir)
    return self_signed(
        name=f"Self-signed certificate for {settings.domain}", cert=layout.certificate, key=layout.private_key,
        domain=settings.domain,
    )
