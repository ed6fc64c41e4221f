"""The controller key: the SSH key the controller host reaches the app hosts with.

Generated once on the controller machine (``keys/controller_ed25519`` in
:func:`deploys.contract.paths.local_state_dir`, unless inventory ``controller_ssh_key`` names
one), uploaded to the controller host (0600) and authorised on every app host.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import server

from deploys.contract.paths import local_state_dir
from inventories.schema import HostSettings

__all__ = ["controller_key", "authorise_controller"]


def controller_key(settings: HostSettings) -> Path:
    """Path of the controller's private key on the controller machine, generated (ed25519) if missing.

    Raises ``OperationError`` when ``ssh-keygen`` fails or the public half is missing.
    """
    path = Path(settings.controller_ssh_key or local_state_dir() / "keys" / "controller_ed25519").expanduser()
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


@deploy("controller access")
def authorise_controller(settings: HostSettings) -> None:
    """On an app host: authorise the controller's public key for the SSH user (runbooks log in as it)."""
    if not inventory.get_group("controller", []):
        host.noop("no controller host in the inventory")
        return
    pub = controller_key(settings).with_suffix(".pub").read_text().strip()
    user = host.data.get("ssh_user") or settings.deploy_user
    server.user_authorized_keys(name="Controller key authorised", user=user, public_keys=[pub], delete_keys=False)
