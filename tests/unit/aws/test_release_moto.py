"""Releases, rollback and the environment lock against moto's server mode (local endpoint).

Stand-ins named here: moto serves the ECR/ECS APIs but runs no containers, so (1) the image push
goes through the :class:`Pusher` seam to a recorder (the real docker push to Debian's
docker-registry is in tests/integration/test_aws_release.py), (2) ECS "finishing" the one-off
migration task is done by the test through ECS's own ``StopTask`` (moto then reports exit code 0),
and (3) readiness through the ALB is the :data:`Verifier` seam the tests fill.
"""

from __future__ import annotations


import pytest

from deploys.aws import environment, lock, release
from deploys.aws.errors import LockHeld, ReleaseFailed
from tests.support.moto_aws import one_off_tasks_finish


class RecordingPusher:
    def __init__(self):
        self.pushed: list[tuple[str, str]] = []

    def __call__(self, local_image, target):
        self.pushed.append((local_image, target))


@pytest.fixture(scope="module")
def deployed(aws):
    assert environment.apply_environment(aws, approve=lambda t: True, log=lambda _: None)
    return aws


@pytest.fixture
def ecs_finishes_tasks(deployed):
    """Stop every one-off task the release starts, as ECS does when its container exits 0."""
    with one_off_tasks_finish(deployed.client("ecs"), deployed.settings.cluster_name):
        yield


def _service_td(aws):
    s = aws.settings
    return aws.client("ecs").describe_services(cluster=s.cluster_name, services=[s.api_service_name])[
        "services"][0]["taskDefinition"]


def _image_of(aws, td):
    return aws.client("ecs").describe_task_definition(taskDefinition=td)["taskDefinition"][
        "containerDefinitions"][0]["image"]


def test_release_migrates_updates_and_records(deployed, ecs_finishes_tasks):
    aws = deployed
    before = _service_td(aws)
    pusher = RecordingPusher()
    record = release.release(aws, "0.2.0", "orderops-local/order-service:dev", pusher, verify=lambda: None,
                             log=lambda _: None)
    repo = aws.client("ecr").describe_repositories(repositoryNames=[aws.settings.api_repository])["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert pusher.pushed == [("orderops-local/order-service:dev", f"{repo['repositoryUri']}:0.2.0")]
    assert _service_td(aws) == record.task_definition != before
    assert record.previous == before and _image_of(aws, record.task_definition).endswith(":0.2.0")
    migrations = [t for t in aws.client("ecs").describe_tasks(
        cluster=aws.settings.cluster_name,
        tasks=aws.client("ecs").list_tasks(cluster=aws.settings.cluster_name)["taskArns"])["tasks"]
        if t.get("startedBy") == "orderops-release"]
    assert [t["taskDefinitionArn"] for t in migrations] == [record.migrate_task_definition]
    assert release.read_record(aws) == record


def test_failed_readiness_rolls_back(deployed, ecs_finishes_tasks):
    aws = deployed
    good = release.read_record(aws)
    with pytest.raises(ReleaseFailed) as err:
        release.release(aws, "0.3.0", "img", RecordingPusher(), verify=lambda: "GET /api/ready: 503",
                        log=lambda _: None)
    assert err.value.rolled_back_to == good.task_definition
    assert "503" in str(err.value)
    assert _service_td(aws) == good.task_definition
    assert release.read_record(aws) == good  # a failed release records nothing


def test_rollback_restores_previous(deployed):
    aws = deployed
    current = release.read_record(aws)
    back = release.rollback(aws, verify=lambda: None, log=lambda _: None)
    assert _service_td(aws) == current.previous == back.task_definition
    assert back.previous == current.task_definition
    assert f"{back.image}".endswith(f":{back.version}") and back.image == _image_of(aws, back.task_definition)


@pytest.mark.parametrize("image, version", [
    ("123456789012.dkr.ecr.eu-central-1.amazonaws.com/orders/api:0.2.0", "0.2.0"),
    ("registry.local:5000/orders/api:1.4", "1.4"),
    ("registry.local:5000/orders/api@sha256:" + "a" * 64, "sha256:" + "a" * 64),
])
def test_version_of_an_image_uri_comes_from_the_one_parser(image, version):
    assert release._version_of(image) == version


def test_lock_is_exclusive_and_expires(deployed):
    aws = deployed
    token = lock.acquire(aws, "test holder")
    try:
        with pytest.raises(LockHeld) as err:
            release.release(aws, "0.4.0", "img", RecordingPusher(), verify=lambda: None, log=lambda _: None)
        assert "test holder" in str(err.value)
        assert not lock.release(aws, "not-the-owner")
    finally:
        assert lock.release(aws, token)
    stale = lock.acquire(aws, "died", ttl_seconds=-1)  # already expired: a dead run's lock
    fresh = lock.acquire(aws, "next run")
    assert fresh != stale and not lock.release(aws, stale) and lock.release(aws, fresh)
