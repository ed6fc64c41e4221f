"""The ``aws`` environment of the inventory format: validated settings for the AWS layout.

An AWS inventory is a Python file like the host inventories, but it has no SSH hosts: it defines one
module-level dict ``aws`` (see ``inventories/aws_example.py``). :func:`load_aws_inventory` runs the
file and validates that dict into :class:`AwsSettings`; a bad value stops the command with one line
naming the field (``orderops: inventory error: aws.api.desired_count: ...``) before any AWS call.

Sizes and counts are the figures the CloudFormation template (``templates/aws/stack.py``) uses:
CPU in Fargate CPU units (1024 = one vCPU), memory in MiB, storage in GiB, intervals in days.
Allowed Fargate CPU/memory pairs are AWS's published table
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html).

Error hierarchy::

    ValueError
     └── InventoryError (inventories.schema)   .field names the culprit, e.g. ``aws.db.multi_az``
"""

from __future__ import annotations

import ipaddress
import runpy
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inventories.schema import InventoryError

__all__ = ["AwsSettings", "ApiSettings", "DbSettings", "CacheSettings", "load_aws_inventory",
           "validate_aws", "LOCAL_ENDPOINT_HOSTS", "known_regions"]

#: Hosts an ``endpoint_url`` may name: a local AWS endpoint (moto's server) only.
LOCAL_ENDPOINT_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

#: Fargate task sizes: CPU units -> allowed memory in MiB (AWS's table, linked above; 4 vCPU max here).
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}

_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"


def known_regions() -> frozenset[str]:
    """Regions where botocore's offline endpoint data (``endpoints.json`` shipped with botocore, all
    partitions) has ECS, the engine the layout cannot run without: read locally, no AWS call."""
    import boto3

    session = boto3.session.Session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("ecs", partition_name=partition))


def _known_region(value: str | None) -> str | None:
    if value is not None and value not in known_regions():
        raise ValueError(f"unknown AWS region {value!r} (not in botocore's region list for ECS; e.g. eu-central-1)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Model):
    """The API's Fargate service.

    + cpu / memory: task size (CPU units / MiB), a pair from :data:`FARGATE_SIZES`
    + desired_count, min_count, max_count: tasks; auto scaling stays within min..max
    + target_cpu_percent: target-tracking policy on the service's average CPU
    + requests_per_target: target-tracking policy on ALBRequestCountPerTarget (per minute)
    + workers: uvicorn workers per task
    """

    cpu: int = 512
    memory: int = 1024
    desired_count: int = Field(2, ge=1, le=100)
    min_count: int = Field(2, ge=1, le=100)
    max_count: int = Field(6, ge=1, le=100)
    target_cpu_percent: int = Field(60, ge=10, le=90)
    requests_per_target: int = Field(1000, ge=10)
    workers: int = Field(2, ge=1, le=16)

    @model_validator(mode="after")
    def _sizes(self) -> ApiSettings:
        if self.cpu not in FARGATE_SIZES:
            raise ValueError(f"cpu: {self.cpu} is not a Fargate size ({sorted(FARGATE_SIZES)})")
        if self.memory not in FARGATE_SIZES[self.cpu]:
            raise ValueError(f"memory: {self.memory} MiB is not allowed with cpu {self.cpu}")
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError("desired_count: must lie within min_count..max_count")
        return self


class DbSettings(_Model):
    """RDS for PostgreSQL (the engine of the single-host layout, so one set of migrations and dumps).

    + instance_class: e.g. ``db.t4g.medium``
    + engine_version: major.minor, e.g. ``15.14`` (bookworm's PostgreSQL 15, the single-host engine)
    + allocated_storage / max_allocated_storage: GiB (storage autoscaling up to the max)
    + multi_az: standby in a second AZ
    + backup_retention_days: automated backups kept (1..35, AWS's range)
    + manual_snapshots_keep: manual snapshots the backup runbook keeps
    + snapshot_copy_region: optional region each manual snapshot is copied to
    """

    instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    engine_version: str = Field("15.14", pattern=r"^\d+\.\d+$")
    allocated_storage: int = Field(50, ge=20, le=65536)
    max_allocated_storage: int = Field(200, ge=20, le=65536)
    multi_az: bool = True
    backup_retention_days: int = Field(7, ge=1, le=35)
    manual_snapshots_keep: int = Field(7, ge=1, le=100)
    snapshot_copy_region: str | None = Field(None, pattern=_REGION)

    _snapshot_region = field_validator("snapshot_copy_region")(_known_region)

    @model_validator(mode="after")
    def _storage(self) -> DbSettings:
        if self.max_allocated_storage < self.allocated_storage:
            raise ValueError("max_allocated_storage: must be >= allocated_storage")
        return self


class CacheSettings(_Model):
    """ElastiCache for Redis: a replication group with TLS and an auth token.

    + node_type: e.g. ``cache.t4g.small``
    + replicas: read replicas (0 disables automatic failover)
    + engine_version: e.g. ``7.1``
    """

    node_type: str = Field("cache.t4g.small", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    replicas: int = Field(1, ge=0, le=5)
    engine_version: str = Field("7.1", pattern=r"^\d+\.\d+$")


class AwsSettings(_Model):
    """Everything the AWS layout needs, validated before any AWS call.

    + name: stack and resource name prefix (lower-case, 3..24 chars)
    + region: where the stack lives (the CloudFront certificate and WAF are always us-east-1)
    + endpoint_url: a local AWS endpoint (tests: moto's server); loopback only, ``None`` in production
    + registry_url: registry host:port images are pushed to instead of ECR's (local tests only:
      moto serves the ECR API but not the registry protocol)
    + domain / hosted_zone_id: public name and its Route 53 zone (ACM DNS validation, alias record)
    + version: image tag of the release the stack starts with
    + vpc_cidr: /16../24 IPv4 block split into public and private subnets
    + availability_zones: 2 or 3
    + nat_gateways: ``one`` (cheaper) or ``per_az`` (survives an AZ outage)
    + log_retention_days: CloudWatch Logs retention (a value CloudWatch accepts)
    + waf_rate_limit: requests per 5 minutes per client IP before WAF blocks
    + alarm_email: optional address subscribed to the alarm topic
    + poll_seconds: how often waiters poll AWS (the local test inventory lowers it)
    + ready_url: where releases and rollbacks check readiness (default ``https://<domain>/api/ready``,
      through CloudFront and the ALB); the local tests point it at a loopback stand-in
    + api / db / cache: see their models
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{2,23}$")
    region: str = Field(pattern=_REGION)
    endpoint_url: str | None = None
    registry_url: str | None = None
    domain: str = Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    hosted_zone_id: str = Field(pattern=r"^[A-Z0-9]{5,32}$")
    version: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    vpc_cidr: str = "10.40.0.0/16"
    availability_zones: int = Field(2, ge=2, le=3)
    nat_gateways: Literal["one", "per_az"] = "one"
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731] = 30
    waf_rate_limit: int = Field(2000, ge=100, le=2_000_000_000)
    alarm_email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    poll_seconds: float = Field(15.0, ge=0.1, le=300)
    ready_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    api: ApiSettings = ApiSettings()
    db: DbSettings = DbSettings()
    cache: CacheSettings = CacheSettings()

    _region = field_validator("region")(_known_region)

    @field_validator("endpoint_url")
    @classmethod
    def _local_only(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            # credentials in a URL end up in every error message and run record that names it
            raise ValueError("must not carry a user or password (the boto3 credential chain gives them)")
        if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_ENDPOINT_HOSTS:
            raise ValueError("must be a loopback URL (a local AWS endpoint such as moto's server); "
                             "leave it unset for AWS itself")
        return value

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if net.version != 4 or not 16 <= net.prefixlen <= 24:
            raise ValueError("must be an IPv4 block from /16 to /24")
        return value

    @property
    def readiness_url(self) -> str:
        """``ready_url``, else ``https://<domain>/api/ready``."""
        return self.ready_url or f"https://{self.domain}/api/ready"

    @property
    def stack_name(self) -> str:
        """Name of the main (regional) CloudFormation stack."""
        return f"{self.name}-main"

    @property
    def edge_stack_name(self) -> str:
        """Name of the us-east-1 stack holding the CloudFront certificate and the WAF web ACL."""
        return f"{self.name}-edge"

    @property
    def cluster_name(self) -> str:
        return f"{self.name}-cluster"

    @property
    def api_service_name(self) -> str:
        return f"{self.name}-api"

    @property
    def api_repository(self) -> str:
        """ECR repository of the order-service image."""
        return f"{self.name}/order-service"

    @property
    def cache_group_id(self) -> str:
        """ElastiCache replication group id (at most 40 characters: ``name`` has at most 24)."""
        return f"{self.name}-redis"

    @property
    def release_parameter(self) -> str:
        """SSM parameter holding the release record (JSON: version, task definition, previous)."""
        return f"/{self.name}/release"


def validate_aws(data: Any) -> AwsSettings:
    """Validate an ``aws`` dict; raises :class:`InventoryError` naming the first bad field."""
    if not isinstance(data, dict):
        raise InventoryError(None, "aws", "must be a dict of settings")
    try:
        return AwsSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if not loc and ":" in msg:  # a model validator names its field first
            loc, msg = (part.strip() for part in msg.split(":", 1))
        elif ":" in msg and err["type"] == "value_error" and loc in ("api", "db", "cache"):
            sub, msg = (part.strip() for part in msg.split(":", 1))
            loc = f"{loc}.{sub}"
        raise InventoryError(None, f"aws.{loc}" if loc else "aws", msg) from None


def load_aws_inventory(path: str | Path) -> AwsSettings:
    """Run an AWS inventory file and validate its ``aws`` dict.

    Raises :class:`InventoryError` when the file lacks ``aws`` or a value is bad, and
    ``FileNotFoundError`` when the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inventory file not found: {path}")
    namespace = runpy.run_path(str(path))
    if "aws" not in namespace:
        raise InventoryError(None, "aws", f"{path} defines no 'aws' settings dict")
    return validate_aws(namespace["aws"])
