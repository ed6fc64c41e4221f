"""Role ``docker``: Docker Engine and the Compose v2 plugin, with log rotation.

Where the packages come from is inventory data (``docker_source``, ``compose_source``):

========================  ===================================================================
``docker-apt``            Docker's apt repository: docker-ce, docker-ce-cli, containerd.io,
                          docker-compose-plugin (production on Ubuntu 22.04/24.04, Debian 12)
``distro`` (engine)       the distribution's docker.io (+ docker-cli on Debian >= 13, where
                          docker.io only recommends it)
``distro`` (compose)      the distribution's docker-compose package (Compose v2 from Debian 13)
``deb-file`` (compose)    a docker-compose .deb on the controller, uploaded and installed
                          (Debian 12 test hosts use trixie's 2.26.1 .deb)
========================  ===================================================================

Daemon settings (:func:`daemon_json`, CIS Docker Benchmark section 2):
``live-restore`` (containers keep running while dockerd restarts), ``icc: false`` (no traffic
between containers on the default bridge; the stack uses its own networks),
``no-new-privileges`` for every container, json-file logs with rotation.

Exception, ``userland-proxy`` (inventory ``docker_userland_proxy``, default on): Debian's
docker.io 20.10 without ``ip6tables`` publishes IPv6 only through docker-proxy, so turning it off
would take nginx off IPv6. The firewall does not need it off: DOCKER-USER filters the IPv4 DNAT
path and ufw's INPUT rules the proxy's IPv6 listeners (deploys/operations/ufw_docker.py). Turn it
off on engines that DNAT IPv6 (>= 27, or ``ip6tables`` on).

auditd rules for Docker's files and binaries (``templates/host/audit-docker.rules``) on real
hosts; skipped with the reason inside containers (deploys/operations/audit.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt

from deploys.facts.cache import cached_fact
from deploys.facts.sysctl import ProcSysMode
from deploys.operations import audit
from deploys.operations.prefetched import files, systemd
from inventories.schema import HostSettings
from templates import TEMPLATE_DIR

__all__ = ["docker", "DockerPlan", "docker_plan", "daemon_json", "DOCKER_APT_URL"]

#: Docker's apt repository, per distribution id: ``<url>/<id>`` (docs.docker.com/engine/install).
DOCKER_APT_URL = "https://download.docker.com/linux"
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
SUPPORTED = {"ubuntu": {"jammy", "noble"}, "debian": {"bookworm", "trixie"}}


class UnsupportedDistribution(ValueError):
    """The host runs a distribution/release orderops does not support."""


@dataclass(frozen=True)
class DockerPlan:
    """What the docker role installs on one host.

    + packages: apt packages to install
    + apt_repo: Docker's apt source line, or ``None`` when the distribution's archive is used
    + key_url: URL of Docker's signing key for ``apt_repo``
    + compose_deb: controller path of a Compose .deb to upload and install, or ``None``
    """

    packages: list[str]
    apt_repo: str | None = None
    key_url: str | None = None
    compose_deb: Path | None = None
    notes: list[str] = field(default_factory=list)


def docker_plan(distribution: dict, settings: HostSettings, arch: str = "amd64") -> DockerPlan:
    """Decide packages and sources from the ``LinuxDistribution`` fact and the settings.

    + distribution: pyinfra ``LinuxDistribution`` fact (``name``, ``major``, ``release_meta``)

    Raises :class:`UnsupportedDistribution` for anything but Ubuntu 22.04/24.04, Debian 12/13.
    """
    distro_id = (distribution.get("release_meta") or {}).get("ID", "").lower() or str(distribution.get("name", "")).lower()
    codename = (distribution.get("release_meta") or {}).get("VERSION_CODENAME", "")
    if distro_id not in SUPPORTED or codename not in SUPPORTED[distro_id]:
        raise UnsupportedDistribution(
            f"unsupported distribution {distro_id or '?'} {codename or '?'}; "
            "supported: Ubuntu 22.04 (jammy), 24.04 (noble), Debian 12 (bookworm), 13 (trixie)",
        )

    packages: list[str] = []
    repo = key = None
    if settings.docker_source == "docker-apt":
        packages += ["docker-ce", "docker-ce-cli", "containerd.io"]
        repo = f"deb [arch={arch} signed-by={DOCKER_KEYRING}] {DOCKER_APT_URL}/{distro_id} {codename} stable"
        key = f"{DOCKER_APT_URL}/{distro_id}/gpg"
    else:
        packages += ["docker.io", "iptables"]
        if distro_id == "debian" and codename != "bookworm":
            packages.append("docker-cli")

    compose_deb = None
    if settings.compose_source == "docker-apt":
        if repo is None:
            raise UnsupportedDistribution("compose_source 'docker-apt' needs docker_source 'docker-apt'")
        packages.append("docker-compose-plugin")
    elif settings.compose_source == "distro":
        if (distro_id, codename) in (("debian", "bookworm"), ("ubuntu", "jammy")):
            raise UnsupportedDistribution(
                f"{distro_id} {codename} has no Compose v2 package; use compose_source 'deb-file' or 'docker-apt'",
            )
        packages.append("docker-compose")
    else:
        compose_deb = settings.compose_deb
    return DockerPlan(packages=packages, apt_repo=repo, key_url=key, compose_deb=compose_deb)


def daemon_json(settings: HostSettings) -> str:
    """The ``/etc/docker/daemon.json`` text (``json.dumps``, 2-space indent); keys:
    docs.docker.com/reference/cli/dockerd, "daemon configuration file".

    json-file logs with rotation from the settings; CIS Docker Benchmark section 2:
    ``live-restore``, ``icc: false``, ``no-new-privileges``; ``userland-proxy`` from the inventory
    (``docker_userland_proxy``, the exception explained in the module docstring).
    """
    config = {
        "log-driver": "json-file",
        "log-opts": {"max-size": settings.docker_log_max_size, "max-file": str(settings.docker_log_max_file)},
        "live-restore": True,
        "icc": False,
        "no-new-privileges": True,
        "userland-proxy": settings.docker_userland_proxy,
    }
    return json.dumps(config, indent=2) + "\n"


@deploy("docker")
def docker(settings: HostSettings, upload_dir: str) -> None:
    """Install and configure Docker Engine + Compose v2 on one host."""
    plan = docker_plan(host.get_fact(LinuxDistribution), settings)

    if plan.apt_repo:
        files.directory(name="apt keyrings directory", path="/etc/apt/keyrings", mode="755")
        files.download(name="Docker's apt key", src=plan.key_url, dest=DOCKER_KEYRING, mode="644")
        apt.repo(name="Docker's apt repository", src=plan.apt_repo, filename="docker")

    apt.packages(
        name="Docker packages",
        packages=plan.packages,
        update=True,
        cache_time=24 * 3600,
        no_recommends=True,
    )

    if plan.compose_deb is not None:
        remote_deb = f"{upload_dir}/{Path(plan.compose_deb).name}"
        files.put(name="Compose plugin package", src=str(plan.compose_deb), dest=remote_deb, mode="644")
        apt.deb(name="Compose plugin installed", src=remote_deb)

    daemon = files.put(
        name="dockerd configuration (log rotation)",
        src=StringIO(daemon_json(settings)),
        dest="/etc/docker/daemon.json",
        mode="644",
        create_remote_dir=True,
    )
    systemd.service(name="Docker running and enabled", service="docker", running=True, enabled=True)
    # A changed daemon.json needs a restart; containers with a restart policy come back by themselves.
    systemd.service(name="Restart dockerd for new daemon.json", service="docker", restarted=True, _if=daemon.did_change)

    if cached_fact(host, ProcSysMode) != "ro":
        apt.packages(name="auditd", packages=["auditd"], no_recommends=True)
    audit.rules(
        name="auditd rules for Docker", filename="orderops-docker.rules",
        content=(TEMPLATE_DIR / "host" / "audit-docker.rules").read_text(),
    )

