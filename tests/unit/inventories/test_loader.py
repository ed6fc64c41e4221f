"""The one inventory loader (inventories/loader.py) on pyinfra's own make_inventory.

These tests pin what the wrapper relies on in pyinfra's CLI-internal loader: group shapes,
group_data files, the file-name group, the unwrapping of errors raised by inventory code, and
the import without gevent's monkey-patching. A pyinfra upgrade that changes any of it fails here.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from inventories.loader import load_hosts, load_validated
from inventories.schema import SECRET_NAMES, InventoryError
from runbooks.core.errors import TargetError
from runbooks.engine.targets import load_inventory

STRONG = {name: f"{name[:3]}-Zq7x0123456789abcdefghijklmnop" for name in SECRET_NAMES}  # no weak word (secret_policy)
IMAGES = {"order_service": "r.example.com/o/s:1", "postgres": "postgres:15.10", "redis": "redis:7.2.6", "nginx": "nginx:1.26.2"}


@pytest.fixture
def project(tmp_path):
    """A directory with an inventory file, a group_data/ folder and a 0600 secrets file."""
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps(STRONG))
    os.chmod(secrets, 0o600)
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "app.py").write_text(textwrap.dedent(f"""
        environment = "production"
        domain = "orders.example.com"
        secrets_file = {str(secrets)!r}
        images = {IMAGES!r}
    """))
    return tmp_path


def _write(project, body: str):
    inv = project / "inv.py"
    inv.write_text(textwrap.dedent(body))
    return inv


def test_group_shapes_group_data_and_file_group(project):
    inv = _write(project, """
        app = [("web-1", {"ssh_hostname": "192.0.2.10"}), "web-2"]
        controller = (["ops-1"], {"service_workers": 3})
        _private = ["not-a-group"]
    """)
    hosts = {h.name: h for h in load_hosts(inv, cwd=project)}
    assert list(hosts) == ["web-1", "web-2", "ops-1"]
    assert "app" in hosts["web-1"].groups and "inv" in hosts["web-1"].groups  # pyinfra's file-name group
    assert hosts["web-1"].data["ssh_hostname"] == "192.0.2.10"
    assert hosts["web-2"].data["domain"] == "orders.example.com"  # group_data/app.py
    assert hosts["ops-1"].data["service_workers"] == 3 and "controller" in hosts["ops-1"].groups
    assert "domain" not in hosts["ops-1"].data


def test_loader_does_not_monkey_patch_the_standard_library(project):
    load_hosts(_write(project, 'app = ["web-1"]\n'), cwd=project)
    from gevent import monkey

    assert not monkey.is_module_patched("socket") and not monkey.is_module_patched("ssl")


def test_validation_is_deferred_and_done_once_on_merged_data(project, monkeypatch):
    # check_inventory sees raw tuples without group data: it would fail; the loader validates the
    # merged data (group_data/app.py supplies the required fields) exactly once per host
    inv = _write(project, """
        from inventories.schema import check_inventory
        app = [("web-1", {"ssh_hostname": "192.0.2.10"})]
        check_inventory({"app": app})
    """)
    import inventories.loader as loader

    calls = []
    real = loader.build_settings
    monkeypatch.setattr(loader, "build_settings", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    [(host, settings)] = load_validated(inv, cwd=project)
    assert calls == ["web-1"]
    assert settings.domain == "orders.example.com" and "app" in settings.groups


def test_errors_of_inventory_code_come_back_unwrapped(project):
    inv = _write(project, "raise KeyError('hosts.json')\n")
    with pytest.raises(KeyError):
        load_hosts(inv, cwd=project)
    with pytest.raises(FileNotFoundError):
        load_hosts(project / "missing.py")


def test_bad_inventory_is_one_line_naming_host_and_field(project):
    inv = _write(project, 'app = [("web-1", {"domain": "not a domain"})]\n')
    with pytest.raises(InventoryError):
        load_validated(inv, cwd=project)
    with pytest.raises(TargetError) as e:
        load_inventory(inv)
    assert "\n" not in str(e.value) and "host 'web-1'" in str(e.value) and "domain" in str(e.value)
    stop = _write(project, 'raise SystemExit("orderops: inventory error: /x/hosts.json: missing: run `make hosts-up`")\n')
    with pytest.raises(TargetError, match=r"^inventory error: /x/hosts.json: missing"):
        load_inventory(stop)


def test_an_inventory_without_app_hosts_is_refused(project):
    with pytest.raises(InventoryError, match="no host in group 'app'"):
        load_validated(_write(project, 'controller = ["ops-1"]\n'), cwd=project)
