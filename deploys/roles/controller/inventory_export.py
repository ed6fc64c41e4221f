"""The controller host's inventory: the app hosts as the controller host reaches them.

Host data is read through pyinfra's public inventory API (global, group and host data of the
inventory file), so ``--data`` overrides of this run (a runbook's deploy passes e.g.
``health_timeout``) never end up in the exported inventory.
"""

from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any

from pyinfra import inventory as current_inventory
from pyinfra.api import Host, Inventory

from deploys.contract.paths import RunbookLayout
from inventories.schema import HostSettings, deploy_machine_paths, settings_for

__all__ = ["controller_host_data", "render_inventory", "known_hosts_text", "inventory_file_data", "app_hosts"]


def inventory_file_data(inventory: Inventory, h: Host) -> dict[str, Any]:
    """``h``'s data as the inventory file gives it: global < group (in ``h.groups`` order) < host data."""
    return {**inventory.get_data(), **inventory.get_groups_data(h.groups), **inventory.get_host_data(h.name)}


def app_hosts(inventory: Inventory | None = None) -> list[tuple[str, dict[str, Any], HostSettings]]:
    """``[(name, inventory-file data, validated settings)]`` of the ``app`` group."""
    inventory = current_inventory if inventory is None else inventory
    return [(h.name, inventory_file_data(inventory, h), settings_for(h)) for h in inventory.get_group("app", [])]


def controller_host_data(name: str, data: dict[str, Any], root: str) -> dict[str, Any]:
    """An app host's data as the controller host's inventory holds it.

    Connection: ``controller_address`` port 22 when set (the local harness sets the container's
    Docker IP), else the inventory's address; host keys checked against ``known_hosts`` under ``root``;
    the controller key; the host's secrets file under ``root/secrets``; deploy-machine paths
    (:func:`inventories.schema.deploy_machine_paths`) at the controller role's copies; nginx URLs by IP; the
    ``archive`` image transport becomes ``registry`` (presence checks: the controller host has
    no copy of the deploy machine's images).
    """
    layout = RunbookLayout(root)
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(data.items()) if not k.startswith(("ssh_", "_"))}
    # paths on the deploy machine: files point at the controller role's copies; the "local" ones
    # (the built front end, the controller key) are left out
    for field, kind in deploy_machine_paths().items():
        if out.get(field) is None:
            continue
        if kind == "local":
            out.pop(field)
        else:
            out[field] = layout.deploy_file(name, field, Path(str(out[field])).name)
    ip = data.get("controller_address")
    out["ssh_hostname"] = ip or data.get("ssh_hostname") or name
    out["ssh_port"] = 22 if ip else int(data.get("ssh_port") or 22)
    out["ssh_user"] = data.get("ssh_user") or out.get("deploy_user", "deploy")
    out["ssh_key"] = layout.controller_key
    if "ssh_strict_host_key_checking" in data:
        out["ssh_strict_host_key_checking"] = data["ssh_strict_host_key_checking"]
    out["ssh_known_hosts_file"] = layout.known_hosts  # the app hosts' keys, recorded by the deploy
    out["_sudo"] = True
    out["secrets_file"] = layout.secrets_file(name)
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


#: Groups besides ``app`` that change what the deploy renders for an app host (a monitoring host's
#: vhost serves ``/grafana/``): the exported inventory keeps them, so the controller host's drift
#: check renders the same files the deploy machine does. ``controller`` is not carried: from the
#: controller host the app hosts are only targets.
CARRIED_GROUPS = ("monitoring",)


def render_inventory(hosts: list[tuple[str, dict[str, Any]]], groups: dict[str, list[str]] | None = None) -> str:
    """Python source of the controller host's inventory: group ``app`` (``hosts``: ``[(name, data)]``)
    and, for each of :data:`CARRIED_GROUPS` in ``groups`` (``{group: [host name]}``), that group's
    app hosts with the same data; validated on load (``check_inventory``)."""
    lines = [
        '"""Rendered by orderops (deploys/roles/controller/inventory_export.py): the app hosts as this controller host reaches them."""\n',
        "from inventories.schema import check_inventory\n",
        f"app = {pprint.pformat(hosts, width=110, sort_dicts=True)}\n",
    ]
    carried = [g for g in CARRIED_GROUPS if (groups or {}).get(g)]
    for group in carried:
        members = sorted(set(groups[group]))
        lines.append(f"{group} = [h for h in app if h[0] in {members!r}]\n")
    mapping = ", ".join(f'"{g}": {g}' for g in ["app", *carried])
    lines.append(f"check_inventory({{{mapping}}})\n")
    return "\n".join(lines)
