"""testinfra suite: checks deployed hosts against the inventory that describes them.

Runs against any pyinfra inventory of orderops (``app``, ``controller`` and ``monitoring`` groups)::

    pytest tests/infra                                   # inventories/local.py
    pytest tests/infra --inventory inventories/prod.py -m "not disruptive"

The inventory file is loaded the way pyinfra's CLI loads it (``inventories.loader``), each
host's data is validated by ``inventories.schema`` (defaults included), and every test that asks
for ``app_host``, ``monitoring_host`` or ``any_host`` runs once per host of that group (test ids are host names).
Hosts are reached with testinfra's paramiko backend, as the inventory's ``ssh_*`` data says, with
sudo and without host-key checking. An inventory without hosts skips the tests, with the reason.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # inventories import `inventories.schema`, as under pyinfra
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_INVENTORY = "inventories/local.py"

#: host fixture -> inventory group whose hosts it runs over (None: every host)
HOST_FIXTURES = {"app_host": "app", "any_host": None, "app_name": "app", "monitoring_host": "monitoring"}

_INVENTORY_KEY = pytest.StashKey["LoadedInventory"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--inventory``: the pyinfra inventory file whose hosts are checked."""
    parser.getgroup("orderops").addoption(
        "--inventory",
        default=None,
        help=f"pyinfra inventory file of the hosts to check (default: {DEFAULT_INVENTORY})",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register this suite's markers (``-m "not disruptive"``) and load the inventory, so a bad
    ``--inventory`` stops the run with one usage error."""
    config.addinivalue_line(
        "markers",
        "disruptive: restarts services on the host (deselect with -m 'not disruptive')",
    )
    if not config.getoption("help", default=False):
        _inventory(config)


@dataclass(frozen=True)
class InventoryHost:
    """One host as the inventory file defines it: name, groups and merged pyinfra data."""

    name: str
    groups: tuple[str, ...]
    data: dict[str, Any]


@dataclass
class LoadedInventory:
    """The inventory file and its hosts; ``problem`` says why there are none, if so."""

    path: str
    hosts: list[InventoryHost] = field(default_factory=list)
    problem: str | None = None

    def names(self, group: str | None) -> list[str]:
        """Host names of ``group`` (every host for ``None``), in inventory order."""
        return [h.name for h in self.hosts if group is None or group in h.groups]

    def get(self, name: str) -> InventoryHost:
        """The host called ``name``."""
        return next(h for h in self.hosts if h.name == name)


def load_inventory(path: str) -> list[InventoryHost]:
    """Load a pyinfra inventory file like ``pyinfra <inventory> ...`` does (group data included),
    through the project's one loader (:func:`inventories.loader.load_hosts`)."""
    from inventories.loader import load_hosts

    return [InventoryHost(h.name, h.groups, h.data) for h in load_hosts(path, cwd=REPO_ROOT)]


def _inventory(config: pytest.Config) -> LoadedInventory:
    if _INVENTORY_KEY in config.stash:
        return config.stash[_INVENTORY_KEY]

    explicit = config.getoption("inventory", default=None)
    path = explicit or DEFAULT_INVENTORY
    resolved = Path(path) if Path(path).is_absolute() or Path(path).exists() else REPO_ROOT / path
    loaded = LoadedInventory(str(path))

    if not resolved.is_file():
        if explicit:
            raise pytest.UsageError(f"--inventory {path}: no such file")
        loaded.problem = f"no inventory at {path} (start local hosts, or pass --inventory)"
    else:
        try:
            loaded.hosts = load_inventory(str(resolved))
        except Exception as e:
            # the loader re-raises the inventory's own error (e.g. an InventoryError naming host and field)
            message = f"cannot load inventory {path}: {type(e).__name__}: {e}"
            if explicit:
                raise pytest.UsageError(message) from e
            # The default local inventory fails while no local hosts are up: skip, saying why.
            loaded.problem = message
        else:
            if not loaded.hosts:
                loaded.problem = f"inventory {path} has no hosts"

    config.stash[_INVENTORY_KEY] = loaded
    return loaded


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses a host fixture once per host of that fixture's group."""
    for fixture, group in HOST_FIXTURES.items():
        if fixture not in metafunc.fixturenames:
            continue
        inventory = _inventory(metafunc.config)
        names = inventory.names(group)
        if names:
            metafunc.parametrize(fixture, names, ids=names, indirect=True)
        else:
            reason = inventory.problem or f"inventory {inventory.path} has no hosts in group {group!r}"
            metafunc.parametrize(
                fixture,
                [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
                ids=["no-hosts"],
                indirect=True,
            )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run disruptive tests (service restarts) after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session")
def orderops_inventory(pytestconfig: pytest.Config) -> LoadedInventory:
    """The loaded ``--inventory``."""
    return _inventory(pytestconfig)


@pytest.fixture(scope="session")
def ssh_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ssh_config for paramiko that turns host-key checking off (test hosts are recreated)."""
    path = tmp_path_factory.mktemp("ssh") / "config"
    path.write_text("Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n")
    return path


def _ssh_key_path(key: str | None) -> str | None:
    if not key:
        return None
    path = Path(os.path.expanduser(key))
    return str(path if path.is_absolute() else REPO_ROOT / path)


def testinfra_host_for(host: InventoryHost, ssh_config: Path):
    """A testinfra host reaching ``host`` over paramiko as its ``ssh_*`` data says, with sudo."""
    import testinfra

    data = host.data
    hostname = str(data.get("ssh_hostname") or host.name)
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    port = int(data.get("ssh_port") or 22)
    user = data.get("ssh_user") or getpass.getuser()
    return testinfra.get_host(
        f"paramiko://{user}@{hostname}:{port}",
        ssh_config=str(ssh_config),
        ssh_identity_file=_ssh_key_path(data.get("ssh_key")),
        sudo=user != "root",
        timeout=30,
    )


def _host_fixture(request: pytest.FixtureRequest, inventory: LoadedInventory, ssh_config: Path):
    return testinfra_host_for(inventory.get(request.param), ssh_config)


@pytest.fixture
def app_host(request, orderops_inventory, ssh_config_file):
    """testinfra host of each ``app`` host (runs the order stack); the test runs once per host."""
    return _host_fixture(request, orderops_inventory, ssh_config_file)


@pytest.fixture
def monitoring_host(request, orderops_inventory, ssh_config_file):
    """testinfra host of each ``monitoring`` host (runs the monitoring project); once per host."""
    return _host_fixture(request, orderops_inventory, ssh_config_file)


@pytest.fixture
def any_host(request, orderops_inventory, ssh_config_file):
    """testinfra host of each host of the inventory; the test runs once per host."""
    return _host_fixture(request, orderops_inventory, ssh_config_file)


@pytest.fixture
def app_name(request) -> str:
    """Inventory name of each ``app`` host, for tests that only talk to it from the test machine."""
    return request.param


@pytest.fixture
def host_name(request: pytest.FixtureRequest) -> str:
    """Inventory name of the host the current test runs against."""
    params = request.node.callspec.params
    for fixture in HOST_FIXTURES:
        if fixture in params:
            return params[fixture]
    raise pytest.UsageError(f"{request.node.nodeid} uses no host fixture ({', '.join(HOST_FIXTURES)})")


_SETTINGS_CACHE: dict[str, Any] = {}


@pytest.fixture
def settings(host_name: str, orderops_inventory: LoadedInventory):
    """Validated ``inventories.schema.HostSettings`` of the current host (secrets stay hidden)."""
    from inventories.schema import build_settings

    if host_name not in _SETTINGS_CACHE:
        host = orderops_inventory.get(host_name)
        _SETTINGS_CACHE[host_name] = build_settings(host.name, host.data, host.groups)
    return _SETTINGS_CACHE[host_name]


@pytest.fixture
def api(settings):
    """An HTTPS client for the host's nginx as the test machine reaches it (``https_url``).

    The local certificate is self-signed, hence ``verify=False``; ``Host`` is the domain.
    """
    import httpx

    with httpx.Client(
        base_url=settings.public_https_url,
        headers={"Host": settings.domain},
        verify=False,
        timeout=15,
        trust_env=settings.environment != "local",  # no corporate proxy for 127.0.0.1
    ) as client:
        yield client
