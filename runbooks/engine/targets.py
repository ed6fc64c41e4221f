"""Targets of a run: the hosts of a pyinfra inventory file (pyinfra's own loader), or the one
environment of an AWS inventory (:func:`load_targets` picks by the runbook's ``environment``).

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
from runbooks.core.types import AwsTarget, HostTarget

__all__ = ["load_inventory", "load_aws", "load_targets", "select", "secret_values"]


def load_targets(path: str | Path, environment: str = "hosts") -> list[HostTarget] | list[AwsTarget]:
    """:func:`load_inventory` for ``environment="hosts"``, :func:`load_aws` for ``"aws"``."""
    return load_aws(path) if environment == "aws" else load_inventory(path)


def load_aws(path: str | Path) -> list[AwsTarget]:
    """Load and validate an AWS inventory (``inventories/aws_settings.py``): its one environment.

    Raises :class:`TargetError` with the settings' "field: message" line when the file is missing,
    defines no ``aws`` dict, or holds an invalid value (no AWS call is made).
    """
    from inventories.aws_settings import load_aws_inventory

    try:
        settings = load_aws_inventory(path)
    except (FileNotFoundError, InventoryError) as e:
        raise TargetError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any other error of inventory code: one line, no traceback
        raise TargetError(f"cannot load AWS inventory {path}: {type(e).__name__}: {e}") from None
    return [AwsTarget(name=settings.name, settings=settings, inventory=str(path))]


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


def select(hosts: list, limit: Iterable[str] | None) -> list[HostTarget]:
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


def secret_values(hosts: Iterable[HostTarget | AwsTarget]) -> list[str]:
    """Every secret value of the hosts' settings (``Secrets.values()``), for masking. AWS targets
    have none: their secrets live in Secrets Manager and are never read by a runbook."""
    values: set[str] = set()
    for h in hosts:
        secrets = getattr(h.settings, "secrets", None)
        if secrets is not None:
            values.update(secrets.values())
    return sorted(values)
