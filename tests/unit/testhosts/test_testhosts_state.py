"""State files: schema round-trip, validation, path overrides."""

import json

import pytest
from pydantic import ValidationError

from testhosts.state import HostEntry, HostsState, ImagesState, StatePaths, load_hosts, save_hosts, save_images, load_images


def sample_hosts(tmp_path) -> HostsState:
    return HostsState(
        ssh_key=str(tmp_path / "keys" / "id_ed25519"),
        compose_deb=str(tmp_path / "cache" / "debs" / "docker-compose_2.26.1-4_amd64.deb"),
        hosts=[
            HostEntry(name="orderops-1", container="orderops-1", ip="172.17.0.2", ssh_port=2201,
                      http_port=8081, https_port=8441, groups=["controller"]),
            HostEntry(name="orderops-2", container="orderops-2", ip="172.17.0.3", ssh_port=2202,
                      http_port=8082, https_port=8442, groups=["app"]),
        ],
    )


def test_paths_default_and_env_override(tmp_path):
    p = StatePaths.from_env({})
    assert p.root.name == ".orderops" and p.root.is_absolute()
    assert p.cache == p.root / "cache"
    p = StatePaths.from_env({"ORDEROPS_STATE_DIR": str(tmp_path / "st")})
    assert p.root == tmp_path / "st"
    assert p.hosts_json == tmp_path / "st" / "hosts.json"
    assert p.ssh_key == tmp_path / "st" / "keys" / "id_ed25519"
    assert p.secrets_file == tmp_path / "st" / "secrets" / "local.json"
    assert p.rootfs_dir() == tmp_path / "st" / "cache" / "rootfs-bookworm"
    p = StatePaths.from_env({"ORDEROPS_STATE_DIR": str(tmp_path / "st"), "ORDEROPS_CACHE_DIR": str(tmp_path / "c")})
    assert p.cache == tmp_path / "c" and p.debs_dir == tmp_path / "c" / "debs"


def test_hosts_round_trip(tmp_path):
    paths = StatePaths(root=tmp_path, cache=tmp_path / "cache")
    state = sample_hosts(tmp_path)
    save_hosts(paths, state)
    raw = json.loads(paths.hosts_json.read_text())
    assert raw["version"] == 1 and raw["suite"] == "bookworm" and raw["ssh_user"] == "deploy"
    assert list(raw["hosts"][0]) == ["name", "container", "ip", "ip6", "ssh_port", "http_port", "https_port", "groups"]
    assert load_hosts(paths) == state
    assert [h.name for h in state.group("app")] == ["orderops-2"]
    assert [h.name for h in state.group("controller")] == ["orderops-1"]


def test_hosts_validation(tmp_path):
    state = sample_hosts(tmp_path).model_dump()
    bad = json.loads(json.dumps(state))
    bad["hosts"][1]["ssh_port"] = 2201
    with pytest.raises(ValidationError, match="duplicate host ssh_port"):
        HostsState.model_validate(bad)
    bad = json.loads(json.dumps(state))
    bad["hosts"][0]["groups"] = ["web"]
    with pytest.raises(ValidationError):
        HostsState.model_validate(bad)
    bad = json.loads(json.dumps(state))
    bad["ssh_key"] = "keys/id_ed25519"
    with pytest.raises(ValidationError, match="absolute"):
        HostsState.model_validate(bad)
    bad = json.loads(json.dumps(state))
    bad["version"] = 2
    with pytest.raises(ValidationError):
        HostsState.model_validate(bad)


def test_images_round_trip_and_immutable_refs(tmp_path):
    paths = StatePaths(root=tmp_path, cache=tmp_path / "cache")
    refs = dict(target="orderops-local/target:bookworm-0123456789ab",
                postgres="orderops-local/postgres:15-0123456789ab",
                redis="orderops-local/redis:7-0123456789ab",
                nginx="orderops-local/nginx:1.22-0123456789ab",
                python="orderops-local/python:3.11-0123456789ab",
                order_service="orderops/order-service:0.1.0-0123456789ab",
                monitoring={"prometheus": "orderops-local/prometheus:2.42-0123456789ab"})
    save_images(paths, ImagesState(**refs))
    assert json.loads(paths.images_json.read_text()) == refs
    assert load_images(paths).order_service == refs["order_service"]
    with pytest.raises(ValidationError, match="latest"):
        ImagesState(**{**refs, "redis": "orderops-local/redis:latest"})
    with pytest.raises(ValidationError, match="no tag"):
        ImagesState(**{**refs, "nginx": "orderops-local/nginx"})
    with pytest.raises(ValidationError, match="latest"):
        ImagesState(**{**refs, "monitoring": {"loki": "grafana/loki:latest"}})


def test_missing_state_file_names_the_fix(tmp_path):
    from testhosts.state import StateError

    paths = StatePaths(root=tmp_path, cache=tmp_path / "cache")
    with pytest.raises(StateError, match="hosts-up"):
        load_hosts(paths)
    with pytest.raises(StateError, match="make images"):
        load_images(paths)


def test_known_hosts_lines_name_the_published_port():
    from testhosts.hosts import known_hosts_lines

    assert known_hosts_lines(2201, ["ssh-ed25519 AAAA", "ssh-rsa BBBB"]) == (
        "[127.0.0.1]:2201 ssh-ed25519 AAAA\n[127.0.0.1]:2201 ssh-rsa BBBB\n")
    assert known_hosts_lines(22, ["ssh-ed25519 AAAA"], "172.17.0.3") == "172.17.0.3 ssh-ed25519 AAAA\n"
