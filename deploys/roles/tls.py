"""Role ``tls``: the certificate nginx serves, ``<stack_dir>/tls/{fullchain,privkey}.pem``.

``tls_mode: self-signed`` makes a self-signed certificate for the domain on the host once and
keeps it across runs (it is regenerated only when missing, or when it expires within 30 days).

``tls_mode: acme`` (paths: :mod:`deploys.contract.tls`) runs in two parts around the stack:

1. :func:`tls` (before the stack): Debian's/Ubuntu's ``certbot`` package, the ACME CA bundle,
   a ``certbot.service`` drop-in for the packaged renewal timer (``--no-random-sleep-on-renew``,
   ``REQUESTS_CA_BUNDLE``), the deploy hook, and a self-signed *placeholder* so nginx can start
   before any certificate exists.
2. :func:`acme_certificate` (after the stack is up): ``certbot certonly --webroot`` against the
   webroot nginx serves on port 80 at ``/.well-known/acme-challenge/``, only when the lineage is
   missing, holds other names, comes from another ACME server or expires soon; then the tls/
   files become symlinks to the lineage's ``live/`` files and nginx reloads. Renewals
   (``certbot.timer``) reload nginx through the deploy hook; the symlinks stay.

bookworm's certbot 2.1 has no ``--run-deploy-hooks``: nothing here relies on it.
"""

from __future__ import annotations

import posixpath
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.facts.server import Command
from pyinfra.operations import apt, server

from deploys.contract.compose import compose_command
from deploys.contract.paths import StackLayout
from deploys.contract.tls import (
    ACME_CA_BUNDLE_PATH, CERT_NAME, CERTBOT_DROP_IN, CERTBOT_PACKAGE, CERTBOT_TIMER, LETSENCRYPT_DIR, live_file,
)
from deploys.operations import certbot
from deploys.operations.prefetched import files, systemd
from inventories.schema import HostSettings
from templates import render

__all__ = [
    "tls", "acme_certificate", "self_signed", "placeholder", "certificate_check", "RENEW_BEFORE_DAYS",
    "deploy_hook_text", "drop_in_text",
]

#: A certificate expiring within this many days is replaced.
RENEW_BEFORE_DAYS = 30


def certificate_check(cert: str, key: str, domain: str) -> str:
    """Shell command printing ``valid`` when ``key`` exists, ``cert`` is a file of its own (not a
    symlink into certbot's ``live/``) and names ``domain`` (DNS SAN) and is valid for
    :data:`RENEW_BEFORE_DAYS` more days, else ``missing``."""
    c, k = shlex.quote(cert), shlex.quote(key)
    return (
        f"if [ -s {k} ] && [ ! -L {c} ] && openssl x509 -in {c} -noout -checkend {RENEW_BEFORE_DAYS * 86400} >/dev/null 2>&1 "
        f"&& openssl x509 -in {c} -noout -ext subjectAltName 2>/dev/null | grep -qF {shlex.quote(f'DNS:{domain}')}; "
        "then echo valid; else echo missing; fi"
    )


def _make_self_signed(cert: str, key: str, domain: str, days: int):
    """Commands writing a fresh self-signed pair; existing files or symlinks are removed first,
    so openssl never writes through a symlink into certbot's archive."""
    yield StringCommand("install", "-d", "-m", "0755", QuoteString(posixpath.dirname(cert)))
    yield StringCommand("rm", "-f", QuoteString(cert), QuoteString(key))
    yield StringCommand(
        "umask 077 &&", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-days", str(days), "-subj", QuoteString(f"/CN={domain}"),
        "-addext", QuoteString(f"subjectAltName=DNS:{domain}"),
        "-keyout", QuoteString(key), "-out", QuoteString(cert), "2>/dev/null", "&&",
        "chmod", "0644", QuoteString(cert),
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
    yield from _make_self_signed(cert, key, domain, days)


@operation()
def placeholder(cert: str, key: str, domain: str, days: int = 90):
    """
    Make a self-signed placeholder pair unless both paths exist (files, or symlinks that resolve):
    nginx needs a certificate to start before certbot has obtained one.

    + cert: path of the PEM certificate (0644)
    + key: path of the PEM private key (0600)
    + domain: subject CN and DNS SAN
    + days: validity in days (long enough for the daily check while an ACME order is failing)
    """
    c, k = shlex.quote(cert), shlex.quote(key)
    if host.get_fact(Command, f"if [ -e {c} ] && [ -e {k} ]; then echo present; else echo missing; fi").strip() == "present":
        host.noop(f"certificate files for {domain} exist")
        return
    yield from _make_self_signed(cert, key, domain, days)


def drop_in_text(settings: HostSettings) -> str:
    """The ``certbot.service`` drop-in (:data:`deploys.contract.tls.CERTBOT_DROP_IN`)."""
    return render("certbot/certbot.service.conf.j2", ca_bundle=ACME_CA_BUNDLE_PATH if settings.acme_ca_bundle else None)


def deploy_hook_text(settings: HostSettings) -> str:
    """The deploy hook script: reloads nginx in the stack's compose project."""
    return render("certbot/deploy-hook.sh.j2", compose=compose_command(settings.compose_project, settings.stack_dir))


@deploy("tls")
def tls(settings: HostSettings):
    """Ensure nginx's certificate and key exist in the stack's ``tls/`` directory on the host
    (self-signed, or the ACME placeholder plus certbot's installation and renewal setup).

    Returns the certificate operation's meta, so the stack role can reload nginx when it changed.
    """
    layout = StackLayout(settings.stack_dir)
    if settings.tls_mode == "self-signed":
        return self_signed(
            name=f"Self-signed certificate for {settings.domain}", cert=layout.certificate, key=layout.private_key,
            domain=settings.domain,
        )

    apt.packages(name="certbot", packages=[CERTBOT_PACKAGE], no_recommends=True)
    files.directory(name="certbot configuration directory", path=LETSENCRYPT_DIR, mode="755")
    files.directory(name="orderops configuration directory", path=posixpath.dirname(ACME_CA_BUNDLE_PATH), mode="755")
    if settings.acme_ca_bundle is not None:
        files.put(name="ACME server CA bundle", src=str(settings.acme_ca_bundle), dest=ACME_CA_BUNDLE_PATH, mode="644")
    else:
        files.file(name="No ACME server CA bundle", path=ACME_CA_BUNDLE_PATH, present=False)
    files.directory(name="certbot.service drop-in directory", path=posixpath.dirname(CERTBOT_DROP_IN), mode="755")
    drop_in = files.put(
        name="certbot renewal settings (certbot.service drop-in)", src=StringIO(drop_in_text(settings)),
        dest=CERTBOT_DROP_IN, mode="644",
    )
    systemd.daemon_reload(name="systemd reads the certbot drop-in", _if=drop_in.did_change)
    systemd.service(name="certbot renewal timer", service=CERTBOT_TIMER, enabled=True, running=True)
    files.directory(name="Stack scripts directory", path=layout.bin_dir, mode="755")
    files.put(name="certbot deploy hook (reload nginx)", src=StringIO(deploy_hook_text(settings)), dest=layout.deploy_hook, mode="755")
    return placeholder(
        name=f"Placeholder certificate for {settings.domain}", cert=layout.certificate, key=layout.private_key,
        domain=settings.domain,
    )


@deploy("acme certificate")
def acme_certificate(settings: HostSettings) -> None:
    """With ``tls_mode: acme``, after the stack is up: order the certificate when needed, point
    nginx's tls/ files at the lineage and reload nginx when they changed. Nothing otherwise."""
    if settings.tls_mode != "acme":
        return
    layout = StackLayout(settings.stack_dir)
    certbot.certificate(
        name=f"ACME certificate for {', '.join(settings.certificate_names)}",
        cert_name=CERT_NAME, names=settings.certificate_names, webroot=layout.acme_dir,
        server=settings.acme_directory_url, email=settings.acme_email, deploy_hook=layout.deploy_hook,
        ca_bundle=ACME_CA_BUNDLE_PATH if settings.acme_ca_bundle else None,
    )
    links = [
        files.link(name=f"nginx {posixpath.basename(path)} -> certbot live/", path=path, target=live_file(src),
                   force=True, force_backup=False)
        for path, src in ((layout.certificate, "fullchain.pem"), (layout.private_key, "privkey.pem"))
    ]
    server.shell(
        name="Reload nginx for the ACME certificate",
        commands=[compose_command(settings.compose_project, settings.stack_dir, "exec", "-T", "nginx", "nginx", "-s", "reload")],
        _if=lambda: any(op.did_change() for op in links),
    )
