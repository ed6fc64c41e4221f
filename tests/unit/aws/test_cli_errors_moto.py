"""Failures outside AWS's own answers are one line on stderr and exit 1, never a traceback:
no credentials, an endpoint that is not reachable, an endpoint answering 500 or something that is
not AWS, and a ``release`` of a local image that does not exist.

Against moto's server mode (tests/support/moto_aws.py) and, for the broken endpoints, a loopback
HTTP server that answers badly and a loopback port nothing listens on.
"""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from deploys.aws import cli, environment

INV = ["-i", "inventories/aws_local.py"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_no_credentials_is_one_line(aws, monkeypatch, capsys):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup here
    assert cli.main([*INV, "status"]) == 1
    line = _one_line_error(capsys)
    assert "no AWS credentials" in line and "AWS_PROFILE" in line


def test_unreachable_endpoint_is_one_line(aws, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("ORDEROPS_AWS_ENDPOINT", f"http://127.0.0.1:{port}")
    assert cli.main([*INV, "status"]) == 1
    line = _one_line_error(capsys)
    assert "cannot reach the AWS endpoint" in line and str(port) in line


class _Bad(http.server.BaseHTTPRequestHandler):
    status = 500

    def do_POST(self):  # noqa: N802 - http.server's name
        body = b"<html><body>Internal Server Error <not xml"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [500])
def test_endpoint_answering_garbage_is_one_line(aws, monkeypatch, capsys, status):
    handler = type("Bad", (_Bad,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("ORDEROPS_AWS_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert cli.main([*INV, "status"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    line = _one_line_error(capsys)
    assert "ORDEROPS_AWS_ENDPOINT" in line and str(server.server_port) in line and "HTTP 500" in line, line


def test_unparsable_answer_maps_to_one_line():
    """An XML (query-protocol) client reading a 200 that is not XML: botocore's ResponseParserError."""
    import boto3
    from botocore.parsers import ResponseParserError

    from deploys.aws.errors import one_line

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Bad", (_Bad,), {"status": 200}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        cfn = boto3.client("cloudformation", endpoint_url=url, region_name="eu-west-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        with pytest.raises(ResponseParserError) as err:
            cfn.describe_stacks()
    finally:
        server.shutdown()
        server.server_close()
    line = one_line(err.value, url)
    assert line and "\n" not in line and url in line and "not an AWS response" in line


def test_release_of_a_missing_local_image_is_one_line(aws, capsys):
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except docker.errors.DockerException:
        pytest.skip("no Docker daemon on this machine")
    assert environment.apply_environment(aws, approve=lambda t: True, log=lambda _: None)
    capsys.readouterr()
    assert cli.main([*INV, "release", "0.2.0", "--image", "orderops/no-such-image:never", "--yes"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    (line,) = out.err.strip().splitlines()
    assert "local image not found" in line and "no-such-image" in line
