"""Hosts of a run: the same pyinfra inventory file, validated by ``inventories.schema``.

An inventory file is a Python module whose public top-level lists are groups of
``(name, data)`` tuples (or bare names), exactly what pyinfra reads. Loading it validates
every host (:func:`inventories.schema.validate_groups`) before any host is touched.
"""

from __future__ import annotations

import fnmatch
import runpy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inventories.schema import InventoryError, validate_groups
from runbooks.core.errors import TargetError
from runbooks.core.types import HostTarget

__all__ = ["load_inventory", "select", "secret_values"]


def _groups(namespace: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, value in namespace.items():
        if key.startswith("_") or not isinstance(value, (list, tuple)):
            continue
        members = []
        for item in value:
            if isinstance(item, str):
                members.append((item, {}))
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
                members.append(item)
            else:
                break
        else:
            groups[key] = members
    return groups


def load_inventory(path: str | Path) -> list[HostTarget]:
    """Load and validate an inventory file; returns its hosts (inventory order, unique).

    Raises :class:`TargetError` (with the inventory's own "host + field" message) when the file
    is missing, fails to load, or holds invalid data.
    """
    path = Path(path)
    if not path.is_file():
        raise TargetError(f"inventory file not found: {path}")
    try:
        namespace = runpy.run_path(str(path))
    except SystemExit as e:  # inventories/*.py call check_inventory(), which exits with one line
        raise TargetError(str(e.code).removeprefix("orderops: ")) from None
    except InventoryError as e:
        raise TargetError(str(e)) from None
    groups = _groups(namespace)
    try:
        settings = validate_groups(groups)
    except InventoryError as e:
        raise TargetError(str(e)) from None
    seen: dict[str, HostTarget] = {}
    for group in groups.values():
        for name, data in group:
            if name not in seen:
                seen[name] = HostTarget(name=name, data=dict(data), settings=settings[name], groups=tuple(settings[name].groups))
    return list(seen.values())


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
