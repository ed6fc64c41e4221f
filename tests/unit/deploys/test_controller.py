"""The controller role's pure parts: inventory for the controller host, units, bundle key."""

from __future__ import annotations

import ast

from deploys.contract.paths import RUNBOOK_DIR

from deploys.roles.controller.inventory_export import controller_host_data, render_inventory
from deploys.roles.controller.units import unit_texts
from deploys.roles.controller.wheelhouse import source_key

DATA = {
    "ssh_hostname": "127.0.0.1", "ssh_port": 2201, "ssh_user": "deploy", "ssh_key": "/home/me/.orderops/keys/id",
    "ssh_strict_host_key_checking": "no", "_sudo": True, "environment": "local", "domain": "order.test",
    "secrets_file": "/home/me/.orderops/secrets/local.json", "image_transport": "archive",
    "images": {"order_service": "orderops/order-service:1"}, "controller_address": "172.17.0.3",
    "compose_deb": "/home/me/cache/docker-compose_2.26.1-4_amd64.deb",
    "acme_ca_bundle": "/home/me/pebble/ca.pem", "backup_s3_credentials_file": "/home/me/.config/s3.json",
    "web_artifact": "/home/me/orderops/.orderops/cache/web/abc", "controller_ssh_key": "/home/me/.ssh/ctl",
}


def test_app_host_as_the_controller_host_sees_it():
    d = controller_host_data("app-1", DATA, RUNBOOK_DIR)
    assert (d["ssh_hostname"], d["ssh_port"], d["ssh_user"]) == ("172.17.0.3", 22, "deploy")
    assert d["ssh_key"] == f"{RUNBOOK_DIR}/keys/controller_ed25519"
    assert d["secrets_file"] == f"{RUNBOOK_DIR}/secrets/app-1.json"
    # every deploy-machine path points at the controller role's copy, a directory is dropped
    files = f"{RUNBOOK_DIR}/files/app-1"
    assert d["compose_deb"] == f"{files}/compose_deb/docker-compose_2.26.1-4_amd64.deb"
    assert d["acme_ca_bundle"] == f"{files}/acme_ca_bundle/ca.pem"
    assert d["backup_s3_credentials_file"] == f"{files}/backup_s3_credentials_file/s3.json"
    assert "web_artifact" not in d and "controller_ssh_key" not in d
    assert d["probe_https_url"] == "https://172.17.0.3" and d["image_transport"] == "registry"
    assert "/home/me" not in repr(d)


def test_production_host_keeps_its_address():
    prod = {"ssh_hostname": "203.0.113.10", "ssh_user": "ops", "environment": "production", "image_transport": "registry"}
    d = controller_host_data("web-1", prod, "/opt/r")
    assert (d["ssh_hostname"], d["ssh_port"], d["ssh_user"], d["image_transport"]) == ("203.0.113.10", 22, "ops", "registry")
    assert "probe_https_url" not in d


def test_rendered_inventory_is_python_and_deterministic():
    hosts = [("app-1", controller_host_data("app-1", DATA, "/opt/r"))]
    text = render_inventory(hosts)
    assert text == render_inventory(hosts)
    tree = ast.parse(text)
    assigned = [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)]
    assert assigned == ["app"]
    assert 'check_inventory({"app": app})' in text


def test_rendered_inventory_keeps_the_monitoring_group():
    """A monitoring app host's vhost serves /grafana/: the controller host's drift check must
    render it in the same groups, or it reports that vhost as drift."""
    hosts = [(n, controller_host_data(n, DATA, "/opt/r")) for n in ("app-1", "app-2")]
    text = render_inventory(hosts, {"app": ["app-1", "app-2"], "monitoring": ["app-2"], "controller": ["app-1"]})
    scope: dict = {}
    exec(compile(text.replace("check_inventory(", "groups = ("), "inv", "exec"), scope)
    assert [n for n, _ in scope["groups"]["monitoring"]] == ["app-2"]
    assert set(scope["groups"]) == {"app", "monitoring"}


def test_units_carry_the_calendar_and_persistent(make_settings):
    s = make_settings(groups=("controller",), runbook_schedules={"daily": "*-*-* 05:30:00"},
                      runbook_webhook_url="http://127.0.0.1:9000/h", runbook_schedule_args={"daily": ["-p", "drift=false"]})
    service, timer = unit_texts(s, "daily", s.runbook_schedules["daily"], "/home/deploy")
    assert "OnCalendar=*-*-* 05:30:00" in timer and "Persistent=true" in timer
    assert "Unit=orderops-runbook-daily.service" in timer
    exec_line = next(l for l in service.splitlines() if l.startswith("ExecStart="))
    assert exec_line == (f"ExecStart={RUNBOOK_DIR}/venv/bin/runbook run daily -i {RUNBOOK_DIR}/inventory.py "
                         "--textfile-dir /var/lib/prometheus/node-exporter --webhook-url http://127.0.0.1:9000/h -p drift=false")
    assert "User=deploy" in service and "Type=oneshot" in service


def _source_tree(root):
    """A minimal project tree that ``source_key`` hashes: one module per source folder + pyproject."""
    for d in ("deploys", "inventories", "templates", "runbooks"):
        (root / d).mkdir()
        (root / d / "a.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text("[project]\n")


def test_bundle_key_follows_sources(tmp_path):
    _source_tree(tmp_path)
    deps1, key1 = source_key(tmp_path)
    (tmp_path / "runbooks" / "__pycache__").mkdir()
    (tmp_path / "runbooks" / "__pycache__" / "a.pyc").write_bytes(b"junk")
    assert source_key(tmp_path) == (deps1, key1)
    (tmp_path / "runbooks" / "a.py").write_text("x = 2\n")
    deps2, key2 = source_key(tmp_path)
    assert deps2 == deps1 and key2 != key1
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert source_key(tmp_path)[0] != deps1


def test_exported_host_data_is_the_inventory_files_without_run_overrides():
    from pyinfra.api import Inventory

    from deploys.roles.controller.inventory_export import inventory_file_data

    inv = Inventory(
        (["app-1"], {"timezone": "UTC", "deploy_user": "all"}),
        override_data={"health_timeout": "30"},
        app=(["app-1"], {"deploy_user": "group", "domain": "a.example.com"}),
    )
    h = inv.get_host("app-1")
    assert h.data.health_timeout == "30"  # the run sees the override ...
    data = inventory_file_data(inv, h)
    assert "health_timeout" not in data  # ... the exported inventory does not
    assert (data["deploy_user"], data["domain"], data["timezone"]) == ("group", "a.example.com", "UTC")


def test_controller_verifies_app_host_keys_against_its_own_file():
    from deploys.roles.controller.inventory_export import known_hosts_text

    d = controller_host_data("app-1", {**DATA, "ssh_strict_host_key_checking": "yes", "ssh_known_hosts_file": "/home/me/kh"}, "/opt/r")
    assert d["ssh_known_hosts_file"] == "/opt/r/known_hosts" and d["ssh_strict_host_key_checking"] == "yes"
    text = known_hosts_text([("172.17.0.3", 22, "ssh-ed25519 AAAAkey root@h\nssh-rsa AAAArsa\n"), ("10.0.0.9", 2222, "ssh-ed25519 BBBB")])
    assert text == "172.17.0.3 ssh-ed25519 AAAAkey\n172.17.0.3 ssh-rsa AAAArsa\n[10.0.0.9]:2222 ssh-ed25519 BBBB\n"


def test_every_path_field_of_the_schema_is_classified():
    """A new Path field must say whether it names a deploy-machine path (or be listed here as a
    host path), or the controller host's inventory would carry a path that does not exist there."""
    import typing

    from inventories.schema import HostSettings, deploy_machine_paths

    host_paths = {"runbook_textfile_dir", "secrets_file"}  # paths on the host / resolved by the loader
    path_fields = {n for n, f in HostSettings.model_fields.items()
                   if "Path" in str(f.annotation) and n not in host_paths}
    assert path_fields == set(deploy_machine_paths()), typing.cast(str, path_fields ^ set(deploy_machine_paths()))


def test_controller_key_is_only_looked_up_and_generated_on_demand(make_settings, tmp_path):
    """Planning (the @deploy body) only looks the key up; ensure_controller_key (run by python.call at
    execution) makes the pair once, with real ssh-keygen."""
    from deploys.roles.controller.keys import controller_key, controller_key_path, ensure_controller_key

    settings = make_settings(groups=("app", "controller"), controller_ssh_key=str(tmp_path / "k" / "ctl"))
    path = controller_key_path(settings)
    assert path == tmp_path / "k" / "ctl"
    assert controller_key(settings) is None and not path.parent.exists()  # nothing made by looking
    assert ensure_controller_key(path) == path
    assert path.stat().st_mode & 0o777 == 0o600 and path.with_suffix(".pub").read_text().startswith("ssh-ed25519 ")
    first = path.read_bytes()
    assert ensure_controller_key(path) == path and path.read_bytes() == first  # never replaced
    assert controller_key(settings) == path


def test_bundle_path_is_where_build_bundle_puts_the_tarball(tmp_path):
    """The plan names the wheelhouse by key (bundle_path) without building; build_bundle reuses that file."""
    from deploys.roles.controller.wheelhouse import build_bundle, bundle_path

    _source_tree(tmp_path)
    _, key = source_key(tmp_path)
    cache = tmp_path / "cache"
    path = bundle_path(key, cache)
    assert not cache.exists()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"built before")
    assert build_bundle(tmp_path, cache) == (path, key)  # found by key: no pip run
