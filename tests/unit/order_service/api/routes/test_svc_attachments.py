"""Attachments: size and content-type limits, downloads with the order's access rules, on both
backends: a local volume (tmp dir) and S3 through boto3.

The S3 tests run against moto's *server mode*: a real S3-compatible HTTP endpoint started by the
``s3_endpoint`` fixture on 127.0.0.1 (no in-process mocking; boto3 talks HTTP to it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from order_service.main import create_app
from tests.unit.order_service.conftest import login, ADMIN_EMAIL, ADMIN_PASSWORD

Headers = dict[str, str]
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto in server mode on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


S3_CREDENTIALS = {"S3_ACCESS_KEY_ID": "testing-key", "S3_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture(params=["local", "s3"])
def backend_client(
    request: pytest.FixtureRequest, settings_factory: Callable[..., Any], clean_db: None
) -> Iterator[tuple[str, TestClient, Any]]:
    """(backend name, client authenticated as admin, settings) for each storage backend."""
    overrides: dict[str, Any] = {"ATTACHMENT_MAX_BYTES": 64 * 1024}
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = "orderops-attachments"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")
        if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=bucket)
        overrides |= {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": endpoint, **S3_CREDENTIALS}
    settings = settings_factory(**overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        yield request.param, client, settings


def _order(client: TestClient, order_body: dict[str, Any], headers: Headers | None = None) -> dict[str, Any]:
    response = client.post("/api/orders", json=order_body, headers=headers or {})
    assert response.status_code == 201
    return response.json()


def test_upload_list_download(backend_client: Any, order_body: dict[str, Any]) -> None:
    backend, client, settings = backend_client
    order = _order(client, order_body)
    response = client.post(
        f"/api/orders/{order['id']}/attachments",
        files={"file": ("../../etc/invoice 1.pdf", PDF, "application/pdf")},
    )
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["filename"] == "invoice 1.pdf"  # path parts dropped
    assert meta["size_bytes"] == len(PDF) and meta["sha256"] == hashlib.sha256(PDF).hexdigest()
    listed = client.get(f"/api/orders/{order['id']}/attachments").json()
    assert [item["id"] for item in listed] == [meta["id"]]
    download = client.get(f"/api/orders/{order['id']}/attachments/{meta['id']}/content")
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == "attachment; filename*=UTF-8''invoice%201.pdf"
    key = f"orders/{order['id']}/{meta['id']}"
    if backend == "s3":
        s3 = boto3.client("s3", endpoint_url=settings.S3_ENDPOINT_URL, region_name="us-east-1",
                          aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")
        head = s3.head_object(Bucket=settings.S3_BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "AES256"  # SSE was requested on upload
        assert head["ContentLength"] == len(PDF)
    else:
        from pathlib import Path

        assert (Path(settings.STORAGE_DIR) / key).read_bytes() == PDF


def test_limits(backend_client: Any, order_body: dict[str, Any]) -> None:
    _, client, settings = backend_client
    order = _order(client, order_body)
    url = f"/api/orders/{order['id']}/attachments"
    too_big = client.post(url, files={"file": ("big.pdf", b"x" * (settings.ATTACHMENT_MAX_BYTES + 1), "application/pdf")})
    assert too_big.status_code == 413
    exe = client.post(url, files={"file": ("tool.exe", b"MZ...", "application/x-msdownload")})
    assert exe.status_code == 415
    assert client.post(url, data={"file": "not a file"}).status_code == 422
    assert client.get(url).json() == []  # nothing stored


def test_downloads_follow_the_order_access_rules(
    settings: Any, clean_db: None, order_body: dict[str, Any]
) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        admin = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        users = {}
        for name, role in (("alice", "customer"), ("bob", "customer"), ("olga", "operator")):
            email = f"{name}@example.com"
            assert client.post("/api/users", headers=admin,
                               json={"email": email, "password": "password-123", "role": role}).status_code == 201
            users[name] = login(client, email, "password-123")
        order = _order(client, order_body, users["alice"])
        meta = client.post(f"/api/orders/{order['id']}/attachments", headers=users["alice"],
                           files={"file": ("note.txt", b"hello", "text/plain")}).json()
        content = f"/api/orders/{order['id']}/attachments/{meta['id']}/content"
        assert client.get(content, headers=users["alice"]).content == b"hello"
        assert client.get(content, headers=users["olga"]).content == b"hello"
        assert client.get(content, headers=users["bob"]).status_code == 404
        assert client.get(content).status_code == 401
        assert client.post(f"/api/orders/{order['id']}/attachments", headers=users["bob"],
                           files={"file": ("x.txt", b"x", "text/plain")}).status_code == 404
        other = _order(client, order_body, users["bob"])
        # an attachment id under the wrong order is not found
        assert client.get(f"/api/orders/{other['id']}/attachments/{meta['id']}/content",
                          headers=users["bob"]).status_code == 404


def test_storage_down_is_503(settings_factory: Callable[..., Any], clean_db: None, closed_port: int,
                             order_body: dict[str, Any]) -> None:
    settings = settings_factory(S3_BUCKET="nowhere", S3_ENDPOINT_URL=f"http://127.0.0.1:{closed_port}",
                                DEPENDENCY_TIMEOUT_SECONDS=1, **S3_CREDENTIALS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        order = _order(client, order_body)
        response = client.post(f"/api/orders/{order['id']}/attachments",
                               files={"file": ("a.txt", b"a", "text/plain")})
        assert response.status_code == 503
        assert response.json() == {"detail": "storage unavailable"}
