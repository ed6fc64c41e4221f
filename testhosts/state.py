"""Local harness state: where it lives and the JSON files the harness writes.

Everything the harness keeps is under one state directory, ``.orderops/`` at the repository root
(git-ignored), or ``$ORDEROPS_STATE_DIR``::

    .orderops/
      keys/id_ed25519[.pub]     SSH key authorised for user ``deploy`` on the test hosts (0600)
      secrets/local.json        generated secrets for the local inventory (dir 0700, file 0600)
      hosts.json                HostsState: the running test hosts (written by ``up``, removed by ``down``)
      images.json               ImagesState: role -> immutable image ref (written by ``images``)
      ssh_config                convenience ssh_config for the running hosts (``ssh -F``)
      known_hosts               the running hosts' SSH host keys, read through Docker at ``up``
      cgroup-fingerprint.json   the host's cgroup setup as first seen by the harness
      cache/                    rootfs, compose .deb, wheelhouse, staged build contexts, build logs
                                ($ORDEROPS_CACHE_DIR overrides, e.g. to share it between state dirs)

The JSON schemas are the pydantic models below; ``inventories/local.py`` reads ``hosts.json`` through
:func:`load_hosts` (or the same model), so a change here is a change of that contract.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deploys.contract.images import check_immutable
from deploys.contract.paths import REPO_ROOT, local_cache_dir, local_state_dir
SUITE = "bookworm"
SSH_USER = "deploy"
GROUPS = ("app", "controller")

Group = Literal["app", "controller", "monitoring"]


class StateError(RuntimeError):
    """A state file is missing or invalid; the message says what to run."""


@dataclass(frozen=True)
class StatePaths:
    """All paths of one state directory (absolute)."""

    root: Path
    cache: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StatePaths:
        env = os.environ if environ is None else environ
        return cls(root=local_state_dir(env), cache=local_cache_dir(env))

    # keys and secrets
    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def ssh_key(self) -> Path:
        return self.keys_dir / "id_ed25519"

    @property
    def ssh_pub(self) -> Path:
        return self.keys_dir / "id_ed25519.pub"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def secrets_file(self) -> Path:
        return self.secrets_dir / "local.json"

    # state files
    @property
    def hosts_json(self) -> Path:
        return self.root / "hosts.json"

    @property
    def images_json(self) -> Path:
        return self.root / "images.json"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        """The test hosts' SSH host keys (``[127.0.0.1]:<port> <type> <key>``), read through Docker."""
        return self.root / "known_hosts"

    @property
    def fingerprint_json(self) -> Path:
        return self.root / "cgroup-fingerprint.json"

    # cache
    def rootfs_dir(self, suite: str = SUITE) -> Path:
        return self.cache / f"rootfs-{suite}"

    @property
    def debs_dir(self) -> Path:
        return self.cache / "debs"

    @property
    def apt_trixie_dir(self) -> Path:
        return self.cache / "apt-trixie"

    @property
    def wheelhouse_root(self) -> Path:
        return self.cache / "wheelhouse"

    @property
    def contexts_dir(self) -> Path:
        return self.cache / "contexts"

    @property
    def logs_dir(self) -> Path:
        return self.cache / "logs"

    @property
    def label(self) -> str:
        """Value of the ``orderops.testhost`` label on containers and volumes of this state dir."""
        return str(self.root)


# --------------------------------------------------------------------------- models


class HostEntry(BaseModel):
    """One test host: a container reachable on loopback ports."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="inventory host name, also the container's hostname")
    container: str = Field(description="docker container name")
    ip: str = Field(description="container IPv4 address on the test network (the outside probe scans it)")
    ip6: str = Field("", description="container IPv6 address on the test network ('' when it has none)")
    ssh_port: int = Field(ge=1, le=65535, description="127.0.0.1 port published to the host's 22")
    http_port: int = Field(ge=1, le=65535, description="127.0.0.1 port published to the host's 80")
    https_port: int = Field(ge=1, le=65535, description="127.0.0.1 port published to the host's 443")
    groups: list[Group] = Field(min_length=1, description="inventory groups: app and/or controller, or monitoring (layout monitoring)")

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate groups: {v}")
        return v


class HostsState(BaseModel):
    """``hosts.json``: the running local test hosts."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    suite: str = SUITE
    ssh_user: str = SSH_USER
    ssh_key: str = Field(description="absolute path of the private key authorised for ssh_user")
    compose_deb: str = Field(description="absolute path of trixie's docker-compose .deb (the deploy uploads it)")
    hosts: list[HostEntry]

    @model_validator(mode="after")
    def _consistent(self) -> HostsState:
        for attr in ("name", "container", "ssh_port", "http_port", "https_port"):
            values = [getattr(h, attr) for h in self.hosts]
            if len(set(values)) != len(values):
                raise ValueError(f"duplicate host {attr} in {values}")
        ports = [p for h in self.hosts for p in (h.ssh_port, h.http_port, h.https_port)]
        if len(set(ports)) != len(ports):
            raise ValueError(f"a port is used twice: {ports}")
        if not Path(self.ssh_key).is_absolute() or not Path(self.compose_deb).is_absolute():
            raise ValueError("ssh_key and compose_deb must be absolute paths")
        return self

    def group(self, name: str) -> list[HostEntry]:
        return [h for h in self.hosts if name in h.groups]


class ImagesState(BaseModel):
    """``images.json``: role -> immutable image ref (tag derived from a content hash)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    postgres: str
    redis: str
    nginx: str
    python: str
    order_service: str | None = Field(
        default=None, description="None only when order_service/Dockerfile does not exist yet"
    )
    monitoring: dict[str, str] = Field(
        default_factory=dict, description="monitoring role (prometheus, grafana, ...) -> ref (testhosts.images.MONITORING_IMAGES)"
    )
    alert_sink: str | None = Field(
        default=None, description="test-only image: the live monitoring test's webhook + SMTP receivers (images/alert-sink)"
    )
    pebble: str | None = Field(default=None, description="test ACME server (images/pebble), for the certbot tests")

    @field_validator("target", "postgres", "redis", "nginx", "python", "order_service", "alert_sink", "pebble")
    @classmethod
    def _check_ref(cls, v: str | None) -> str | None:
        return None if v is None else check_immutable(v)

    @field_validator("monitoring")
    @classmethod
    def _check_refs(cls, v: dict[str, str]) -> dict[str, str]:
        return {role: check_immutable(ref) for role, ref in v.items()}


# --------------------------------------------------------------------------- file helpers


def write_json_atomic(path: Path, data: object, mode: int = 0o644) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_hosts(paths: StatePaths, state: HostsState) -> Path:
    write_json_atomic(paths.hosts_json, state.model_dump(mode="json"))
    return paths.hosts_json


def load_hosts(paths: StatePaths | None = None) -> HostsState:
    paths = paths or StatePaths.from_env()
    if not paths.hosts_json.exists():
        raise StateError(f"{paths.hosts_json} does not exist: start hosts with `make hosts-up` "
                         "(python -m testhosts up -n 1)")
    try:
        return HostsState.model_validate_json(paths.hosts_json.read_text())
    except ValueError as exc:
        raise StateError(f"{paths.hosts_json} is invalid: {exc}") from exc


def save_images(paths: StatePaths, state: ImagesState) -> Path:
    write_json_atomic(paths.images_json, state.model_dump(mode="json"))
    return paths.images_json


def load_images(paths: StatePaths | None = None) -> ImagesState:
    paths = paths or StatePaths.from_env()
    if not paths.images_json.exists():
        raise StateError(f"{paths.images_json} does not exist: build images with `make images`")
    try:
        return ImagesState.model_validate_json(paths.images_json.read_text())
    except ValueError as exc:
        raise StateError(f"{paths.images_json} is invalid: {exc}") from exc


def ensure_ssh_key(paths: StatePaths) -> Path:
    """Generate the harness key pair once (ed25519, no passphrase, 0600). Returns the private key."""
    paths.keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.keys_dir, 0o700)
    if not paths.ssh_key.exists() or not paths.ssh_pub.exists():
        paths.ssh_key.unlink(missing_ok=True)
        paths.ssh_pub.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "orderops-testhosts",
             "-f", str(paths.ssh_key)],
            check=True,
        )
    os.chmod(paths.ssh_key, 0o600)
    return paths.ssh_key
