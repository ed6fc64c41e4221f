"""The nginx edge on a deployed test host, requested from the test machine like a client would:
security headers on every response of every location (error pages included), one X-Request-ID,
405 with ``Allow``, the HTTP redirect to the inventory's public HTTPS port, a warning-free
``nginx -t``, and a bad template refused by ``nginx -t`` while the old config keeps serving.

Needs a converged host (tests/integration/test_deploy.py runs first in the tier; the first test
here converges anyway).
"""

from __future__ import annotations

import hashlib

import httpx
import pytest

from deploys.contract.compose import COMPOSE_PROJECT, compose_command
from deploys.contract.paths import STACK_DIR, StackLayout
from tests.integration.conftest import ROOT, run_pyinfra, ssh

pytestmark = pytest.mark.integration

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}
HSTS = "max-age=63072000"
API_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

#: (method, path, expected status) over HTTPS: every location of the vhost, answers by nginx
#: itself (404, 405) and by the service (200, 401, 404, 422)
HTTPS_REQUESTS = [
    ("GET", "/api/health", 200),
    ("GET", "/api/ready", 200),
    ("GET", "/api/orders", 401),
    ("GET", "/api/no-such-route", 404),
    ("POST", "/api/login/access-token", 422),
    ("GET", "/metrics", 404),
    ("GET", "/.well-known/acme-challenge/none", 404),
    ("TRACE", "/api/health", 405),
    ("PROPFIND", "/api/orders", 405),
]


def _layout(app) -> StackLayout:
    return StackLayout(app.get("stack_dir", STACK_DIR))


def _compose(app, *args: str) -> str:
    return compose_command(app.get("compose_project", COMPOSE_PROJECT), _layout(app).root, *args)


def _client() -> httpx.Client:
    return httpx.Client(verify=False, timeout=20, trust_env=False, follow_redirects=False)  # self-signed


def _check_headers(response: httpx.Response, https: bool) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get_list(name) == [value], f"{where}: {name} = {response.headers.get_list(name)}"
    assert len(response.headers.get_list("x-request-id")) == 1, f"{where}: {response.headers.get_list('x-request-id')}"
    hsts = response.headers.get_list("strict-transport-security")
    assert hsts == ([HSTS] if https else []), f"{where}: HSTS {hsts}"


@pytest.mark.parametrize(("method", "path", "status"), HTTPS_REQUESTS, ids=[f"{m} {p}" for m, p, _ in HTTPS_REQUESTS])
def test_every_https_location_sends_the_security_headers(app, method, path, status):
    with _client() as client:
        response = client.request(method, f"{app['probe_https_url']}{path}", headers={"Host": app["domain"]})
    assert response.status_code == status, response.text[:300]
    _check_headers(response, https=True)
    if status == 405:
        assert response.headers.get("allow") == API_METHODS
    else:
        assert "allow" not in response.headers or response.status_code != 405


def test_client_request_id_is_echoed_once(app):
    with _client() as client:
        response = client.get(f"{app['probe_https_url']}/api/health", headers={"Host": app["domain"], "X-Request-ID": "edge-test-1"})
    assert response.headers.get_list("x-request-id") == ["edge-test-1"]


def test_http_redirects_to_the_public_https_port(app):
    with _client() as client:
        response = client.get(f"{app['probe_http_url']}/api/health?x=1")
        assert response.status_code == 301
        _check_headers(response, https=False)
        location = response.headers["location"]
        assert location == f"{app['probe_https_url']}/api/health?x=1", location  # https_public_port of the test host
        followed = client.get(location, headers={"Host": app["domain"]})
        assert followed.status_code == 200
        trace = client.request("TRACE", f"{app['probe_http_url']}/")
        assert trace.status_code == 405 and trace.headers.get("allow") == API_METHODS


def test_acme_challenge_path_is_not_redirected(app):
    token = "edge-test-token"
    challenge = f"{_layout(app).acme_dir}/.well-known/acme-challenge"
    ssh(app, f"sudo install -d -m 755 {challenge}; echo ok-{token} | sudo tee {challenge}/{token} >/dev/null")
    try:
        with _client() as client:
            response = client.get(f"{app['probe_http_url']}/.well-known/acme-challenge/{token}")
        assert response.status_code == 200 and response.text.strip() == f"ok-{token}"
        _check_headers(response, https=False)
    finally:
        ssh(app, f"sudo rm -rf {_layout(app).acme_dir}/.well-known")


def test_live_nginx_config_test_is_warning_free(app):
    out = ssh(app, f"sudo {_compose(app, 'exec', '-T', 'nginx', 'nginx', '-t')} 2>&1")
    assert "test is successful" in out.stdout
    assert "[warn]" not in out.stdout, out.stdout


def _live_sha(app) -> str:
    return ssh(app, f"sudo sha256sum {_layout(app).nginx_conf}").stdout.split()[0]


def test_bad_directive_is_refused_and_the_old_config_keeps_serving(app):
    template = ROOT / "templates" / "nginx" / "orderops.conf.j2"
    original = template.read_text()
    before = _live_sha(app)
    marker = "    server_name {{ domain }};\n    server_tokens off;\n\n    ssl_certificate"
    assert marker in original
    try:
        template.write_text(original.replace(marker, marker.replace("server_tokens off;", "server_tokens off;\n    orderops_bogus_directive on;"), 1))
        result = run_pyinfra()
        assert result.returncode != 0
        assert 'unknown directive "orderops_bogus_directive"' in result.output
        assert "live one kept" in result.output
    finally:
        template.write_text(original)
    assert _live_sha(app) == before
    assert ssh(app, f"sudo test -e {_layout(app).nginx_conf}.candidate", check=False).returncode != 0
    with _client() as client:
        response = client.get(f"{app['probe_https_url']}/api/health", headers={"Host": app["domain"]})
    assert response.status_code == 200
    _check_headers(response, https=True)
    # the next converge finds nothing to do
    again = run_pyinfra()
    assert again.returncode == 0 and again.totals["success"] == 0, again.output[-3000:]


def test_served_config_is_the_rendered_one(app, inventory):
    from deploys.roles.order_stack import nginx_text
    from inventories.schema import build_settings

    name, data = inventory["app"][0]
    groups = [group for group, members in inventory.items() if name in {n for n, _ in members}]
    settings = build_settings(name, data, groups)  # its real groups: a monitoring host's vhost has /grafana/
    wanted = hashlib.sha256(nginx_text(settings).encode()).hexdigest()
    assert _live_sha(app) == wanted
    inside = ssh(app, f"sudo {_compose(app, 'exec', '-T', 'nginx', 'sha256sum', '/etc/nginx/conf.d/orderops.conf')}").stdout
    assert inside.split()[0] == wanted  # the container sees the replaced file (directory mount)
