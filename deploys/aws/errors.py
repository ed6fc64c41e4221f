"""Errors of the AWS layout, mapped from botocore at one point (:func:`deploys.aws.session.call`).

Hierarchy::

    RuntimeError
     └── AwsError                   any failed AWS step; message names the step, never a secret
          ├── AwsCallError          an API call failed (.service, .operation, .code)
          ├── StackFailed           a stack change rolled back (.events: the events that explain it)
          ├── LockHeld              the environment lock belongs to another run (.holder)
          ├── ReleaseFailed         a release did not become healthy (.rolled_back_to)
          └── NotApproved           the operator declined (exit 3); nothing was changed
"""

from __future__ import annotations

import os

__all__ = ["AwsError", "AwsCallError", "StackFailed", "LockHeld", "ReleaseFailed", "NotApproved",
           "one_line"]


class AwsError(RuntimeError):
    """A failed AWS step."""


class AwsCallError(AwsError):
    """An AWS API call failed.

    + service / operation: e.g. ``cloudformation`` / ``ExecuteChangeSet``
    + code: the AWS error code (``ValidationError``, ``AccessDenied``...) or ``NoCredentials``
    """

    def __init__(self, service: str, operation: str, code: str, message: str):
        self.service, self.operation, self.code = service, operation, code
        super().__init__(f"{service} {operation} failed: {code}: {message}")


class StackFailed(AwsError):
    """A stack create/update failed and CloudFormation rolled it back.

    + events: ``[(logical id, resource type, status, reason)]``, the failed ones, oldest first
    """

    def __init__(self, stack: str, status: str, events: list[tuple[str, str, str, str]]):
        self.stack, self.status, self.events = stack, status, events
        lines = "".join(f"\n  {lid} ({rtype}): {st}: {reason}" for lid, rtype, st, reason in events)
        super().__init__(f"stack {stack} ended in {status}{lines}")


class LockHeld(AwsError):
    """Another run holds the environment lock (``holder``: its JSON record)."""

    def __init__(self, parameter: str, holder: str):
        self.parameter, self.holder = parameter, holder
        super().__init__(f"environment lock {parameter} is held: {holder}; it expires after its TTL, "
                         "or, when that run is certainly gone (another machine, or its pid reused), "
                         "break it with: orderops-aws -i <inventory> unlock --yes")


class ReleaseFailed(AwsError):
    """A release failed its checks; ``rolled_back_to`` is the task definition restored (or None)."""

    def __init__(self, message: str, rolled_back_to: str | None):
        self.rolled_back_to = rolled_back_to
        super().__init__(message + (f"; rolled back to {rolled_back_to}" if rolled_back_to else ""))


class NotApproved(AwsError):
    """The operator did not approve the plan; nothing was changed (the CLI exits 3)."""


#: What to do when no credentials resolve (the standard boto3 chain).
_CREDENTIALS_HINT = ("no AWS credentials found: set AWS_PROFILE (after `aws configure` or `aws sso login`) "
                     "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (local moto: any dummy values)")


def one_line(exc: BaseException, endpoint_url: str | None = None) -> str | None:
    """The one-line message (with what to do) for a failure the CLI reports without a traceback, or
    ``None`` for an unexpected one (a bug: its traceback is kept).

    Mapped: :class:`AwsError` (its own message; ``NoCredentials`` codes get the credentials hint),
    botocore's ``NoCredentialsError`` / ``PartialCredentialsError``, ``EndpointConnectionError`` /
    ``ConnectTimeoutError`` (endpoint not reachable), ``ResponseParserError`` (an endpoint answering
    500 or something that is not AWS), any other ``BotoCoreError`` / ``ClientError``, and the docker
    SDK's ``ImageNotFound`` (a ``release`` of a local image that does not exist) and
    ``DockerException`` (no Docker daemon). ``endpoint_url``: the settings' local endpoint, named in
    the endpoint messages (``None``: AWS itself).
    """
    from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
                                     NoCredentialsError, PartialCredentialsError)
    from botocore.parsers import ResponseParserError

    where = endpoint_url or "AWS"
    if isinstance(exc, AwsCallError) and exc.code in ("NoCredentials", "NoCredentialsError", "PartialCredentialsError"):
        return _CREDENTIALS_HINT
    if isinstance(exc, AwsCallError) and exc.code in ("EndpointConnectionError", "ConnectTimeoutError"):
        return _unreachable(where, str(exc))
    if isinstance(exc, AwsCallError) and exc.code == "ResponseParserError":
        return _unparsable(where, str(exc))
    if isinstance(exc, AwsCallError) and exc.code.isdigit() and exc.code.startswith("5"):
        return _unparsable(where, f"HTTP {exc.code}: {exc}")
    if isinstance(exc, AwsError):
        return str(exc)  # one line, or StackFailed's events under it
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return _CREDENTIALS_HINT
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return _unreachable(where, str(exc))
    if isinstance(exc, ResponseParserError):
        return _unparsable(where, str(exc))
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 and str(err.get("Code", "")).isdigit():  # no AWS error code: not an AWS answer
            return _unparsable(where, f"HTTP {status}: {err.get('Message', '')}")
        return f"AWS call failed: {err.get('Code', 'ClientError')}: {_first_line(err.get('Message', str(exc)))}"
    if isinstance(exc, BotoCoreError):
        return f"AWS call failed: {type(exc).__name__}: {_first_line(str(exc))}"
    try:
        import docker.errors
    except ImportError:  # pragma: no cover - docker is a dependency of the project
        return None
    if isinstance(exc, docker.errors.ImageNotFound):
        return (f"local image not found: {_first_line(str(exc.explanation or exc))}; build it first or pass "
                "--image with a name `docker images` lists")
    if isinstance(exc, docker.errors.DockerException):
        host = os.environ.get("DOCKER_HOST", "the local socket")
        return f"docker failed: {_first_line(str(exc))}; is the Docker daemon running ({host})?"
    return None


def _unreachable(where: str, detail: str) -> str:
    return (f"cannot reach the AWS endpoint ({where}): {_first_line(detail)}; check the network and the region, "
            "or start the local endpoint (tools/moto_local.py) and export ORDEROPS_AWS_ENDPOINT")


def _unparsable(where: str, detail: str) -> str:
    return (f"the AWS endpoint ({where}) gave an answer that is not an AWS response (HTTP 5xx or another "
            f"server): {_first_line(detail)[:200]}; check endpoint_url/ORDEROPS_AWS_ENDPOINT and that it is "
            "an AWS endpoint (moto's server)")


def _first_line(text: str) -> str:
    return " ".join(text.split())
