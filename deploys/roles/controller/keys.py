"""The controller key: the SSH key the controller host reaches the app hosts with.

Generated once on the controller machine (``keys/controller_ed25519`` in
:func:`deploys.contract.paths.local_state_dir`, unless inventory ``controller_ssh_key`` names
one), uploaded to the controller host (0600) and authorised on every app host. A missing key is
generated when pyinfra executes (:func:`generate_when_missing`, a ``python.call`` operation), never
while it plans: ``--dry`` writes nothing on the controller machine.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import python, server

from deploys.contract.paths import local_state_dir
from inventories.schema import HostSettings

__all__ = ["controller_key_path", "controller_key", "ensure_controller_key", "generate_when_missing",
           "authorise_controller"]

#: Hosts run in parallel (gevent greenlets; pyinfra patches threading): one ``ssh-keygen`` at a time.
_KEYGEN_LOCK = threading.Lock()


def controller_key_path(settings: HostSettings) -> Path:
    """Path of the controller's private key on the controller machine (``.pub`` beside it); touches nothing."""
    return Path(settings.controller_ssh_key or local_state_dir() / "keys" / "controller_ed25519").expanduser()


def ensure_controller_key(path: Path) -> Path:
    """Generate the ed25519 key pair at ``path`` if it is missing; returns ``path``.

    Raises ``OperationError`` when ``ssh-keygen`` fails or the public half is missing.
    """
    with _KEYGEN_LOCK:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            proc = subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "orderops-controller", "-f", str(path)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise OperationError(f"ssh-keygen failed for {path}: {proc.stderr.strip()}")
    if not path.with_suffix(".pub").exists():
        raise OperationError(f"{path}.pub is missing: the controller key needs its public half")
    return path


def controller_key(settings: HostSettings) -> Path | None:
    """The controller key's path if it exists on the controller machine, else None (nothing is generated).

    Raises ``OperationError`` when the private key exists without its public half.
    """
    path = controller_key_path(settings)
    if not path.exists():
        return None
    if not path.with_suffix(".pub").exists():
        raise OperationError(f"{path}.pub is missing: the controller key needs its public half")
    return path


def generate_when_missing(settings: HostSettings) -> Path:
    """Operation (inside a deploy): generate the controller key when pyinfra executes, if it is missing.

    Returns the key's path; an existing key adds no operation. Later operations of the same run
    read the key when their bodies run at execution (pass them the path, not its text).
    """
    path = controller_key_path(settings)
    if controller_key(settings) is None:
        python.call(name="Generate the controller SSH key (controller machine)", function=ensure_controller_key,
                    path=path)
    return path


@deploy("controller access")
def authorise_controller(settings: HostSettings) -> None:
    """On an app host: authorise the controller's public key for the SSH user (runbooks log in as it)."""
    if not inventory.get_group("controller", []):
        host.noop("no controller host in the inventory")
        return
    existing = controller_key(settings)
    # the key's text when it exists; else the .pub path of the key generated first at execution
    # (pyinfra's user_authorized_keys reads a key file path when its body runs)
    pub = existing.with_suffix(".pub").read_text().strip() if existing else \
        str(generate_when_missing(settings).with_suffix(".pub"))
    user = host.data.get("ssh_user") or settings.deploy_user
    server.user_authorized_keys(name="Controller key authorised", user=user, public_keys=[pub], delete_keys=False)
