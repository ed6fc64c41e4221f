"""Role ``tls``: the certificate nginx serves.

``tls_mode: self-signed`` makes a self-signed certificate for the domain on the host once and
keeps it across runs (it is regenerated only when missing, or when it expires within 30 days).
certbot-issued certificates come in a later role.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.facts.server import Command

from inventories.schema import HostSettings

__all__ = ["tls", "self_signed", "RENEW_BEFORE_DAYS"]

RENEW_BEFORE_DAYS = 30


@operation()
def self_signed(directory: str, domain: str, days: int = 825):
    """
    Make a self-signed certificate unless a valid one for ``domain`` exists.

    + directory: holds ``fullchain.pem`` (0644) and ``privkey.pem`` (0600)
    + domain: subject CN and DNS SAN
    + days: validity in days (825: the longest validity clients accept for TLS server certs)
    """
    cert, key = f"{directory}/fullchain.pem", f"{directory}/privkey.pem"
    check = host.get_fact(
        Command,
        f"if [ -s {key} ] && openssl x509 -in {cert} -noout -checkend {RENEW_BEFORE_DAYS * 86400} >/dev/null 2>&1 "
        f"&& openssl x509 -in {cert} -noout -ext subjectAltName 2>/dev/null | grep -qF 'DNS:{domain}'; "
        "then echo valid; else echo missing; fi",
    )
    if check.strip() == "valid":
        host.noop(f"certificate for {domain} is valid")
        return
    yield StringCommand("install", "-d", "-m", "0755", QuoteString(directory))
    yield StringCommand(
        "umask 077 &&", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-days", str(days), "-subj", QuoteString(f"/CN={domain}"),
        "-addext", QuoteString(f"subjectAltName=DNS:{domain}"),
        "-keyout", QuoteString(key), "-out", QuoteString(cert), "2>/dev/null", "&&",
        "chmod", "0644", QuoteString(cert),
    )


@deploy("tls")
def tls(settings: HostSettings, directory: str):
    """Ensure nginx's certificate and key exist in ``directory`` on the host.

    Returns the certificate operation's meta, so the stack role can reload nginx when it changed.
    """
    return self_signed(name=f"Self-signed certificate for {settings.domain}", directory=directory, domain=settings.domain)
