"""The host contract (deploys/contract/): it stands alone, and its rules decide as documented."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deploys.contract import paths
from deploys.contract.compose import compose_command, parse_containers
from deploys.contract.images import check_immutable, parse_image_ref
from deploys.contract.services import SERVICE_IMAGES, SERVICES, is_up
from inventories.schema import Images
from tests.support.docker_inspect import container_line

CONTRACT = Path(paths.__file__).parent


def test_contract_imports_nothing_else_of_deploys_or_runbooks():
    for module in CONTRACT.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("runbooks", "inventories", "templates")), (module.name, name)
                assert not name.startswith("deploys") or name.startswith("deploys.contract"), (module.name, name)


def test_state_dir_rule_is_the_repo_root_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.local_state_dir({}) == paths.REPO_ROOT / ".orderops"
    assert paths.local_state_dir({"ORDEROPS_STATE_DIR": "rel"}) == tmp_path / "rel"
    assert paths.local_cache_dir({"ORDEROPS_STATE_DIR": "/x/st"}) == Path("/x/st/cache")
    assert paths.local_cache_dir({"ORDEROPS_STATE_DIR": "/x/st", "ORDEROPS_CACHE_DIR": "/c"}) == Path("/c")


@pytest.mark.parametrize("ref, repository, tag, digest", [
    ("orderops/order-service:1.0", "orderops/order-service", "1.0", None),
    ("registry.example.com:5000/a/b:2", "registry.example.com:5000/a/b", "2", None),
    ("app:5000", "app", "5000", None),
    ("a/b@sha256:" + "e" * 64, "a/b", None, "sha256:" + "e" * 64),
    ("a/b:1@sha256:" + "e" * 64, "a/b", "1", "sha256:" + "e" * 64),
])
def test_image_refs_parse_one_way(ref, repository, tag, digest):
    parsed = parse_image_ref(ref)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repository, tag, digest)
    assert str(parsed) == ref


@pytest.mark.parametrize("ref, message", [("a/b", "no tag"), ("a/b:latest", "mutable"), ("A/b:1", "not a valid")])
def test_mutable_or_invalid_refs_are_refused(ref, message):
    with pytest.raises(ValueError, match=message):
        check_immutable(ref)


def test_service_list_matches_the_inventory_images():
    assert set(SERVICE_IMAGES.values()) == set(Images.model_fields)
    assert SERVICES == tuple(SERVICE_IMAGES)


def test_running_and_healthy_rule():
    assert is_up("running", "healthy") and is_up("running", "none")
    assert not is_up("running", "starting") and not is_up("exited", "none") and not is_up(None, None)


def test_container_state_from_inspect_json():
    [c] = parse_containers([container_line("redis", health=None, restarts=2, image="r:1", image_id="sha256:r")])
    assert (c.service, c.status, c.health, c.restarts, c.image, c.image_id, c.up) == (
        "redis", "running", "none", 2, "r:1", "sha256:r", True)


def test_compose_command_names_project_and_directory():
    assert compose_command("p", "/srv/x y", "config", "--hash", "*") == \
        "docker compose -p p --project-directory '/srv/x y' config --hash '*'"
