"""orderops local test-host harness.

Builds images from Debian's archive without a registry, starts N systemd+sshd Debian containers on
127.0.0.1 ports and records them in ``.orderops/hosts.json`` for ``inventories/local.py``.
CLI: ``python -m testhosts --help``; state layout and schemas: :mod:`testhosts.state`.
"""

from .secrets import ensure_local_secrets
from .state import HostEntry, HostsState, ImagesState, StatePaths, load_hosts, load_images

__all__ = [
    "HostEntry", "HostsState", "ImagesState", "StatePaths",
    "ensure_local_secrets", "load_hosts", "load_images",
]
