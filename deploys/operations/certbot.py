"""Operations on certbot: obtain the stack's certificate when (and only when) it needs an ACME order.

Facts: :class:`deploys.facts.certbot.CertbotCertificates`.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deploys.contract.tls import LETSENCRYPT_DIR
from deploys.facts.certbot import RENEW_BEFORE_DAYS, CertbotCertificates, Lineage

__all__ = ["certificate", "order_reason"]


def order_reason(lineage: Lineage | None, names: tuple[str, ...], server: str) -> str | None:
    """Why an ACME order is needed for ``names`` at ``server``, or ``None`` when ``lineage`` serves.

    A lineage serves while it holds exactly ``names`` (in any order), was issued by ``server``
    (its renewal configuration's ``server``) and is not ``due``.
    """
    if lineage is None:
        return "no certificate yet"
    if set(lineage.names) != set(names):
        return f"names changed: {', '.join(lineage.names) or '-'} -> {', '.join(names)}"
    if lineage.server != server:
        return f"ACME server changed: {lineage.server or '-'} -> {server}"
    if lineage.due:
        return f"expires soon ({lineage.not_after})"
    return None


@operation()
def certificate(
    cert_name: str,
    names: tuple[str, ...] | list[str],
    webroot: str,
    server: str,
    email: str | None = None,
    deploy_hook: str | None = None,
    ca_bundle: str | None = None,
    config_dir: str = LETSENCRYPT_DIR,
    renew_before_days: int = RENEW_BEFORE_DAYS,
):
    """
    Obtain the certificate ``cert_name`` for ``names`` with ``certbot certonly --webroot`` unless a
    valid one exists (see :func:`order_reason`): a re-run makes no ACME order, a change of names,
    of the ACME server or an expiry within ``renew_before_days`` makes exactly one.

    + cert_name: the lineage (``--cert-name``)
    + names: DNS names (``-d``), the first one is the certificate's subject
    + webroot: directory served at ``/.well-known/acme-challenge/`` on port 80 of every name (``-w``)
    + server: ACME directory URL (``--server``); stored in the renewal configuration
    + email: account contact; ``None`` registers without one
    + deploy_hook: command certbot runs after this and every later renewal (stored in the renewal configuration)
    + ca_bundle: PEM file certbot trusts for ``server`` (``REQUESTS_CA_BUNDLE``); ``None``: the system's CAs
    + config_dir: certbot's ``--config-dir``
    + renew_before_days: how close to expiry a certificate is ordered again
    """
    names = tuple(names)
    if not names:
        raise ValueError("certificate: names must not be empty")
    lineages = host.get_fact(CertbotCertificates, config_dir=config_dir, renew_before_days=renew_before_days)
    reason = order_reason(lineages.get(cert_name), names, server)
    if reason is None:
        host.noop(f"certificate {cert_name} for {', '.join(names)} is valid")
        return
    host.log(f"ACME order for {cert_name}: {reason}")
    parts: list = []
    if ca_bundle:
        parts += ["env", QuoteString(f"REQUESTS_CA_BUNDLE={ca_bundle}")]
    parts += [
        "certbot", "certonly", "--non-interactive", "--agree-tos", "--config-dir", QuoteString(config_dir),
        "--server", QuoteString(server), "--cert-name", QuoteString(cert_name),
        "--webroot", "--webroot-path", QuoteString(webroot),
    ]
    for name in names:
        parts += ["-d", QuoteString(name)]
    parts += ["--email", QuoteString(email)] if email else ["--register-unsafely-without-email"]
    if deploy_hook:
        parts += ["--deploy-hook", QuoteString(deploy_hook)]
    # the decision to order was made above (names, server, expiry): certbot must not second-guess it
    parts += ["--force-renewal", "--renew-with-new-domains"]
    yield StringCommand(*parts)
