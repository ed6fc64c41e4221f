"""The controller role's pure parts (inventory for the controller host, units, bundle key) and
the shared running version (release record -> effective settings)."""

from __future__ import annotations

import ast

from deploys.facts.release import parse_release
from deploys.roles.controller import controller_host_data, render_inventory, source_key, unit_texts
from deploys.roles.order_stack import compose_text, effective_settings

DATA = {
    "ssh_hostname": "127.0.0.1", "ssh_port": 2201, "ssh_user": "deploy", "ssh_key": "/home/me/.orderops/keys/id",
    "ssh_strict_host_key_checking": "no", "_sudo": True, "environment": "local", "domain": "order.test",
    "secrets_file": "/home/me/.orderops/secrets/local.json", "image_transport": "archive",
    "images": {"order_service": "orderops/order-service:1"}, "controller_address": "172.17.0.3",
    "compose_deb": "/home/me/cache/docker-compose_2.26.1-4_amd64.deb",
}


def test_app_host_as_the_controller_host_sees_it():
    d = controller_host_data("app-1", DATA, "/opt/orderops-runbooks")
    assert (d["ssh_hostname"], d["ssh_port"], d["ssh_user"]) == ("172.17.0.3", 22, "deploy")
    assert d["ssh_key"] == "/opt/orderops-runbooks/keys/controller_ed25519"
    assert d["secrets_file"] == "/opt/orderops-runbooks/secrets/app-1.json"
    assert d["compose_deb"] == "/opt/orderops-runbooks/cache/docker-compose_2.26.1-4_amd64.deb"
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


def test_units_carry_the_calendar_and_persistent(make_settings):
    s = make_settings(groups=("controller",), runbook_schedules={"daily": "*-*-* 05:30:00"},
                      runbook_webhook_url="http://127.0.0.1:9000/h", runbook_schedule_args={"daily": ["-p", "drift=false"]})
    service, timer = unit_texts(s, "daily", s.runbook_schedules["daily"], "/home/deploy")
    assert "OnCalendar=*-*-* 05:30:00" in timer and "Persistent=true" in timer
    assert "Unit=orderops-runbook-daily.service" in timer
    exec_line = next(l for l in service.splitlines() if l.startswith("ExecStart="))
    assert exec_line == ("ExecStart=/opt/orderops-runbooks/venv/bin/runbook run daily -i /opt/orderops-runbooks/inventory.py "
                         "--textfile-dir /var/lib/prometheus/node-exporter --webhook-url http://127.0.0.1:9000/h -p drift=false")
    assert "User=deploy" in service and "Type=oneshot" in service


def test_bundle_key_follows_sources(tmp_path):
    for d in ("deploys", "inventories", "templates", "runbooks"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "a.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    deps1, key1 = source_key(tmp_path)
    (tmp_path / "runbooks" / "__pycache__").mkdir()
    (tmp_path / "runbooks" / "__pycache__" / "a.pyc").write_bytes(b"junk")
    assert source_key(tmp_path) == (deps1, key1)
    (tmp_path / "runbooks" / "a.py").write_text("x = 2\n")
    deps2, key2 = source_key(tmp_path)
    assert deps2 == deps1 and key2 != key1
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert source_key(tmp_path)[0] != deps1


def test_release_record_parsing():
    assert parse_release("") is None
    assert parse_release("not json") is None
    assert parse_release('{"other": 1}') is None
    assert parse_release('{"order_service": "a/b:2", "inventory_ref": "a/b:1"}')["order_service"] == "a/b:2"


def test_effective_settings_keeps_a_redeployed_version(make_settings):
    s = make_settings()
    inv_ref = s.images.order_service
    new = inv_ref.rsplit(":", 1)[0] + ":0.2.0"
    eff = effective_settings(s, {"order_service": new, "inventory_ref": inv_ref})
    assert eff.images.order_service == new and f"image: {new}" in compose_text(eff)
    # the inventory moved on: a new deliberate release wins over the record
    assert effective_settings(s, {"order_service": new, "inventory_ref": "other/ref:9"}) is s
    # no record, or a broken one: the inventory's
    assert effective_settings(s, None) is s
    assert effective_settings(s, {"order_service": "bad ref!", "inventory_ref": inv_ref}).images.order_service == inv_ref


def test_controller_verifies_app_host_keys_against_its_own_file():
    from deploys.roles.controller import known_hosts_text

    d = controller_host_data("app-1", {**DATA, "ssh_strict_host_key_checking": "yes", "ssh_known_hosts_file": "/home/me/kh"}, "/opt/r")
    assert d["ssh_known_hosts_file"] == "/opt/r/known_hosts" and d["ssh_strict_host_key_checking"] == "yes"
    text = known_hosts_text([("172.17.0.3", 22, "ssh-ed25519 AAAAkey root@h\nssh-rsa AAAArsa\n"), ("10.0.0.9", 2222, "ssh-ed25519 BBBB")])
    assert text == "172.17.0.3 ssh-ed25519 AAAAkey\n172.17.0.3 ssh-rsa AAAArsa\n[10.0.0.9]:2222 ssh-ed25519 BBBB\n"
