"""Inventory of the local test hosts (the embedded default target).

Reads the harness state that ``make hosts-up`` (``python -m testhosts up``) writes to
``.orderops/`` (or ``$ORDEROPS_STATE_DIR``): the hosts and their ports, the locally built image
references, the SSH key and the generated secrets. Works for 1 or N hosts, in the ``single``
layout (every host in ``app``, the first also ``controller``) or ``split`` (one controller, the
rest ``app``).

    pyinfra inventories/local.py deploys/site.py
"""

import json as _json
import os as _os
from pathlib import Path as _Path

from inventories.schema import InventoryError as _InventoryError
from inventories.schema import check_inventory as _check_inventory

_STATE = _Path(_os.environ.get("ORDEROPS_STATE_DIR", _Path(__file__).resolve().parent.parent / ".orderops"))


def _load(name):
    path = _STATE / name
    if not path.exists():
        raise SystemExit(f"orderops: {_InventoryError(None, str(path), 'missing: run `make hosts-up` (and `make images`) first')}")
    return _json.loads(path.read_text())


_hosts_state = _load("hosts.json")
_images = _load("images.json")
# the front end built by `make web` (tools/build_web.py); without it no front end is shipped
_web = _json.loads((_STATE / "web.json").read_text()) if (_STATE / "web.json").exists() else {}


def _host_data(h):
    return {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": h["ssh_port"],
        "ssh_user": _hosts_state["ssh_user"],
        "ssh_key": _hosts_state["ssh_key"],
        "ssh_strict_host_key_checking": "no",
        "ssh_known_hosts_file": "/dev/null",
        "_sudo": True,
        "environment": "local",
        "domain": "order.test",
        "secrets_file": str(_STATE / "secrets" / "local.json"),
        "docker_source": "distro",
        "compose_source": "deb-file",
        "compose_deb": _hosts_state["compose_deb"],
        "image_transport": "archive",
        "images": {role: _images[role] for role in ("order_service", "postgres", "redis", "nginx")},
        "web_artifact": _web.get("artifact"),
        "https_url": f"https://127.0.0.1:{h['https_port']}",
        "http_url": f"http://127.0.0.1:{h['http_port']}",
        "testhost_ip": h["ip"],
        "testhost_container": h["container"],
    }


app = [(h["name"], _host_data(h)) for h in _hosts_state["hosts"] if "app" in h["groups"]]
controller = [(h["name"], _host_data(h)) for h in _hosts_state["hosts"] if "controller" in h["groups"]]

_check_inventory({"app": app, "controller": controller})
