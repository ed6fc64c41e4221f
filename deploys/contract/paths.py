"""orderops' paths on a host, and the controller machine's state directory rule.

On every host::

    /var/lib/orderops/          STATE_DIR (0755, root)
      upload/                   UPLOAD_DIR: 0700, owned by the SSH user (secret files, image archives)
      host.lock                 LOCK_FILE (deploys.contract.lock)
      .host.lock.guard          LOCK_GUARD: flock(1) guard of the lock file
      release.json              RELEASE_FILE (deploys.contract.release)

On an app host, the stack directory (inventory ``stack_dir``, default :data:`STACK_DIR`) is laid
out as :class:`StackLayout`; on the controller host the runbook directory (``runbook_dir``,
default :data:`RUNBOOK_DIR`) as :class:`RunbookLayout`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "STATE_DIR", "UPLOAD_DIR", "LOCK_NAME", "LOCK_GUARD_NAME", "LOCK_FILE", "LOCK_GUARD", "RELEASE_FILE", "STACK_DIR", "NGINX_WEB_ROOT", "WEB_CSP_CONF", "RUNBOOK_DIR",
    "RUNBOOK_UNIT_PREFIX", "StackLayout", "RunbookLayout", "REPO_ROOT", "STATE_DIR_ENV", "CACHE_DIR_ENV",
    "local_state_dir", "local_cache_dir",
]

#: orderops' own state on every host.
STATE_DIR = "/var/lib/orderops"
#: 0700 directory owned by the SSH user: uploads of secret files and image archives land here first.
UPLOAD_DIR = f"{STATE_DIR}/upload"
#: File names of the per-host lock and its ``flock(1)`` guard in :data:`STATE_DIR`.
LOCK_NAME, LOCK_GUARD_NAME = "host.lock", ".host.lock.guard"
#: The per-host lock: ``<run id> <expiry epoch> <holder>`` (protocol in :mod:`deploys.contract.lock`).
LOCK_FILE = f"{STATE_DIR}/{LOCK_NAME}"
#: ``flock(1)`` guard of :data:`LOCK_FILE` (taking and releasing are atomic under it).
LOCK_GUARD = f"{STATE_DIR}/{LOCK_GUARD_NAME}"
#: The release record written by the emergency-redeploy runbook (:mod:`deploys.contract.release`).
RELEASE_FILE = f"{STATE_DIR}/release.json"

#: Default stack directory of an app host (inventory ``stack_dir``).
STACK_DIR = "/opt/orderops"
#: Where the nginx container sees :attr:`StackLayout.web_dir` (the vhost's ``root`` is below it).
NGINX_WEB_ROOT = "/srv/web"
#: The front end's Content-Security-Policy file in the web root, outside the releases (nginx
#: ``set $orderops_web_csp "...";``, included by the vhost; written by deploys/operations/web.py).
WEB_CSP_CONF = "csp.conf"
#: Default runbook directory of the controller host (inventory ``runbook_dir``).
RUNBOOK_DIR = "/opt/orderops-runbooks"
#: systemd units of scheduled runbooks: ``<prefix><runbook>.service`` / ``.timer``.
RUNBOOK_UNIT_PREFIX = "orderops-runbook-"


@dataclass(frozen=True)
class StackLayout:
    """Files of the order stack below ``root`` (an app host's ``stack_dir``), all absolute paths."""

    root: str

    @property
    def compose_file(self) -> str:
        """``compose.yaml``, the project file (no ``env_file:``, see deploys/operations/compose.py)."""
        return f"{self.root}/compose.yaml"

    @property
    def env_file(self) -> str:
        """``.env``: the secrets compose interpolates (0600)."""
        return f"{self.root}/.env"

    @property
    def nginx_dir(self) -> str:
        return f"{self.root}/nginx"

    @property
    def nginx_conf(self) -> str:
        """The vhost, bind-mounted read-only into nginx."""
        return f"{self.nginx_dir}/orderops.conf"

    @property
    def tls_dir(self) -> str:
        return f"{self.root}/tls"

    @property
    def certificate(self) -> str:
        """PEM certificate chain nginx serves (0644)."""
        return f"{self.tls_dir}/fullchain.pem"

    @property
    def private_key(self) -> str:
        """PEM private key of :attr:`certificate` (0600)."""
        return f"{self.tls_dir}/privkey.pem"

    @property
    def acme_dir(self) -> str:
        """ACME http-01 webroot."""
        return f"{self.root}/acme"

    @property
    def web_dir(self) -> str:
        """Front-end releases (``releases/<id>``, ``current``/``previous`` links; deploys/operations/web.py),
        bind-mounted read-only into nginx at :data:`NGINX_WEB_ROOT`."""
        return f"{self.root}/web"

    @property
    def web_releases_dir(self) -> str:
        return f"{self.web_dir}/releases"

    @property
    def bin_dir(self) -> str:
        return f"{self.root}/bin"

    @property
    def deploy_hook(self) -> str:
        """certbot's deploy hook: reloads nginx after an issuance or renewal (``tls_mode: acme``)."""
        return f"{self.bin_dir}/certbot-deploy-hook.sh"

    @property
    def db_password_script(self) -> str:
        """Applies a changed ``postgres_password`` to the running database."""
        return f"{self.bin_dir}/apply-db-password.sh"


@dataclass(frozen=True)
class RunbookLayout:
    """Files of the runbook tooling below ``root`` (the controller host's ``runbook_dir``)."""

    root: str

    @property
    def wheelhouse(self) -> str:
        return f"{self.root}/wheelhouse.tar"

    @property
    def venv(self) -> str:
        return f"{self.root}/venv"

    @property
    def runbook_cli(self) -> str:
        return f"{self.venv}/bin/runbook"

    @property
    def installed(self) -> str:
        """Holds the bundle key of the installed tooling."""
        return f"{self.root}/installed"

    @property
    def keys_dir(self) -> str:
        return f"{self.root}/keys"

    @property
    def controller_key(self) -> str:
        """The key the controller host reaches app hosts with (0600)."""
        return f"{self.keys_dir}/controller_ed25519"

    @property
    def known_hosts(self) -> str:
        """The app hosts' SSH host keys, recorded by the deploy; the controller's runbooks verify them."""
        return f"{self.root}/known_hosts"

    @property
    def secrets_dir(self) -> str:
        return f"{self.root}/secrets"

    def secrets_file(self, host: str) -> str:
        """An app host's secrets (0600 JSON)."""
        return f"{self.secrets_dir}/{host}.json"

    @property
    def inventory(self) -> str:
        """The app hosts as the controller host reaches them (pyinfra inventory file)."""
        return f"{self.root}/inventory.py"

    @property
    def state_dir(self) -> str:
        """``ORDEROPS_STATE_DIR`` of scheduled runs (run directories under ``runs/``)."""
        return f"{self.root}/state"

    @property
    def cache_dir(self) -> str:
        return f"{self.root}/cache"

    def deploy_file(self, host: str, field: str, name: str) -> str:
        """The controller host's copy of an app host's deploy-machine file (inventory ``field``,
        file name ``name``): ``<root>/files/<host>/<field>/<name>``."""
        return f"{self.root}/files/{host}/{field}/{name}"


# ------------------------------------------------------------------ the controller machine

#: The repository (or installed package) root: the parent of ``deploys/``.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Environment variable naming the controller machine's state directory.
STATE_DIR_ENV = "ORDEROPS_STATE_DIR"
#: Environment variable naming the controller machine's cache directory (shared between state dirs).
CACHE_DIR_ENV = "ORDEROPS_CACHE_DIR"


def local_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The controller machine's orderops state directory (keys, secrets, caches, runs): an absolute path.

    ``$ORDEROPS_STATE_DIR`` when set (relative values resolve against the current directory),
    else ``.orderops`` at :data:`REPO_ROOT` — never the current directory, so ``pyinfra`` started
    elsewhere uses the same caches and keys.
    """
    env = os.environ if environ is None else environ
    value = env.get(STATE_DIR_ENV)
    return (Path(value).expanduser() if value else REPO_ROOT / ".orderops").resolve()


def local_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The controller machine's cache directory (rootfs, wheelhouses, image archives): an absolute path.

    ``$ORDEROPS_CACHE_DIR`` when set, else ``cache/`` in :func:`local_state_dir`.
    """
    env = os.environ if environ is None else environ
    value = env.get(CACHE_DIR_ENV)
    return Path(value).expanduser().resolve() if value else local_state_dir(env) / "cache"
