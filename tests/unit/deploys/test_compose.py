"""The idempotent compose operation: fact parsing and the decision, on fake facts."""

from deploys.facts.compose import parse_compose_project
from deploys.operations.compose import compose_differences, unhealthy_services, up_command

OUTPUT = [
    "#orderops:hash",
    "api 1111",
    "nginx 2222",
    "#orderops:containers",
    "api 1111 running healthy sha256:aaa /orderops-api-1",
    "nginx 2222 running healthy sha256:nnn /orderops-nginx-1",
]


def test_parse_fact_output_ignores_noise():
    state = parse_compose_project(["WARN[0000] some warning", *OUTPUT, "garbage line"])
    assert state["hashes"] == {"api": "1111", "nginx": "2222"}
    assert state["containers"][0] == {
        "service": "api", "config_hash": "1111", "state": "running", "health": "healthy",
        "image_id": "sha256:aaa", "name": "orderops-api-1",
    }


def test_converged_project_has_no_differences():
    state = parse_compose_project(OUTPUT)
    images = {"api": "svc:1", "nginx": "nginx:1"}
    ids = {"svc:1": "sha256:aaa", "nginx:1": "sha256:nnn"}
    assert compose_differences(state, images, ids) == []
    assert unhealthy_services(state) == []


def test_hash_change_is_a_difference():
    state = parse_compose_project([l.replace("api 1111 running", "api 0000 running") for l in OUTPUT])
    assert compose_differences(state, {}, {}) == ["api: configuration changed"]


def test_same_tag_new_image_id_is_a_difference():
    state = parse_compose_project(OUTPUT)
    reasons = compose_differences(state, {"api": "svc:1"}, {"svc:1": "sha256:bbb"})
    assert reasons == ["api: image changed to svc:1"]
    assert compose_differences(state, {"api": "svc:2"}, {"svc:2": None}) == ["api: image svc:2 missing on host"]


def test_missing_stopped_and_orphan_containers():
    state = parse_compose_project(
        ["#orderops:hash", "api 1111", "redis 3333", "#orderops:containers",
         "api 1111 exited none sha256:aaa /orderops-api-1",
         "old 9999 running none sha256:ooo /orderops-old-1"],
    )
    assert compose_differences(state, {}, {}) == [
        "api: container exited", "redis: no container", "old: orphan container",
    ]


def test_no_project_files_is_a_difference():
    assert compose_differences({"hashes": {}, "containers": []}, {}, {}) != []


def test_unhealthy_and_starting_services_are_waited_for():
    state = parse_compose_project(
        ["#orderops:hash", "a 1", "b 2", "c 3", "#orderops:containers",
         "a 1 running unhealthy sha256:1 /x-a-1", "b 2 running starting sha256:2 /x-b-1",
         "c 3 running none sha256:3 /x-c-1"],
    )
    assert compose_differences(state, {}, {}) == []
    assert unhealthy_services(state) == ["a", "b"]


def test_up_command_waits_and_reports_unhealthy_services():
    cmd = up_command("orderops", "/opt/orderops", 120).get_raw_value()
    assert "up -d --wait --wait-timeout 120 --remove-orphans" in cmd
    assert cmd.startswith("timeout --kill-after=10 135 docker compose")
    assert "logs --no-color --tail 30" in cmd
    assert "down" not in cmd and "-v" not in cmd.split()
