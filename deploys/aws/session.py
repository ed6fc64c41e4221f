"""boto3 clients for one AWS environment, and the one place botocore errors are mapped.

Credentials come from the standard boto3 chain (environment, profile, instance role). When the
settings name an ``endpoint_url`` (validated to be loopback: moto's server in the tests) every client
uses it, so a test configuration can never reach a real AWS account.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError
from botocore.parsers import ResponseParserError

from deploys.aws.errors import AwsCallError
from inventories.aws_settings import AwsSettings

__all__ = ["AwsSession", "call", "EDGE_REGION"]

#: Region of CloudFront's certificates and WAF web ACLs (AWS requires us-east-1 for both).
EDGE_REGION = "us-east-1"

T = TypeVar("T")


class AwsSession:
    """Clients for one environment; ``client("ecs")`` is cached per (service, region).

    + settings: the validated environment
    + session: a ``boto3.Session`` (default: a new one from the standard chain)
    """

    def __init__(self, settings: AwsSettings, session: boto3.Session | None = None):
        self.settings = settings
        self._session = session or boto3.Session()
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.settings.region
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._session.client(
                service, region_name=region, endpoint_url=self.settings.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._clients[key]

    def wait(self, timeout_seconds: float) -> dict[str, Any]:
        """``WaiterConfig`` kwargs: poll every ``settings.poll_seconds`` for up to ``timeout_seconds``."""
        delay = self.settings.poll_seconds
        return {"WaiterConfig": {"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout_seconds / delay))}}

    @property
    def local(self) -> bool:
        """True when every call goes to a local endpoint (tests)."""
        return self.settings.endpoint_url is not None


def call(service: str, operation: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run one boto3 call; any botocore failure becomes :class:`AwsCallError` naming the call."""
    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise AwsCallError(service, operation, err.get("Code", "ClientError"),
                           err.get("Message", str(exc))) from None
    except NoCredentialsError:
        raise AwsCallError(service, operation, "NoCredentials",
                           "no AWS credentials found in the boto3 chain") from None
    except WaiterError as exc:
        raise AwsCallError(service, operation, "WaiterError", str(exc.last_response.get(
            "StatusReason", exc)) if isinstance(exc.last_response, dict) else str(exc)) from None
    except (BotoCoreError, ResponseParserError) as exc:
        raise AwsCallError(service, operation, type(exc).__name__, str(exc)) from None
