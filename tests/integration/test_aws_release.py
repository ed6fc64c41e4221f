"""An AWS release pushes a real image with the docker SDK: Debian's ``docker-registry`` stands in for
ECR's registry protocol (moto serves the ECR API, not the registry), moto's server mode for the rest.

No test host is needed: the registry runs on loopback of this machine (``docker-registry`` from
tools/packages.txt, a temporary storage directory), the image is a one-file image made here with
``docker import`` (tag prefix ``awtest-``, removed afterwards), and the push goes through
``DockerPusher`` exactly as ``orderops-aws release`` does when ``registry_url`` is set. The
migration task is finished through ECS's own ``StopTask`` and readiness is the seam the unit tests
fill too (no ALB exists here).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request

import boto3
import pytest

from tests.support.moto_aws import moto_server, one_off_tasks_finish

pytestmark = pytest.mark.integration

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on 127.0.0.1:<free port> (Docker treats loopback registries as insecure-allowed)."""
    if not os.path.exists(REGISTRY):
        pytest.fail("docker-registry is missing: `make prereqs` installs it (tools/packages.txt)")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def tiny_image():
    """A one-file image built here (``docker import``), removed afterwards with every tag it got."""
    import docker

    client = docker.from_env()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"orderops aws release test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    name = f"awtest-order-service:{secrets.token_hex(4)}"
    subprocess.run(["docker", "import", "-", name], input=buf.getvalue(), check=True, capture_output=True)
    image = client.images.get(name)
    try:
        yield name
    finally:
        for tag in client.images.get(image.id).tags:
            client.images.remove(tag)


def test_release_pushes_to_the_registry_stand_in(registry, tiny_image, monkeypatch):
    from deploys.aws import environment, release
    from deploys.aws.session import AwsSession
    from inventories.aws_settings import load_aws_inventory

    monkeypatch.setenv("MOTO_ACM_VALIDATION_WAIT", "0")
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    with moto_server() as url:
        zone = boto3.client("route53", endpoint_url=url, region_name="us-east-1").create_hosted_zone(
            Name="example.com", CallerReference=os.urandom(8).hex())["HostedZone"]["Id"].split("/")[-1]
        monkeypatch.setenv("ORDEROPS_AWS_ENDPOINT", url)
        monkeypatch.setenv("ORDEROPS_AWS_ZONE", zone)
        monkeypatch.setenv("ORDEROPS_AWS_REGISTRY", registry)
        aws = AwsSession(load_aws_inventory("inventories/aws_local.py"))
        assert environment.apply_environment(aws, approve=lambda t: True, log=lambda _: None)
        ecs, cluster = aws.client("ecs"), aws.settings.cluster_name
        with one_off_tasks_finish(ecs, cluster):
            record = release.release(aws, "0.2.0", tiny_image, release.DockerPusher(None), verify=lambda: None,
                                     log=lambda _: None)
    assert record.image == f"{registry}/{aws.settings.api_repository}:0.2.0"
    tags = json.load(urllib.request.urlopen(f"http://{registry}/v2/{aws.settings.api_repository}/tags/list"))
    assert tags["tags"] == ["0.2.0"]
