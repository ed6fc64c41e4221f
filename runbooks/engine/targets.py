"""Hosts of a run: the same pyinfra inventory file, loaded by pyinfra's own loader.

:func:`load_inventory` goes through :func:`inventories.loader.load_validated` (pyinfra's
``make_inventory``: groups, group data and ``(hosts, data)`` groups work as in pyinfra), which
validates every host once, before any host is touched. Inventory problems become one-line
:class:`~runbooks.core.errors.TargetError` s here (the one mapping point for them).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from inventories.loader import load_validated
from inventories.schema import InventoryError
from runbooks.core.errors import TargetError
from runbooks.core.types import HostTarget

__all__ = ["load_inventory", "select", "secret_values"]


def load_inventory(path: str | Path) -> list[HostTarget]:
    """Load and validate an inventory file; returns its hosts (inventory order, unique).

    Raises :class:`TargetError` (with the inventory's own "host + field" message) when the file
    is missing, fails to load, or holds invalid data.
    """
    try:
        loaded = load_validated(path)
    except FileNotFoundError as e:
        raise TargetError(str(e)) from None
    except SystemExit as e:  # an inventory that stops itself (e.g. local.py without harness state)
        raise TargetError(str(e.code).removeprefix("orderops: ")) from None
    except InventoryError as e:
        raise TargetError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any other error of inventory code: one line, no traceback
        raise TargetError(f"cannot load inventory {path}: {type(e).__name__}: {e}") from None
    return [HostTarget(name=h.name, data=h.data, settings=s, groups=h.groups) for h, s in loaded]


def select(hosts: list[HostTarget], limit: Iterable[str] | None) -> list[HostTarget]:
    """Hosts matching ``limit`` (host names, group names or glob patterns; ``None``: all).

    Raises :class:`TargetError` when a pattern matches no host.
    """
    if not limit:
        return list(hosts)
    patterns = [p.strip() for item in limit for p in item.split(",") if p.strip()]
    chosen: list[HostTarget] = []
    for pattern in patterns:
        matched = [h for h in hosts if fnmatch.fnmatch(h.name, pattern) or pattern in h.groups]
        if not matched:
            raise TargetError(f"--limit {pattern!r} matches no host or group of the inventory")
        chosen += [h for h in matched if h not in chosen]
    return [h for h in hosts if h in chosen]


def secret_values(hosts: Iterable[HostTarget]) -> list[str]:
    """Every secret value of the hosts' settings (``Secrets.values()``), for masking."""
    values: set[str] = set()
    for h in hosts:
        values.update(h.settings.secrets.values())
    return sorted(values)
