"""Facts about certbot's certificates on a host.

certbot has no machine-readable listing (``certbot certificates`` prints prose), so the fact reads
each lineage's ``live/<name>/cert.pem`` with openssl and the ``server`` line of its
``renewal/<name>.conf``: what certbot itself consults to decide whether a lineage needs renewing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

from deploys.contract.tls import LETSENCRYPT_DIR

__all__ = ["Lineage", "CertbotCertificates", "parse_certificates", "RENEW_BEFORE_DAYS"]

#: A certificate expiring within this many days counts as due (certbot's own default ``renew_before_expiry``).
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True)
class Lineage:
    """One certbot lineage as found on the host.

    + name: the lineage (``--cert-name``), the directory below ``live/``
    + names: the certificate's DNS subjectAltNames, in certificate order
    + serial: the serial number, upper-case hex as openssl prints it
    + not_after: ``notAfter`` as openssl prints it (``Dec  3 12:00:00 2031 GMT``)
    + due: expires within the fact's ``renew_before_days`` (or is unreadable)
    + server: ACME directory URL of its renewal configuration, ``None`` if it has none
    """

    name: str
    names: tuple[str, ...]
    serial: str
    not_after: str
    due: bool
    server: str | None


def parse_certificates(lines: list[str]) -> dict[str, Lineage]:
    """Parse :class:`CertbotCertificates` output (``lineage=``, ``serial=``, ``notAfter=``, the
    ``X509v3 Subject Alternative Name:`` block of ``openssl x509 -ext``, ``due=`` and ``server=``
    lines, one group per lineage) to ``{lineage name: Lineage}``."""
    found: dict[str, Lineage] = {}
    current: dict | None = None

    def close() -> None:
        if current is not None:
            found[current["name"]] = Lineage(
                name=current["name"], names=tuple(current["names"]), serial=current.get("serial", ""),
                not_after=current.get("not_after", ""), due=current.get("due", True), server=current.get("server"),
            )

    for raw in lines:
        line = raw.strip()
        if line.startswith("lineage="):
            close()
            current = {"name": line.split("=", 1)[1], "names": []}
        elif current is None:
            continue
        elif line.startswith("serial="):
            current["serial"] = line.split("=", 1)[1].upper()
        elif line.startswith("notAfter="):
            current["not_after"] = line.split("=", 1)[1]
        elif line.startswith("due="):
            current["due"] = line.split("=", 1)[1] != "no"
        elif line.startswith("server="):
            current["server"] = line.split("=", 1)[1].strip() or None
        elif "DNS:" in line:
            current["names"] += [part.strip()[4:] for part in line.split(",") if part.strip().startswith("DNS:")]
    close()
    return found


class CertbotCertificates(FactBase):
    """certbot's lineages below ``config_dir``: ``{name: Lineage}``, ``{}`` when there are none.

    + config_dir: certbot's ``--config-dir``
    + renew_before_days: a certificate expiring within this many days is ``due``
    """

    @staticmethod
    def default() -> dict[str, Lineage]:
        return {}

    def command(self, config_dir: str = LETSENCRYPT_DIR, renew_before_days: int = RENEW_BEFORE_DAYS) -> str:
        d = shlex.quote(config_dir)
        seconds = int(renew_before_days) * 86400
        return (
            f'for c in {d}/live/*/cert.pem; do [ -e "$c" ] || continue; n=${{c%/cert.pem}}; n=${{n##*/}}; '
            'echo "lineage=$n"; openssl x509 -in "$c" -noout -serial -enddate -ext subjectAltName 2>/dev/null; '
            f'if openssl x509 -in "$c" -noout -checkend {seconds} >/dev/null 2>&1; then echo due=no; else echo due=yes; fi; '
            f"sed -n 's/^server *= *//p' {d}/renewal/\"$n\".conf 2>/dev/null | sed 's/^/server=/'; "
            "done; true"
        )

    def process(self, output: list[str]) -> dict[str, Lineage]:
        return parse_certificates(output)
