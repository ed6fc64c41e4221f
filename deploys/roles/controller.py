"""Role ``controller``: the runbook tooling on the controller host, with its schedules.

What lands on the controller host (``runbook_dir``, default ``/opt/orderops-runbooks``)::

    wheelhouse.tar        the project wheel + wheels of all its dependencies, built on the
                          controller machine (cached by content) and uploaded: no index needed
    venv/                 Debian's python3 venv with orderops installed from the wheelhouse
    installed             bundle key of what is installed (reinstall only when it changes)
    keys/controller_ed25519   the key that reaches the app hosts (0600, runbook user)
    secrets/<host>.json   app hosts' secrets (0600, runbook user), for validation and masking
    inventory.py          the app hosts as the controller host reaches them
    state/runs/           run directories of scheduled runs

plus ``orderops-runbook-<name>.service`` + ``.timer`` per entry of ``runbook_schedules``
(calendar from inventory data, ``Persistent=true``), a textfile-collector directory
(``runbook_textfile_dir``) and, on every ``app`` host, the controller key authorised for the SSH
user (:func:`authorise_controller`).

The controller keypair is generated once on the controller machine
(``$ORDEROPS_STATE_DIR/keys/controller_ed25519`` unless ``controller_ssh_key`` names one).
App hosts are addressed as the controller host sees them: in the local harness that is the app
``controller_address`` on port 22 when set (the local harness sets the container's Docker IP);
otherwise the inventory's address.
"""

from __future__ import annotations

import hashlib
import io
import os
import pprint
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from deploys.operations import secret_files
from inventories.schema import HostSettings, settings_for
from templates import render

__all__ = [
    "controller", "authorise_controller", "controller_key", "build_bundle", "source_key",
    "render_inventory", "controller_host_data", "unit_texts", "REPO_ROOT",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the packages the controller tooling runs (the bundle key covers these + the build inputs; the wheel
#: also carries order_service and testhosts, which the controller host never runs)
_SOURCES = ("deploys", "inventories", "templates", "runbooks")
_BUILD_INPUTS = ("pyproject.toml", "constraints.txt")
_UNIT_PREFIX = "orderops-runbook-"


def _state_dir() -> Path:
    return Path(os.environ.get("ORDEROPS_STATE_DIR", REPO_ROOT / ".orderops"))


def controller_key(settings: HostSettings) -> Path:
    """Path of the controller's private key on the controller machine, generated (ed25519) if missing."""
    path = Path(settings.controller_ssh_key or _state_dir() / "keys" / "controller_ed25519").expanduser()
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


def source_key(root: Path = REPO_ROOT) -> tuple[str, str]:
    """``(deps key, bundle key)``: hashes of the build inputs, and of those plus every source file."""
    deps = hashlib.sha256()
    for name in _BUILD_INPUTS:
        p = root / name
        deps.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b"") + b"\0")
    full = hashlib.sha256(deps.digest())
    for top in _SOURCES:
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                full.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return deps.hexdigest()[:16], full.hexdigest()[:16]


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "-q", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OperationError(f"pip {' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]}")


def build_bundle(root: Path = REPO_ROOT, cache: Path | None = None) -> tuple[Path, str]:
    """Build (or reuse) the wheelhouse tarball on the controller machine; returns ``(path, key)``.

    Dependency wheels are cached by the hash of ``pyproject.toml`` + ``constraints.txt``; the
    project wheel and the tarball by the hash of every source file. The tarball is written
    deterministically (sorted, mtime 0), so an unchanged bundle uploads nothing.
    """
    cache = Path(cache or Path(os.environ.get("ORDEROPS_CACHE_DIR") or _state_dir() / "cache")) / "controller"
    deps_key, key = source_key(root)
    bundle = cache / f"wheelhouse-{key}.tar"
    if bundle.exists():
        return bundle, key
    cache.mkdir(parents=True, exist_ok=True)
    deps_dir = cache / f"deps-{deps_key}"
    if not deps_dir.exists():
        project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".deps-"))
        req = tmp / "requirements.txt"
        req.write_text("\n".join(project["dependencies"]) + "\n")
        constraints = ["-c", str(root / "constraints.txt")] if (root / "constraints.txt").exists() else []
        _pip("wheel", "-w", str(tmp / "wheels"), *constraints, "-r", str(req))
        (tmp / "wheels").rename(deps_dir)
        shutil.rmtree(tmp, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".project-"))
    try:
        _pip("wheel", "--no-deps", "-w", str(work), str(root))
        wheels = sorted(deps_dir.glob("*.whl")) + sorted(work.glob("orderops-*.whl"))
        part = bundle.with_suffix(f".part{os.getpid()}")
        with tarfile.open(part, "w") as tar:
            for w in wheels:
                info = tar.gettarinfo(str(w), arcname=f"wheelhouse/{w.name}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(w, "rb") as f:
                    tar.addfile(info, f)
        part.rename(bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in cache.glob("wheelhouse-*.tar"):  # keep the newest three bundles
        if old != bundle and old not in sorted(cache.glob("wheelhouse-*.tar"), key=lambda p: p.stat().st_mtime)[-3:]:
            old.unlink(missing_ok=True)
    return bundle, key


def controller_host_data(name: str, data: dict[str, Any], root: str) -> dict[str, Any]:
    """An app host's data as the controller host's inventory holds it.

    Connection: ``controller_address`` port 22 when set, else the inventory's address;
    the controller key; the host's secrets file under ``root/secrets``; nginx URLs by IP; the
    ``archive`` image transport becomes ``registry`` (presence checks: the controller host has
    no copy of the deploy machine's images).
    """
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(data.items()) if not k.startswith(("ssh_", "_"))}
    ip = data.get("controller_address")
    out["ssh_hostname"] = ip or data.get("ssh_hostname") or name
    out["ssh_port"] = 22 if ip else int(data.get("ssh_port") or 22)
    out["ssh_user"] = data.get("ssh_user") or out.get("deploy_user", "deploy")
    out["ssh_key"] = f"{root}/keys/controller_ed25519"
    if "ssh_strict_host_key_checking" in data:
        out["ssh_strict_host_key_checking"] = data["ssh_strict_host_key_checking"]
    out["ssh_known_hosts_file"] = f"{root}/known_hosts"  # the app hosts' keys, recorded by the deploy
    out["_sudo"] = True
    out["secrets_file"] = f"{root}/secrets/{name}.json"
    if out.get("compose_deb"):
        out["compose_deb"] = f"{root}/cache/{Path(str(out['compose_deb'])).name}"
    if ip:
        out["probe_https_url"], out["probe_http_url"] = f"https://{ip}", f"http://{ip}"
    if out.get("image_transport") == "archive":
        # The controller host holds no copy of the deploy machine's images: from here the images
        # role checks that every wanted ref is present on the app host (registry semantics), so
        # the drift check works; a redeploy from here of an image the host lacks needs a registry.
        out["image_transport"] = "registry"
    return out


def known_hosts_text(entries: list[tuple[str, int, str]]) -> str:
    """known_hosts lines from ``(address, port, "<type> <base64> [comment]" lines)`` entries
    (``[address]:port`` unless port 22; comments dropped)."""
    out = []
    for address, port, keys in entries:
        name = address if int(port) == 22 else f"[{address}]:{port}"
        out += [f"{name} {' '.join(line.split()[:2])}" for line in keys.splitlines() if len(line.split()) >= 2]
    return "\n".join(sorted(out)) + ("\n" if out else "")


def render_inventory(app_hosts: list[tuple[str, dict[str, Any]]]) -> str:
    """Python source of the controller host's inventory (group ``app``; validated on load)."""
    return (
        '"""Rendered by orderops (deploys/roles/controller.py): the app hosts as this controller host reaches them."""\n\n'
        "from inventories.schema import check_inventory\n\n"
        f"app = {pprint.pformat(app_hosts, width=110, sort_dicts=True)}\n\n"
        'check_inventory({"app": app})\n'
    )


def unit_texts(settings: HostSettings, name: str, calendar: str, home: str) -> tuple[str, str]:
    """``(service, timer)`` unit texts of one scheduled runbook."""
    service = render(
        "runbooks/runbook.service.j2", runbook=name, user=settings.deploy_user, root=settings.runbook_dir, home=home,
        textfile_dir=settings.runbook_textfile_dir, webhook_url=settings.runbook_webhook_url or "",
        args=settings.runbook_schedule_args.get(name, []), timeout=3600,
    )
    timer = render("runbooks/runbook.timer.j2", runbook=name, calendar=calendar)
    return service, timer


def _inventory_data(h) -> dict[str, Any]:
    """A host's data from the inventory file only: without ``--data`` overrides of this run (a
    runbook's deploy passes e.g. ``health_timeout``; the controller's inventory must not keep it)."""
    skip = (id(inventory.get_override_data()), id(h.data.override_datas))
    merged: dict[str, Any] = {}
    for layer in reversed(h.data.datas):
        layer = layer() if callable(layer) else layer
        if id(layer) not in skip and isinstance(layer, dict):
            merged.update(layer)
    return merged


def _app_hosts() -> list[tuple[str, dict[str, Any], HostSettings]]:
    out = []
    for h in inventory.get_group("app", []):
        out.append((h.name, _inventory_data(h), settings_for(h)))
    return out


@deploy("controller")
def controller(settings: HostSettings, upload_dir: str) -> None:
    """Install the runbook tooling, key, inventory and timers on the controller host."""
    from runbooks.library import RUNBOOKS  # validated here: the schema cannot import the runbooks

    unknown = sorted(set(settings.runbook_schedules) - set(RUNBOOKS))
    if unknown:
        raise OperationError(f"runbook_schedules names unknown runbook(s) {', '.join(unknown)}; known: {', '.join(sorted(RUNBOOKS))}")
    root, user = settings.runbook_dir, settings.deploy_user
    home = f"/home/{user}"
    local_py = f"{sys.version_info.major}.{sys.version_info.minor}"
    remote_py = host.get_fact(Command, "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null || echo none").strip()
    if remote_py != local_py:
        raise OperationError(f"controller host has Python {remote_py}, the wheelhouse is built for {local_py}: "
                             "build on a controller machine with the same Python minor version")

    apt.packages(name="Python venv for the runbook tooling", packages=["python3-venv", "openssh-client"],
                 update=True, cache_time=24 * 3600, no_recommends=True)
    for sub, mode in (("", "755"), ("/keys", "700"), ("/secrets", "700"), ("/state", "700"), ("/cache", "755")):
        files.directory(name=f"runbook directory {root}{sub}", path=f"{root}{sub}", user=user, group=user, mode=mode)

    bundle, key = build_bundle()
    files.put(name="Runbook wheelhouse", src=str(bundle), dest=f"{root}/wheelhouse.tar", mode="644")
    installed = (host.get_fact(Command, f"cat {root}/installed 2>/dev/null || true") or "").strip()
    if installed != key:
        server.shell(
            name="Install the runbook tooling (no index)",
            commands=[
                f"set -e; cd {root}; rm -rf wheelhouse; tar -xf wheelhouse.tar; "
                f"[ -x venv/bin/python ] || python3 -m venv venv; "
                f"venv/bin/pip install -q --no-index --find-links wheelhouse orderops; "
                f"venv/bin/pip install -q --no-index --no-deps --force-reinstall wheelhouse/orderops-*.whl; "
                f"rm -rf wheelhouse; echo {key} > installed",
            ],
        )
    else:
        host.noop(f"runbook tooling {key} installed")

    private = controller_key(settings)
    secret_files.present(
        name="Controller SSH key", dest=f"{root}/keys/controller_ed25519", content=private.read_text(),
        upload_dir=upload_dir, user=user, group=user, mode="0600",
    )

    app_hosts = []
    for name, data, app_settings in _app_hosts():
        secrets = {k: v.get_secret_value() for k, v in app_settings.secrets}
        secret_files.present(
            name=f"Secrets of {name}", dest=f"{root}/secrets/{name}.json", content=__import__("json").dumps(secrets, sort_keys=True),
            upload_dir=upload_dir, user=user, group=user, mode="0600",
        )
        if app_settings.compose_deb:
            files.put(name=f"Compose .deb for {name}'s drift check", src=str(app_settings.compose_deb),
                      dest=f"{root}/cache/{Path(app_settings.compose_deb).name}", mode="644")
        app_hosts.append((name, controller_host_data(name, data, root)))
    files.put(name="Controller inventory", src=io.StringIO(render_inventory(app_hosts)), dest=f"{root}/inventory.py",
              user=user, group=user, mode="644")
    # each app host's own public keys, read over this run's (verified) connection to it, at the
    # address the controller host uses: its runbooks verify host keys against this file
    entries = [(d["ssh_hostname"], d["ssh_port"], inventory.get_host(n).get_fact(Command, "cat /etc/ssh/ssh_host_*_key.pub") or "")
               for n, d in app_hosts]
    files.put(name="Known host keys of the app hosts", src=io.StringIO(known_hosts_text(entries)), dest=f"{root}/known_hosts",
              user=user, group=user, mode="644")

    files.directory(name="Textfile collector directory", path=settings.runbook_textfile_dir, user=user, group=user, mode="755")
    unit_ops = []
    for name, calendar in sorted(settings.runbook_schedules.items()):
        service, timer = unit_texts(settings, name, calendar, home)
        unit_ops.append(files.put(name=f"Unit {_UNIT_PREFIX}{name}.service", src=io.StringIO(service),
                                  dest=f"/etc/systemd/system/{_UNIT_PREFIX}{name}.service", mode="644"))
        unit_ops.append(files.put(name=f"Unit {_UNIT_PREFIX}{name}.timer", src=io.StringIO(timer),
                                  dest=f"/etc/systemd/system/{_UNIT_PREFIX}{name}.timer", mode="644"))
    # timers of runbooks no longer scheduled (removing one is a data change too)
    present = (host.get_fact(Command, f"ls /etc/systemd/system/ | grep -E '^{_UNIT_PREFIX}.*[.]timer$' || true") or "").split()
    for unit in sorted(present):
        name = unit[len(_UNIT_PREFIX):-len(".timer")]
        if name not in settings.runbook_schedules:
            systemd.service(name=f"Stop timer of unscheduled runbook {name}", service=unit, running=False, enabled=False)
            for suffix in ("timer", "service"):
                unit_ops.append(files.file(name=f"Remove {_UNIT_PREFIX}{name}.{suffix}",
                                           path=f"/etc/systemd/system/{_UNIT_PREFIX}{name}.{suffix}", present=False))

    def units_changed() -> bool:
        return any(op.did_change() for op in unit_ops)

    systemd.daemon_reload(name="systemd reloads changed runbook units", _if=units_changed)
    for name in sorted(settings.runbook_schedules):
        systemd.service(name=f"Timer of runbook {name}", service=f"{_UNIT_PREFIX}{name}.timer", running=True, enabled=True)
        systemd.service(name=f"Restart timer of runbook {name} for a new calendar", service=f"{_UNIT_PREFIX}{name}.timer",
                        restarted=True, _if=units_changed)


@deploy("controller access")
def authorise_controller(settings: HostSettings) -> None:
    """On an app host: authorise the controller's public key for the SSH user (runbooks log in as it)."""
    if not inventory.get_group("controller", []):
        host.noop("no controller host in the inventory")
        return
    pub = controller_key(settings).with_suffix(".pub").read_text().strip()
    user = host.data.get("ssh_user") or settings.deploy_user
    server.user_authorized_keys(name="Controller key authorised", user=user, public_keys=[pub], delete_keys=False)
