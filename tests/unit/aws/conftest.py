"""Fixtures of the AWS layout's tests: moto's server mode on loopback (tests/support/moto_aws.py)."""

from __future__ import annotations

import os
import urllib.request

import boto3
import pytest

from tests.support.moto_aws import moto_server


@pytest.fixture(scope="session")
def moto_session_url():
    """moto's server, started once per test session (tests/support/moto_aws.py).

    Test speed: ACM issues DNS-validated certificates at once. moto reads
    ``MOTO_ACM_VALIDATION_WAIT`` into ``moto.settings`` when it is first imported (possibly during
    collection, before any fixture), so the in-process server's setting is set here directly; left
    at moto's 60 s, the certificate stays PENDING and the ``certificate_validated`` waiter never ends.
    """
    import moto.settings

    saved = moto.settings.ACM_VALIDATION_WAIT
    moto.settings.ACM_VALIDATION_WAIT = 0
    try:
        with moto_server() as url:
            yield url
    finally:
        moto.settings.ACM_VALIDATION_WAIT = saved


@pytest.fixture(scope="module")
def moto_url(moto_session_url, monkeypatch_module):
    """The session's moto server with every backend reset for this module (``POST /moto-api/reset``:
    moto's backends are process-global, so a reset, not a new server, keeps modules apart)."""
    # Test-speed values: ACM issues DNS-validated certificates at once, and every ECS service
    # reports its desired count (1 in inventories/aws_local.py) as running.
    monkeypatch_module.setenv("MOTO_ACM_VALIDATION_WAIT", "0")
    monkeypatch_module.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    urllib.request.urlopen(urllib.request.Request(f"{moto_session_url}/moto-api/reset", method="POST"), timeout=30)
    yield moto_session_url


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def aws(moto_url, monkeypatch_module):
    """An :class:`AwsSession` for ``inventories/aws_local.py`` against the module's moto server."""
    from deploys.aws.session import AwsSession
    from inventories.aws_settings import load_aws_inventory

    assert moto_url.startswith("http://127.0.0.1:"), "tests run against a local endpoint only"
    zone = boto3.client("route53", endpoint_url=moto_url, region_name="us-east-1").create_hosted_zone(
        Name="example.com", CallerReference=os.urandom(8).hex())["HostedZone"]["Id"].split("/")[-1]
    monkeypatch_module.setenv("ORDEROPS_AWS_ENDPOINT", moto_url)
    monkeypatch_module.setenv("ORDEROPS_AWS_ZONE", zone)
    settings = load_aws_inventory("inventories/aws_local.py")
    assert settings.endpoint_url == moto_url
    return AwsSession(settings)
