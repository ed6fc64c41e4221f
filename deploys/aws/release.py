"""Releases on ECS Fargate: push, migrate once, new task definition revision, update, verify, record.

:func:`release` runs, under the environment lock:

1. ensure the ECR repository (scan on push, immutable tags) and push ``<repository>:<version>``
   through the :class:`Pusher` seam (docker SDK by default; locally the registry is Debian's
   ``docker-registry``, since moto serves the ECR API but not the registry protocol);
2. register new revisions of the ``api`` and ``migrate`` task definitions with the new image (every
   other field copied from the current revision);
3. run the migration as a one-off task and wait until it stops; a non-zero exit fails the release
   before any new revision takes traffic;
4. update the service (deployment circuit breaker with rollback on), wait until it is stable;
5. verify readiness (``/api/ready`` through the ALB) through the :data:`Verifier` seam;
6. record the release in the SSM parameter ``/<name>/release`` (JSON, :class:`ReleaseRecord`).

A failure in 4-5 rolls the service back to the previous revision and raises :class:`ReleaseFailed`.
:func:`rollback` restores the previous recorded revision. API shapes: ECS ``RegisterTaskDefinition``,
``UpdateService`` (``deploymentConfiguration.deploymentCircuitBreaker``), ``RunTask``; the
``services_stable`` and ``tasks_stopped`` waiters.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from deploys.aws.errors import AwsCallError, AwsError, ReleaseFailed
from deploys.aws.lock import environment_lock
from deploys.aws.session import AwsSession, call
from deploys.aws.stack import outputs
from deploys.contract.images import parse_image_ref

__all__ = ["ReleaseRecord", "Pusher", "DockerPusher", "Verifier", "https_ready", "release", "rollback",
           "read_record", "ensure_repository", "image_uri", "ecr_login"]

# Fields of DescribeTaskDefinition that RegisterTaskDefinition accepts back (ECS API reference).
_REGISTER_FIELDS = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
                    "volumes", "placementConstraints", "requiresCompatibilities", "cpu", "memory",
                    "runtimePlatform", "ephemeralStorage", "pidMode", "ipcMode", "proxyConfiguration")


@dataclass(frozen=True)
class ReleaseRecord:
    """The recorded release (SSM ``/<name>/release``, JSON of these fields).

    + version: image tag; image: full image URI
    + task_definition / migrate_task_definition: ARNs of the revisions in service
    + previous: the API task definition ARN before this release (rollback target), or None
    + at: UNIX time (s) of the record
    """

    version: str
    image: str
    task_definition: str
    migrate_task_definition: str
    previous: str | None
    at: float


class Pusher(Protocol):
    """Pushes a local image to ``target`` (``registry/repository:tag``)."""

    def __call__(self, local_image: str, target: str) -> None: ...


#: Returns None when the release is ready, else a reason (e.g. "GET /api/ready: 503").
Verifier = Callable[[], "str | None"]


def _version_of(image: str) -> str:
    """The version a full image URI names: its tag, else its digest (:func:`deploys.contract.images.parse_image_ref`)."""
    ref = parse_image_ref(image)
    return ref.tag or ref.digest or image


class DockerPusher:
    """Tag and push with the docker SDK; ``auth`` is the ECR login (None for a registry without auth)."""

    def __init__(self, auth: dict[str, str] | None = None):
        self.auth = auth

    def __call__(self, local_image: str, target: str) -> None:
        import docker

        ref = parse_image_ref(target)  # a registry port is no tag: the one contract parser
        if not ref.tag:
            raise AwsError(f"push target {target} has no tag")
        client = docker.from_env()
        client.images.get(local_image).tag(ref.repository, ref.tag)
        for line in client.images.push(ref.repository, ref.tag, stream=True, decode=True, auth_config=self.auth):
            if "error" in line:
                raise AwsError(f"push of {target} failed: {line['error']}")


def ecr_login(aws: AwsSession) -> dict[str, str]:
    """Docker credentials for ECR (``GetAuthorizationToken``: base64 ``AWS:<password>``, 12 h)."""
    import base64

    ecr = aws.client("ecr")
    data = call("ecr", "GetAuthorizationToken", ecr.get_authorization_token)["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return {"username": user, "password": password}


def https_ready(url: str, timeout: float = 10.0) -> Verifier:
    """A verifier that GETs ``url`` (``https://<domain>/api/ready``) and wants HTTP 200."""
    def verify() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=ssl.create_default_context()) as resp:
                return None if resp.status == 200 else f"GET {url}: {resp.status}"
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready", with its reason
            return f"GET {url}: {exc}"
    return verify


def ensure_repository(aws: AwsSession) -> str:
    """Create the ECR repository if missing (scan on push, immutable tags); returns its URI."""
    ecr = aws.client("ecr")
    name = aws.settings.api_repository
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        repo = call("ecr", "CreateRepository", ecr.create_repository, repositoryName=name,
                    imageTagMutability="IMMUTABLE",
                    imageScanningConfiguration={"scanOnPush": True},
                    encryptionConfiguration={"encryptionType": "AES256"})["repository"]
    return repo["repositoryUri"]


def image_uri(aws: AwsSession, version: str, repository_uri: str) -> str:
    """Where ``version`` is pushed: ECR's URI, or ``registry_url`` when the settings name one."""
    if aws.settings.registry_url:
        return f"{aws.settings.registry_url}/{aws.settings.api_repository}:{version}"
    return f"{repository_uri}:{version}"


def read_record(aws: AwsSession) -> ReleaseRecord | None:
    """The recorded release, or None before the first release."""
    ssm = aws.client("ssm")
    try:
        value = ssm.get_parameter(Name=aws.settings.release_parameter)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return ReleaseRecord(**json.loads(value))


def _write_record(aws: AwsSession, record: ReleaseRecord) -> None:
    ssm = aws.client("ssm")
    call("ssm", "PutParameter", ssm.put_parameter, Name=aws.settings.release_parameter, Type="String",
         Value=json.dumps(asdict(record), sort_keys=True), Overwrite=True)


def _register_revision(aws: AwsSession, task_definition: str, image: str) -> str:
    ecs = aws.client("ecs")
    current = call("ecs", "DescribeTaskDefinition", ecs.describe_task_definition,
                   taskDefinition=task_definition)["taskDefinition"]
    spec: dict[str, Any] = {k: current[k] for k in _REGISTER_FIELDS if current.get(k)}
    spec["containerDefinitions"] = [{**c, "image": image} for c in current["containerDefinitions"]]
    return call("ecs", "RegisterTaskDefinition", ecs.register_task_definition, **spec)["taskDefinition"][
        "taskDefinitionArn"]


def _service(aws: AwsSession, out: dict[str, str]) -> dict[str, Any]:
    ecs = aws.client("ecs")
    services = call("ecs", "DescribeServices", ecs.describe_services,
                    cluster=out["ClusterName"], services=[out["ApiServiceName"]])["services"]
    if not services:
        raise AwsError(f"service {out['ApiServiceName']} not found in {out['ClusterName']}")
    return services[0]


def _migrate(aws: AwsSession, out: dict[str, str], task_definition: str) -> None:
    ecs = aws.client("ecs")
    started = call("ecs", "RunTask", ecs.run_task, cluster=out["ClusterName"], taskDefinition=task_definition,
                   launchType="FARGATE", count=1, startedBy="orderops-release",
                   networkConfiguration={"awsvpcConfiguration": {
                       "subnets": out["PrivateSubnets"].split(","),
                       "securityGroups": [out["TaskSecurityGroup"]], "assignPublicIp": "DISABLED"}})
    if started.get("failures") or not started.get("tasks"):
        raise ReleaseFailed(f"migration task did not start: {started.get('failures')}", None)
    arn = started["tasks"][0]["taskArn"]
    call("ecs", "Wait", ecs.get_waiter("tasks_stopped").wait, cluster=out["ClusterName"], tasks=[arn], **aws.wait(900))
    task = call("ecs", "DescribeTasks", ecs.describe_tasks, cluster=out["ClusterName"], tasks=[arn])["tasks"][0]
    codes = [c.get("exitCode") for c in task.get("containers", [])]
    if not codes or any(code != 0 for code in codes):
        raise ReleaseFailed(f"migration task {arn} exited with {codes} ({task.get('stoppedReason', '')})", None)


def _deploy(aws: AwsSession, out: dict[str, str], task_definition: str) -> None:
    ecs = aws.client("ecs")
    call("ecs", "UpdateService", ecs.update_service, cluster=out["ClusterName"], service=out["ApiServiceName"],
         taskDefinition=task_definition,
         deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                                  "maximumPercent": 200, "minimumHealthyPercent": 100})
    call("ecs", "Wait", ecs.get_waiter("services_stable").wait, cluster=out["ClusterName"],
         services=[out["ApiServiceName"]], **aws.wait(1800))


def release(aws: AwsSession, version: str, local_image: str, pusher: Pusher, verify: Verifier,
            log: Callable[[str], None] = print) -> ReleaseRecord:
    """Release ``version`` (see the module docstring). Returns the new record.

    Raises :class:`ReleaseFailed` (after rolling back when the new revision already took traffic),
    :class:`LockHeld`, or :class:`AwsCallError`.
    """
    with environment_lock(aws, f"release {version}"):
        out = outputs(aws, aws.settings.stack_name)
        repo = ensure_repository(aws)
        target = image_uri(aws, version, repo)
        log(f"push {local_image} -> {target}")
        pusher(local_image, target)
        previous = _service(aws, out)["taskDefinition"]
        record = read_record(aws)
        migrate_base = record.migrate_task_definition if record else out["MigrateTaskDefinition"]
        api_td = _register_revision(aws, previous, target)
        migrate_td = _register_revision(aws, migrate_base, target)
        log(f"migrate: one-off task {migrate_td}")
        _migrate(aws, out, migrate_td)
        log(f"update service {out['ApiServiceName']}: {previous} -> {api_td}")
        try:
            _deploy(aws, out, api_td)
            problem = verify()
        except AwsCallError as exc:
            problem = str(exc)
        if problem:
            log(f"not ready ({problem}): rolling back to {previous}")
            _deploy(aws, out, previous)
            raise ReleaseFailed(f"release {version} failed: {problem}", previous)
        new = ReleaseRecord(version, target, api_td, migrate_td, previous, time.time())
        _write_record(aws, new)
        log(f"released {version}: {api_td}")
        return new


def rollback(aws: AwsSession, verify: Verifier, log: Callable[[str], None] = print) -> ReleaseRecord:
    """Put the previous recorded revision back in service; raises :class:`AwsError` when there is none."""
    with environment_lock(aws, "rollback"):
        record = read_record(aws)
        if record is None or not record.previous:
            raise AwsError("no previous release recorded: nothing to roll back to")
        out = outputs(aws, aws.settings.stack_name)
        ecs = aws.client("ecs")
        prev = call("ecs", "DescribeTaskDefinition", ecs.describe_task_definition,
                    taskDefinition=record.previous)["taskDefinition"]
        image = prev["containerDefinitions"][0]["image"]
        log(f"roll back {out['ApiServiceName']}: {record.task_definition} -> {record.previous}")
        _deploy(aws, out, record.previous)
        problem = verify()
        if problem:
            raise ReleaseFailed(f"rollback target not ready: {problem}", None)
        new = ReleaseRecord(_version_of(image), image, record.previous, record.migrate_task_definition,
                            record.task_definition, time.time())
        _write_record(aws, new)
        return new
