"""Worked example of a production inventory: copy it, then replace the placeholders.

Addresses are from the documentation ranges (RFC 5737), domains from RFC 2606's ``example.com``:
nothing here reaches a real host. Secrets live outside git in a 0600 JSON file
(``{"postgres_password": ..., "redis_password": ..., "secret_key": ..., "admin_password": ...}``,
each at least 24 characters) or in ``ORDEROPS_SECRET_<NAME>`` environment variables.

    pyinfra inventories/prod.py deploys/site.py
"""

import os as _os

from inventories.schema import check_inventory as _check_inventory

_COMMON = {
    "ssh_user": "deploy",
    "ssh_key": "~/.ssh/id_ed25519",
    "_sudo": True,
    "environment": "production",
    "domain": "orders.example.com",
    "secrets_file": _os.environ.get("ORDEROPS_SECRETS_FILE", "~/.config/orderops/prod-secrets.json"),
    "timezone": "UTC",
    # Docker's apt repository for the engine and the Compose v2 plugin (Ubuntu 22.04/24.04, Debian 12).
    "docker_source": "docker-apt",
    "compose_source": "docker-apt",
    "docker_log_max_size": "20m",
    "docker_log_max_file": 5,
    # Pull from a registry; "archive" ships the controller's images over SSH instead (air-gapped).
    "image_transport": "registry",
    "images": {
        "order_service": "registry.example.com/orderops/order-service:0.1.0",
        "postgres": "postgres:15.10",
        "redis": "redis:7.2.6",
        "nginx": "nginx:1.26.2",
    },
    "images_keep": 2,
    "service_workers": 4,
}

app = [
    ("app-1.example.com", {**_COMMON, "ssh_hostname": "192.0.2.10"}),
]
controller = [
    ("ops-1.example.com", {**_COMMON, "ssh_hostname": "192.0.2.20"}),
]

_check_inventory({"app": app, "controller": controller})
