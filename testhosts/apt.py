"""Debian archive access: which mirror to use, and trixie's docker-compose .deb.

The mirror is never hard-coded: it is read from this machine's own apt sources
(``/etc/apt/sources.list.d/*.sources`` in deb822 format, ``*.list`` and ``/etc/apt/sources.list``
in one-line format). ``ORDEROPS_DEBIAN_MIRROR`` overrides the archive URL and
``ORDEROPS_DEBIAN_SECURITY_MIRROR`` the security archive URL (default: ``<mirror>-security``, the
layout of Debian's own mirrors).

The compose .deb is fetched with separate apt lists and cache under the harness cache, so the
host's apt state (lists, cache, dpkg status) is never touched.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEBIAN_CODENAMES = {
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
}
_POCKET = re.compile(r"^(?P<base>[a-z]+)(?P<pocket>-(updates|backports|proposed-updates|security))?$")
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class MirrorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Mirrors:
    archive: str
    security: str


@dataclass(frozen=True)
class SourceEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_deb822(text: str) -> list[SourceEntry]:
    """Parse deb822 ``.sources`` text (only ``Types: deb`` stanzas that are enabled)."""
    entries: list[SourceEntry] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and last:
                fields[last] += " " + line.strip()
                continue
            if ":" in line:
                key, _, value = line.partition(":")
                last = key.strip().lower()
                fields[last] = value.strip()
        if not fields:
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append(SourceEntry(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                                       tuple(fields.get("components", "").split())))
    return entries


def parse_one_line(text: str) -> list[SourceEntry]:
    """Parse one-line-style ``sources.list`` text (``deb [opts] uri suite comp...``)."""
    entries: list[SourceEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line[4:])
        parts = line.split()
        if len(parts) >= 2:
            entries.append(SourceEntry(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:])))
    return entries


def read_host_sources(etc_apt: Path = Path("/etc/apt")) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    main_list = etc_apt / "sources.list"
    if main_list.is_file():
        entries += parse_one_line(main_list.read_text(errors="replace"))
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            if f.suffix == ".sources":
                entries += parse_deb822(f.read_text(errors="replace"))
            elif f.suffix == ".list":
                entries += parse_one_line(f.read_text(errors="replace"))
    return entries


def pick_mirrors(entries: list[SourceEntry]) -> tuple[str | None, str | None]:
    """First Debian archive URI (a plain codename suite) and first security URI (``*-security``)."""
    archive = security = None
    for e in entries:
        for suite in e.suites:
            m = _POCKET.match(suite)
            if not m or m.group("base") not in DEBIAN_CODENAMES:
                continue
            if m.group("pocket") == "-security":
                security = security or e.uri
            else:
                archive = archive or e.uri
    return archive, security


def debian_mirrors(environ: dict[str, str] | None = None, etc_apt: Path = Path("/etc/apt")) -> Mirrors:
    env = os.environ if environ is None else environ
    archive = (env.get("ORDEROPS_DEBIAN_MIRROR") or "").rstrip("/") or None
    security = (env.get("ORDEROPS_DEBIAN_SECURITY_MIRROR") or "").rstrip("/") or None
    if archive is None:
        host_archive, host_security = pick_mirrors(read_host_sources(etc_apt))
        archive = host_archive
        security = security or host_security
    if archive is None:
        raise MirrorError(
            f"no Debian archive found in {etc_apt}/sources.list(.d); set ORDEROPS_DEBIAN_MIRROR "
            "to the Debian archive URL (e.g. the one your machine's apt uses)"
        )
    return Mirrors(archive=archive, security=security or f"{archive}-security")


# --------------------------------------------------------------------------- compose .deb

def apt_isolated_options(apt_dir: Path) -> list[str]:
    """apt-get options that use only ``apt_dir`` for sources, lists and cache (never the host's)."""
    return [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'trixie.sources'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "Dir::State::status=/dev/null",
    ]


def trixie_sources(mirror: str, keyring: str = DEFAULT_KEYRING) -> str:
    return (f"Types: deb\nURIs: {mirror}\nSuites: trixie\nComponents: main\n"
            f"Signed-By: {keyring}\n")


def find_compose_deb(debs_dir: Path) -> Path | None:
    debs = sorted(debs_dir.glob("docker-compose_2.*_*.deb"))
    return debs[-1].resolve() if debs else None


def download_compose_deb(apt_dir: Path, debs_dir: Path, mirror: str, log=None) -> Path:
    """Download trixie's ``docker-compose`` (Compose v2 CLI plugin) .deb; skip if already cached."""
    existing = find_compose_deb(debs_dir)
    if existing:
        return existing
    for sub in ("lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    debs_dir.mkdir(parents=True, exist_ok=True)
    (apt_dir / "trixie.sources").write_text(trixie_sources(mirror))
    opts = apt_isolated_options(apt_dir)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    for cmd, cwd in ((["apt-get", *opts, "-q", "update"], None),
                     (["apt-get", *opts, "-q", "download", "docker-compose"], debs_dir)):
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if log:
            log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:1] + cmd[-2:])} failed (rc {proc.returncode}):\n"
                               f"{proc.stderr.strip()[-2000:]}")
    deb = find_compose_deb(debs_dir)
    if deb is None:
        raise RuntimeError(f"apt-get download docker-compose left no docker-compose_2.*.deb in {debs_dir}")
    return deb
