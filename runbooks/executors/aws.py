"""The boto3 executor: AWS API calls against an :class:`~runbooks.core.types.AwsTarget`.

Steps of the AWS runbooks call ``ctx.aws(service, operation, **params)`` (and ``ctx.aws_wait``),
which land here. Clients come from the standard boto3 chain, one per (environment, service,
region), pointed at the settings' ``endpoint_url`` when they name one (validated to be loopback:
moto's server in the tests), so a test configuration can never reach a real AWS account.

Errors are mapped in one place, :meth:`AwsExecutor.call`: ``ClientError`` -> :class:`ApiError`
with AWS's error code, a ``WaiterError`` -> :class:`ApiError` (code ``WaiterError``), missing
credentials -> :class:`ApiError` (``NoCredentials``), any other botocore error -> :class:`ApiError`
with its class name. A call does not start once the step's scope is cancelled (timeout or abort):
:class:`CommandCancelled`. An API call cannot be killed like a process group; the client's read
timeout (:data:`READ_TIMEOUT`, seconds) bounds how long one call can outlive its step.

The executor is also a :class:`~runbooks.core.types.LockingExecutor`: the run lock of an AWS
environment is the DynamoDB item of :mod:`deploys.contract.aws_lock` (the one ``orderops-aws``
takes), written with the run's ID so an ``orderops-aws`` command started by the run re-enters it.
There are no shell commands: :meth:`run` raises :class:`ExecutorError`.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from deploys.contract import aws_lock
from deploys.contract.lock import LOCKED_EXIT
from runbooks.core.errors import ApiError, CommandCancelled, ExecutorError
from runbooks.core.process import current_scope
from runbooks.core.types import AwsTarget, ClosingExecutor, CommandResult

__all__ = ["AwsExecutor", "READ_TIMEOUT"]

#: Seconds botocore waits for one response (connect and read).
READ_TIMEOUT = 30.0


class AwsExecutor(ClosingExecutor):
    """boto3 calls for AWS targets (see the module docstring).

    + session: a ``boto3.Session`` (default: a new one from the standard credential chain)
    + lock_ttl: seconds the environment lock lives when its run dies
    """

    name = "aws"

    def __init__(self, session: Any = None, lock_ttl: int = aws_lock.DEFAULT_TTL_SECONDS):
        self._session = session
        self.lock_ttl = lock_ttl
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._mutex = threading.Lock()

    # --- clients and calls ----------------------------------------------------------------
    def client(self, target: AwsTarget, service: str, region: str | None = None) -> Any:
        """The boto3 client of ``service`` in ``region`` (default: the environment's)."""
        import boto3
        from botocore.config import Config

        region = region or target.settings.region
        key = (target.name, service, region)
        with self._mutex:
            if self._session is None:
                self._session = boto3.Session()
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service, region_name=region, endpoint_url=target.settings.endpoint_url,
                    config=Config(retries={"mode": "standard", "max_attempts": 4},
                                  connect_timeout=READ_TIMEOUT, read_timeout=READ_TIMEOUT))
            return self._clients[key]

    def call(self, target: AwsTarget, service: str, operation: str, /, *, region: str | None = None,
             **params: Any) -> dict[str, Any]:
        """``client(service).<operation>(**params)`` (boto3's snake_case operation name); the
        response dict without ``ResponseMetadata``. Raises :class:`ApiError` /
        :class:`CommandCancelled` (module docstring)."""
        self._check_scope(f"{service} {operation}")
        client = self.client(target, service, region)
        return _mapped(service, operation, lambda: {
            k: v for k, v in getattr(client, operation)(**params).items() if k != "ResponseMetadata"})

    def wait(self, target: AwsTarget, service: str, waiter: str, timeout: float, /, *, region: str | None = None,
             **params: Any) -> None:
        """Run boto3's waiter ``waiter`` (e.g. ``db_snapshot_available``) polling every
        ``settings.poll_seconds`` for at most ``timeout`` seconds. Raises :class:`ApiError`
        (code ``WaiterError``) when it gives up or sees a failure state."""
        self._check_scope(f"{service} wait {waiter}")
        delay = target.settings.poll_seconds
        client = self.client(target, service, region)
        config = {"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))}
        _mapped(service, f"wait {waiter}", lambda: client.get_waiter(waiter).wait(WaiterConfig=config, **params))

    @staticmethod
    def _check_scope(what: str) -> None:
        scope = current_scope()
        if scope.cancelled:
            raise CommandCancelled(what, scope.cancel_reason or "cancelled")

    def run(self, host: Any, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        """AWS targets run no shell commands: raises :class:`ExecutorError`."""
        raise ExecutorError(f"the aws executor runs no shell commands (target {host.name}); use ctx.aws(...)")

    # --- the environment lock -------------------------------------------------------------
    def acquire_lock(self, target: AwsTarget, run_id: str, holder: str) -> CommandResult:
        """Take the environment's DynamoDB lock for ``run_id`` (rc 0, or :data:`LOCKED_EXIT` with
        the holder's record)."""
        ddb = self.client(target, "dynamodb")
        try:
            token = _mapped("dynamodb", "lock", lambda: aws_lock.acquire(
                ddb, target.name, f"runbook run {run_id} by {holder}", self.lock_ttl, run_id=run_id))
        except aws_lock.Held as held:
            return CommandResult(LOCKED_EXIT, f"locked by {held.holder}; if that run is gone, break the lock with: "
                                              "orderops-aws -i <inventory> unlock --yes")
        with self._mutex:
            self._tokens[(target.name, run_id)] = token
        return CommandResult(0, "acquired" if not token.startswith(aws_lock.REENTERED) else "renewed")

    def release_lock(self, target: AwsTarget, run_id: str) -> CommandResult:
        """Release the lock this executor took for ``run_id`` (``released`` / ``not-held``)."""
        with self._mutex:
            token = self._tokens.pop((target.name, run_id), None)
        if token is None:
            return CommandResult(0, "not-held")
        ddb = self.client(target, "dynamodb")
        released = _mapped("dynamodb", "unlock", lambda: aws_lock.release(ddb, target.name, token))
        return CommandResult(0, "released" if released else "not-held")


def _mapped(service: str, operation: str, fn: Any) -> Any:
    """Run ``fn()``; botocore failures become :class:`ApiError` (the one mapping point)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError

    try:
        return fn()
    except aws_lock.Held:
        raise
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise ApiError(service, operation, err.get("Code", "ClientError"), err.get("Message", str(exc))) from None
    except NoCredentialsError:
        raise ApiError(service, operation, "NoCredentials", "no AWS credentials found in the boto3 chain") from None
    except WaiterError as exc:
        raise ApiError(service, operation, "WaiterError", str(exc)) from None
    except BotoCoreError as exc:
        raise ApiError(service, operation, type(exc).__name__, str(exc)) from None
