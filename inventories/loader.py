"""The one inventory loader: pyinfra's own, through one wrapper.

``pyinfra_cli.inventory.make_inventory`` is what ``pyinfra INVENTORY ...`` runs, so groups,
``(hosts, data)`` groups, ``all`` data, ``group_data/`` files and the file-name group work
exactly as under pyinfra. It is CLI-internal: importing the ``pyinfra_cli`` package applies
gevent's ``monkey.patch_all()``; :func:`_make_inventory` imports it with that call disabled,
because the processes using this loader (the ``runbook`` CLI, the testinfra suite) run
ansible-runner, paramiko and httpx on the plain standard library (``ssl`` is long imported,
patching it late is unsafe). ``tests/unit/inventories/test_loader.py`` fails when a pyinfra
upgrade breaks this wrapper.

Validation happens once per run. Inventory files end with
:func:`inventories.schema.check_inventory` (so ``pyinfra`` stops before connecting); while
:func:`load_validated` loads a file, that call is deferred
(:func:`inventories.schema.deferred_validation`) and the loader validates each host once, with
the data pyinfra merged (group data included).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventories.schema import HostSettings, InventoryError, build_settings, deferred_validation

__all__ = ["LoadedHost", "load_hosts", "load_validated", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LoadedHost:
    """One host as pyinfra's loader sees it.

    + name: inventory host name
    + groups: its groups (inventory order; pyinfra's file-name group, e.g. ``local``, included)
    + data: its merged host data (group data and ``all`` data included)
    """

    name: str
    groups: tuple[str, ...]
    data: dict[str, Any]


def _make_inventory():
    """``pyinfra_cli.inventory.make_inventory``, imported without gevent's ``patch_all``."""
    if "pyinfra_cli" not in sys.modules:
        from gevent import monkey

        patch_all = monkey.patch_all
        monkey.patch_all = lambda *args, **kwargs: None
        try:
            import pyinfra_cli  # noqa: F401
        finally:
            monkey.patch_all = patch_all
    from pyinfra_cli.inventory import make_inventory

    return make_inventory


def _forget_compiled(path: str) -> None:
    """pyinfra's ``exec_file`` caches compiled files by name for the process's lifetime
    (``pyinfra_cli.util.PYTHON_CODES``): drop ``path`` so a changed file is read again."""
    from pyinfra_cli import util

    util.PYTHON_CODES.pop(path, None)  # an AttributeError after a pyinfra upgrade: see test_loader.py


def load_hosts(path: str | Path, cwd: str | Path | None = None) -> list[LoadedHost]:
    """Load inventory file ``path`` like ``pyinfra <path> ...`` does; hosts in inventory order.

    ``cwd``: where pyinfra looks for ``group_data/`` (default: the repository root). Raises
    ``FileNotFoundError`` for a missing file; errors raised by the inventory code propagate
    unwrapped (``SystemExit`` from ``check_inventory``, :class:`InventoryError`, ...).
    """
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inventory file not found: {path}")
    state = State()
    state.cwd = str(cwd or REPO_ROOT)
    if str(REPO_ROOT) not in sys.path:  # inventory files import `inventories.schema`, as under pyinfra
        sys.path.insert(0, str(REPO_ROOT))
    make_inventory = _make_inventory()
    _forget_compiled(str(path))
    try:
        with ctx_state.use(state):
            inventory = make_inventory(str(path), cwd=state.cwd)
    except Exception as e:
        inner = getattr(e, "exception", None)  # pyinfra_cli's UnexpectedExternalError wraps the inventory's own error
        if isinstance(inner, BaseException):
            raise inner from None
        raise
    return [LoadedHost(h.name, tuple(str(g) for g in h.groups), dict(h.data.dict())) for h in inventory]


def load_validated(path: str | Path, cwd: str | Path | None = None) -> list[tuple[LoadedHost, HostSettings]]:
    """:func:`load_hosts`, then each host validated once into :class:`HostSettings`.

    Raises :class:`InventoryError` (one line: host + field) for the first bad host, or when no
    host is in group ``app``; ``FileNotFoundError`` for a missing file; ``SystemExit`` when the
    inventory itself stops (e.g. the local harness state is missing).
    """
    with deferred_validation():
        hosts = load_hosts(path, cwd)
    if not any("app" in h.groups for h in hosts):
        raise InventoryError(None, "app", "the inventory has no host in group 'app'")
    return [(h, build_settings(h.name, h.data, h.groups)) for h in hosts]
