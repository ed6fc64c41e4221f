"""The idempotent compose operation: fact parsing and the decision, on fake facts."""

import pytest

from deploys.facts.compose import parse_compose_project
from deploys.operations.compose import compose_differences, restarted_services, unhealthy_services, up_command
from tests.support.docker_inspect import container_line
from deploys.contract.compose import COMPOSE_PROJECT
from deploys.contract.paths import STACK_DIR

OUTPUT = [
    "#orderops:hash",
    "api 1111",
    "nginx 2222",
    "#orderops:containers",
    container_line("api", config_hash="1111", image_id="sha256:aaa"),
    container_line("nginx", config_hash="2222", image_id="sha256:nnn"),
]


def test_parse_fact_output_ignores_leading_noise():
    state = parse_compose_project(["WARN[0000] some warning", *OUTPUT, ""])
    assert state["hashes"] == {"api": "1111", "nginx": "2222"}
    c = state["containers"][0]
    assert (c.service, c.config_hash, c.status, c.health, c.image_id, c.name) == (
        "api", "1111", "running", "healthy", "sha256:aaa", "orderops-api-1")


@pytest.mark.parametrize("bad", [
    ["#orderops:containers", "api 1111 running healthy sha256:aaa /orderops-api-1"],  # the old space format
    ["#orderops:containers", '{"Name": "/x"}'],  # JSON, but no inspect document
    ["#orderops:hash", "api"],  # a short hash line
])
def test_a_line_that_does_not_parse_is_an_error_not_dropped(bad):
    with pytest.raises(ValueError, match="api|x"):
        parse_compose_project(bad)


def test_converged_project_has_no_differences():
    state = parse_compose_project(OUTPUT)
    images = {"api": "svc:1", "nginx": "nginx:1"}
    ids = {"svc:1": "sha256:aaa", "nginx:1": "sha256:nnn"}
    assert compose_differences(state, images, ids) == []
    assert unhealthy_services(state) == []


def test_hash_change_is_a_difference():
    state = parse_compose_project(OUTPUT[:4] + [container_line("api", config_hash="0000")] + OUTPUT[5:])
    assert compose_differences(state, {}, {}) == ["api: configuration changed"]


def test_same_tag_new_image_id_is_a_difference():
    state = parse_compose_project(OUTPUT)
    reasons = compose_differences(state, {"api": "svc:1"}, {"svc:1": "sha256:bbb"})
    assert reasons == ["api: image changed to svc:1"]
    assert compose_differences(state, {"api": "svc:2"}, {"svc:2": None}) == ["api: image svc:2 missing on host"]


def test_missing_stopped_and_orphan_containers():
    state = parse_compose_project(
        ["#orderops:hash", "api 1111", "redis 3333", "#orderops:containers",
         container_line("api", "exited", None, config_hash="1111"),
         container_line("old", config_hash="9999", health=None)],
    )
    assert compose_differences(state, {}, {}) == [
        "api: container exited", "redis: no container", "old: orphan container",
    ]


def test_no_project_files_is_a_difference():
    assert compose_differences({"hashes": {}, "containers": []}, {}, {}) != []


def test_unhealthy_and_starting_services_are_waited_for():
    state = parse_compose_project(
        ["#orderops:hash", "a 1", "b 2", "c 3", "#orderops:containers",
         container_line("a", health="unhealthy", config_hash="1"), container_line("b", health="starting", config_hash="2"),
         container_line("c", health=None, config_hash="3")],
    )
    assert compose_differences(state, {}, {}) == []
    assert unhealthy_services(state) == ["a", "b"]


def test_up_command_waits_and_reports_unhealthy_services():
    cmd = up_command(COMPOSE_PROJECT, STACK_DIR, 120).get_raw_value()
    assert "up -d --wait --wait-timeout 120 --remove-orphans" in cmd
    assert cmd.startswith("timeout --kill-after=10 135 docker compose")
    assert "logs --no-color --tail 30" in cmd
    assert "down" not in cmd and "-v" not in cmd.split()


def test_a_running_service_whose_container_is_recreated_is_named_as_restarted():
    # a changed postgres command (shared_preload_libraries) recreates the running database container
    state = parse_compose_project(OUTPUT[:4] + [container_line("api", config_hash="0000")] + OUTPUT[5:])
    reasons = compose_differences(state, {"nginx": "nginx:2"}, {"nginx:2": "sha256:new"})
    assert restarted_services(state, reasons) == ["api", "nginx"]
    stopped = parse_compose_project(OUTPUT[:4] + [container_line("api", config_hash="0000", status="exited")] + OUTPUT[5:])
    assert restarted_services(stopped, compose_differences(stopped, {}, {})) == []  # not running: nothing restarts
