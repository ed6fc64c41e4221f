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
    # Backups (deploys/roles/backups.py): encrypted to these age public keys. REPLACE this example
    # key (its private half was thrown away) with yours from `age-keygen -o backup.key`; keep the
    # private key off the servers (restores stream it from your machine).
    "backup_age_recipients": [_os.environ.get("ORDEROPS_BACKUP_AGE_RECIPIENT", "age1j8aws9357ynzr6uy0p83fxk2q784axu2zkustzkxwutx6wjcsseqc4qt90")],
    "backup_schedule": "*-*-* 02:30:00",
    # Offsite copy: the credentials file (0600 JSON {aws_access_key_id, aws_secret_access_key}) stays
    # on the controller machine and is installed root-only on the host.
    # "backup_s3_bucket": "orders-backups-example",
    # "backup_s3_region": "eu-central-1",
    # "backup_s3_credentials_file": "~/.config/orderops/backup-s3.json",
}

app = [
    ("app-1.example.com", {**_COMMON, "ssh_hostname": "192.0.2.10"}),
]
controller = [
    ("ops-1.example.com", {**_COMMON, "ssh_hostname": "192.0.2.20"}),
]

_check_inventory({"app": app, "controller": controller})
