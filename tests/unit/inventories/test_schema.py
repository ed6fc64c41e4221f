"""Inventory validation: good data passes, every bad field is named, secrets never leak."""

import json
import os
import stat

import pytest

from inventories.schema import SECRET_NAMES, InventoryError, build_settings, load_secrets, validate_groups
from deploys.contract.paths import STACK_DIR

#: strong by the shared policy: no weak word (the names hold "password", "secret", "admin")
STRONG = {name: f"{name[:3]}-Zq7x0123456789abcdefghijklmnop" for name in SECRET_NAMES}


@pytest.fixture
def secrets_file(tmp_path):
    def make(values=STRONG, mode=0o600):
        path = tmp_path / "secrets.json"
        path.write_text(json.dumps(values))
        os.chmod(path, mode)
        return path

    return make


@pytest.fixture
def data(secrets_file):
    return {
        "ssh_hostname": "192.0.2.10",
        "ssh_user": "deploy",
        "_sudo": True,
        "environment": "production",
        "domain": "orders.example.com",
        "secrets_file": str(secrets_file()),
        "images": {
            "order_service": "registry.example.com/orderops/order-service:0.1.0",
            "postgres": "postgres:15.10",
            "redis": "redis:7.2.6",
            "nginx": "nginx@sha256:" + "a" * 64,
        },
    }


def test_valid_data_gives_settings_with_defaults(data):
    s = build_settings("app-1", data, ["app"])
    assert s.host == "app-1" and s.groups == ("app",)
    assert s.stack_dir == STACK_DIR
    assert s.firewall_allow_tcp == (22, 80, 443)
    assert s.public_https_url == "https://orders.example.com"
    assert s.secrets.postgres_password.get_secret_value() == STRONG["postgres_password"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "Orders.Example.com"}, "domain"),
        ({"environment": "prodution"}, "environment"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"docker_log_max_size": "10 MB"}, "docker_log_max_size"),
        ({"docker_log_max_file": 0}, "docker_log_max_file"),
        ({"stack_dir": "relative/dir"}, "stack_dir"),
        ({"firewall_allow_tcp": [80, 443]}, "firewall_allow_tcp"),
        ({"firewall_allow_tcp": [22, 70000]}, "firewall_allow_tcp"),
        ({"image_transport": "carrier-pigeon"}, "image_transport"),
        ({"compose_source": "deb-file"}, "compose_deb"),
        ({"imags": {}}, "imags"),
    ],
)
def test_bad_field_is_named(data, override, field):
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", {**data, **override})
    assert e.value.host == "app-1"
    assert e.value.field == field
    assert "app-1" in str(e.value) and field in str(e.value)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nginx", "no tag"),
        ("nginx:latest", "mutable"),
        ("Nginx:1.0", "not a valid image reference"),
    ],
)
def test_image_refs_must_be_immutable(data, ref, message):
    data["images"] = {**data["images"], "nginx": ref}
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", data)
    assert e.value.field == "images.nginx"
    assert message in e.value.message


@pytest.mark.parametrize(
    "ref",
    ["postgres:16", "redis:7", "registry.example.com:5000/team/app:1.2.3", "localhost:5000/app:1",
     "app@sha256:" + "b" * 64, "registry.example.com/app:1.0@sha256:" + "c" * 64],
)
def test_valid_image_refs(data, ref):
    data["images"] = {**data["images"], "postgres": ref}
    assert build_settings("app-1", data).images.postgres == ref


def test_registry_port_is_not_a_tag(data):
    data["images"] = {**data["images"], "postgres": "localhost:5000/app"}
    with pytest.raises(InventoryError, match="no tag or digest"):
        build_settings("app-1", data)


def test_missing_image_role_is_named(data):
    del data["images"]["redis"]
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", data)
    assert e.value.field == "images.redis"
    assert "missing" in e.value.message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("redis_password", "qzX81", "shorter than 24"),
        ("secret_key", "xx-changethis-Zq7-0123456789", "weak word"),
        # accepted by the old inventory rules, refused by the service at start (issue 10)
        ("postgres_password", "postgres-6f2c9a1e8b7d4c3f90ab", "weak word"),
        ("secret_key", "a" * 30, "distinct characters"),
        ("admin_password", "Hunter2!", "shorter than 24"),
    ],
)
def test_weak_secrets_refused_outside_local_and_not_echoed(data, secrets_file, name, value, message):
    data["secrets_file"] = str(secrets_file({**STRONG, name: value}))
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", data)
    assert e.value.field == f"secrets.{name}"
    assert message in e.value.message
    assert value not in str(e.value)


def test_default_secret_refused_even_when_long(data, secrets_file):
    data["secrets_file"] = str(secrets_file({**STRONG, "postgres_password": "changeme"}))
    with pytest.raises(InventoryError):
        build_settings("app-1", data)


def test_weak_secrets_allowed_for_local(data, secrets_file):
    data["secrets_file"] = str(secrets_file({**STRONG, "redis_password": "short"}))
    data["environment"] = "local"
    assert build_settings("app-1", data).environment == "local"


#: every printable character, the ones that break naive quoting included
SPECIAL = "q'd\"b\\s$e`h# é-Zq7x0123456789abcdef"


def test_secrets_with_every_printable_character_accepted(data, secrets_file):
    data["secrets_file"] = str(secrets_file({**STRONG, "secret_key": SPECIAL, "postgres_password": SPECIAL + "1"}))
    s = build_settings("app-1", data)
    assert s.secrets.secret_key.get_secret_value() == SPECIAL


@pytest.mark.parametrize("bad", ["abc\ndef0123456789012345678901", "abc\tdef0123456789012345678901", "abc\x00def012345678901234567"])
def test_secrets_with_control_characters_refused_without_echo(data, secrets_file, bad):
    data["secrets_file"] = str(secrets_file({**STRONG, "secret_key": bad}))
    data["environment"] = "local"  # a format problem is refused in every environment
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", data)
    assert e.value.field == "secrets.secret_key"
    assert "printable" in e.value.message
    assert bad not in str(e.value)


@pytest.mark.parametrize(
    "value",
    ["postgres-6f2c9a1e8b7d4c3f90ab", "short-but-random-Zq9", "a" * 30, "ab" * 15, "Zq7-DEFAULT-0123456789abcd",
     SPECIAL, "q8Zr2LmX0vT5nB7cW4yK1pH9sD6fJ3gA", "x" * 23 + "y", "line\nbreak-0123456789abcdef"],
)
def test_inventory_and_service_agree_on_every_secret(data, secrets_file, value):
    """One policy: the inventory refuses exactly what the service refuses at container start."""
    pydantic_settings = pytest.importorskip("pydantic_settings")  # noqa: F841 - the service's settings need it
    from pydantic import ValidationError

    from order_service.core.config import Settings

    try:
        Settings(ENVIRONMENT="production", SECRET_KEY=value, POSTGRES_PASSWORD=STRONG["postgres_password"],
                 REDIS_PASSWORD=STRONG["redis_password"])
        service_ok = True
    except ValidationError:
        service_ok = False
    data["secrets_file"] = str(secrets_file({**STRONG, "secret_key": value}))
    try:
        build_settings("app-1", data)
        inventory_ok = True
    except InventoryError:
        inventory_ok = False
    assert inventory_ok == service_ok


def test_secret_file_must_be_0600(data, secrets_file):
    data["secrets_file"] = str(secrets_file(mode=0o644))
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", data)
    assert e.value.field == "secrets_file" and "0600" in e.value.message


def test_missing_secret_file_and_missing_secret(data, secrets_file, tmp_path):
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", {**data, "secrets_file": str(tmp_path / "nope.json")})
    assert e.value.field == "secrets_file"
    partial = {k: v for k, v in STRONG.items() if k != "admin_password"}
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", {**data, "secrets_file": str(secrets_file(partial))})
    assert e.value.field == "secrets.admin_password"


def test_unknown_secret_and_env_override(secrets_file, monkeypatch):
    with pytest.raises(InventoryError) as e:
        load_secrets(secrets_file({**STRONG, "pasword": "x" * 30}), "h")
    assert e.value.field == "secrets.pasword"
    path = secrets_file()
    values = load_secrets(path, "h", env={"ORDEROPS_SECRET_REDIS_PASSWORD": "from-env-" + "x" * 20})
    assert values["redis_password"].startswith("from-env-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_settings_repr_hides_secrets(data):
    s = build_settings("app-1", data)
    text = repr(s) + str(s.model_dump())
    for value in STRONG.values():
        assert value not in text


def test_validate_groups_requires_app_and_consistent_hosts(data):
    with pytest.raises(InventoryError) as e:
        validate_groups({"app": [], "controller": [("c", data)]})
    assert e.value.field == "app"
    with pytest.raises(InventoryError) as e:
        validate_groups({"app": [("h", data)], "controller": [("h", {**data, "domain": "other.example.com"})]})
    assert e.value.host == "h"
    result = validate_groups({"app": [("h", data)], "controller": [("h", data)]})
    assert result["h"].groups == ("app", "controller")


def test_prod_example_inventory_validates_with_a_secrets_file(secrets_file, monkeypatch):
    import runpy
    from pathlib import Path

    monkeypatch.setenv("ORDEROPS_SECRETS_FILE", str(secrets_file()))
    root = Path(__file__).resolve().parents[3]
    ns = runpy.run_path(str(root / "inventories" / "prod.py"))  # as pyinfra runs it: validated at the bottom
    assert [name for name, _ in ns["app"]] == ["app-1.example.com"]
    from inventories.loader import load_validated

    loaded = {h.name: s for h, s in load_validated(root / "inventories" / "prod.py")}
    assert loaded["app-1.example.com"].environment == "production" and "controller" in loaded["ops-1.example.com"].groups
    monkeypatch.setenv("ORDEROPS_SECRETS_FILE", "/nonexistent/secrets.json")
    with pytest.raises(SystemExit, match="orderops: inventory error: host 'app-1.example.com': secrets_file"):
        runpy.run_path(str(root / "inventories" / "prod.py"))


def test_all_secrets_from_environment_need_no_file(data, monkeypatch, tmp_path):
    for name, value in STRONG.items():
        monkeypatch.setenv(f"ORDEROPS_SECRET_{name.upper()}", value)
    s = build_settings("app-1", {**data, "secrets_file": str(tmp_path / "absent.json")})
    assert s.secrets.redis_password.get_secret_value() == STRONG["redis_password"]
    monkeypatch.delenv("ORDEROPS_SECRET_REDIS_PASSWORD")
    with pytest.raises(InventoryError, match="file not found"):
        build_settings("app-1", {**data, "secrets_file": str(tmp_path / "absent.json")})


def test_broken_json_reports_position_not_content(data, secrets_file):
    path = secrets_file()
    path.write_text('{"postgres_password": "s3cr3t-value-in-broken-json"')
    with pytest.raises(InventoryError) as e:
        build_settings("app-1", data)
    assert "line 1" in e.value.message and "s3cr3t" not in str(e.value)


def test_harness_fields_are_not_settings(data):
    """The test harness's own keys pass through (tests read them from host data); production
    fields replace the old harness-only URLs."""
    s = build_settings("app-1", {**data, "testhost_ip": "172.17.0.3", "testhost_container": "oe-1",
                                 "controller_address": "172.17.0.3", "probe_https_url": "https://127.0.0.1:2443"}, ["app"])
    assert not hasattr(s, "testhost_ip") and s.controller_address == "172.17.0.3"
    assert s.public_https_url == "https://127.0.0.1:2443" and s.public_http_url == "http://orders.example.com"
    for old in ("https_url", "http_url"):
        with pytest.raises(InventoryError, match=f"{old}: unknown key"):
            build_settings("app-1", {**data, old: "https://x"}, ["app"])
    with pytest.raises(InventoryError, match="probe_https_url"):
        build_settings("app-1", {**data, "probe_https_url": "http://x/path"}, ["app"])
