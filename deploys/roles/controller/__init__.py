"""Role ``controller``: the runbook tooling on the controller host, with its schedules.

What lands on the controller host (``runbook_dir``; layout :class:`deploys.contract.paths.RunbookLayout`)::

    wheelhouse.tar        the project wheel + wheels of all its dependencies, built on the
                          controller machine (cached by content) and uploaded: no index needed
    venv/                 Debian's python3 venv with orderops installed from the wheelhouse
    installed             bundle key of what is installed (reinstall only when it changes)
    keys/controller_ed25519   the key that reaches the app hosts (0600, runbook user)
    secrets/<host>.json   app hosts' secrets (0600, runbook user), for validation and masking
    inventory.py          the app hosts as the controller host reaches them
    state/runs/           run directories of scheduled runs

plus the runbooks' timers and a textfile-collector directory (``runbook_textfile_dir``), and on
every ``app`` host the controller key authorised for the SSH user (:func:`authorise_controller`).

One part per job: :mod:`.wheelhouse` (build the tooling), :mod:`.keys` (the controller key),
:mod:`.inventory_export` (the controller host's inventory), :mod:`.units` (timers); this module
only puts them on the host in order.
"""

from __future__ import annotations

import io
import json
import posixpath
import shlex
import sys
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.server import Command
from pyinfra.operations import apt, python, server

from deploys.contract.paths import RunbookLayout
from deploys.operations import secret_files
from deploys.operations.prefetched import files
from deploys.roles.base import SSHD_SETTINGS
from deploys.roles.controller.inventory_export import app_hosts, controller_host_data, known_hosts_text, render_inventory
from deploys.roles.controller.keys import authorise_controller, controller_key, generate_when_missing
from deploys.roles.controller.units import runbook_units
from deploys.roles.controller.wheelhouse import build_bundle, bundle_path, source_key
from inventories.schema import HostSettings, deploy_machine_paths

__all__ = ["controller", "authorise_controller"]


def _build_wheelhouse() -> None:
    """Execution-time callback (``python.call``): build (or reuse) the wheelhouse tarball on the controller machine."""
    build_bundle()


def _tooling(layout: RunbookLayout) -> None:
    """Build, upload and install the wheelhouse into the venv when the installed key differs from
    :func:`~.wheelhouse.source_key`'s (nothing is built or uploaded otherwise). The build is an
    operation of its own that runs when pyinfra executes; the plan (``--dry``) judges by key and
    builds nothing."""
    local_py = f"{sys.version_info.major}.{sys.version_info.minor}"
    remote_py = host.get_fact(Command, "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null || echo none").strip()
    if remote_py != local_py:
        raise OperationError(f"controller host has Python {remote_py}, the wheelhouse is built for {local_py}: "
                             "build on a controller machine with the same Python minor version")
    # Judged by the content key, not by the tarball's bytes: a wheelhouse rebuilt from the same
    # sources (a cleared cache, a new clone) need not be byte-identical (sdists built into wheels
    # carry build times), and an installed key needs neither a build nor an upload.
    _, key = source_key()
    installed = (host.get_fact(Command, f"cat {layout.installed} 2>/dev/null || true") or "").strip()
    if installed != key:
        bundle = bundle_path(key)
        python.call(name="Build the runbook wheelhouse (controller machine)", function=_build_wheelhouse)
        # assume_exists: while pyinfra plans the tarball may not be built yet; its body runs again
        # at execution, after the build, and compares the built file's checksum with the host's
        files.put(name="Runbook wheelhouse", src=str(bundle), dest=layout.wheelhouse, mode="644", assume_exists=True)
        server.shell(
            name="Install the runbook tooling (no index)",
            commands=[
                f"set -e; cd {layout.root}; rm -rf wheelhouse; tar -xf {Path(layout.wheelhouse).name}; "
                f"[ -x venv/bin/python ] || python3 -m venv venv; "
                f"venv/bin/pip install -q --no-index --find-links wheelhouse orderops; "
                f"venv/bin/pip install -q --no-index --no-deps --force-reinstall wheelhouse/orderops-*.whl; "
                f"rm -rf wheelhouse; echo {key} > {layout.installed}",
            ],
        )
    else:
        host.noop(f"runbook tooling {key} installed")


def _inventory(layout: RunbookLayout, user: str, upload_dir: str) -> None:
    """The app hosts' secrets (0600), Compose .debs for the drift check, and the rendered inventory."""
    hosts = []
    groups: dict[str, list[str]] = {}
    for name, data, app_settings in app_hosts():
        for group in app_settings.groups:
            groups.setdefault(group, []).append(name)
        secrets = {k: v.get_secret_value() for k, v in app_settings.secrets if v is not None}
        secret_files.present(
            name=f"Secrets of {name}", dest=layout.secrets_file(name), content=json.dumps(secrets, sort_keys=True),
            upload_dir=upload_dir, user=user, group=user, mode="0600",
        )
        for field, kind in deploy_machine_paths().items():  # the deploy machine's files the inventory names
            path = getattr(app_settings, field)
            if path is None or kind == "local":
                continue
            dest = layout.deploy_file(name, field, Path(path).name)
            if kind == "secret":
                files.directory(name=f"Directory of {field} of {name}", path=posixpath.dirname(dest),
                                user=user, group=user, mode="0700", recursive=False)
                secret_files.present(name=f"{field} of {name}", dest=dest, content=Path(path).expanduser().read_text(),
                                     upload_dir=upload_dir, user=user, group=user, mode="0600")
            else:
                files.put(name=f"{field} of {name}", src=str(Path(path).expanduser()), dest=dest,
                          user=user, group=user, mode="644", create_remote_dir=True)
        hosts.append((name, controller_host_data(name, data, layout.root)))
    files.put(name="Controller inventory", src=io.StringIO(render_inventory(hosts, groups)), dest=layout.inventory,
              user=user, group=user, mode="644")
    # each app host's own public keys, read over this run's (verified) connection to it, at the
    # address the controller host uses: its runbooks verify host keys against this file. Only the
    # keys sshd offers: the base role's HostKey files (Ed25519 only; ECDSA/RSA are dropped), read
    # as files so the first converge records what sshd offers after it, not before.
    offered = " ".join(shlex.quote(f"{key}.pub") for key in SSHD_SETTINGS["HostKey"].split())
    entries = [(d["ssh_hostname"], d["ssh_port"], inventory.get_host(n).get_fact(Command, f"cat {offered}") or "")
               for n, d in hosts]
    files.put(name="Known host keys of the app hosts", src=io.StringIO(known_hosts_text(entries)),
              dest=layout.known_hosts, user=user, group=user, mode="644")


@deploy("controller")
def controller(settings: HostSettings, upload_dir: str) -> None:
    """Install the runbook tooling, key, inventory and timers on the controller host."""
    layout, user = RunbookLayout(settings.runbook_dir), settings.deploy_user
    home = f"/home/{user}"
    apt.packages(name="Python venv for the runbook tooling", packages=["python3-venv", "openssh-client"],
                 update=True, cache_time=24 * 3600, no_recommends=True)
    for path, mode in ((layout.root, "755"), (layout.keys_dir, "700"), (layout.secrets_dir, "700"),
                       (layout.state_dir, "700"), (layout.cache_dir, "755")):
        files.directory(name=f"runbook directory {path}", path=path, user=user, group=user, mode=mode)

    _tooling(layout)
    key = controller_key(settings)  # None: generated when pyinfra executes, read then by the upload
    secret_files.present(
        name="Controller SSH key", dest=layout.controller_key,
        **({"content": key.read_text()} if key else {"src": str(generate_when_missing(settings))}),
        upload_dir=upload_dir, user=user, group=user, mode="0600",
    )
    _inventory(layout, user, upload_dir)
    files.directory(name="Textfile collector directory", path=settings.runbook_textfile_dir, user=user, group=user, mode="755")
    runbook_units(settings, home)
