"""The order stack on the app hosts: containers, nginx TLS, the order API, private data stores."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import pytest

from deploys.contract.compose import compose_command
from deploys.contract.monitoring import METRICS_PORT
from deploys.contract.paths import StackLayout
from deploys.contract.services import DB_PORT, REDIS_PORT
from infra_checks import (
    ORDER,
    check_order,
    compose_containers,
    container_problems,
    is_loopback,
    listening_tcp,
    published_ports,
    same_order,
    wait_healthy,
    wait_until,
)

DATA_STORE_PORTS = {"postgresql": DB_PORT, "redis": REDIS_PORT}


@pytest.fixture
def api(api, settings):
    """The conftest's HTTPS client, logged in as the admin the service seeds from the inventory's
    secrets (``admin_password``; e-mail as ``deploys/roles/order_stack.api_environment`` sets it).
    The password is sent in the login form only, never printed: a failure shows the status alone."""
    from deploys.roles.order_stack import api_environment

    response = api.post(
        "/api/login/access-token",
        data={
            "username": api_environment(settings)["ADMIN_EMAIL"],
            "password": settings.secrets.admin_password.get_secret_value(),
        },
    )
    assert response.status_code == 200, f"admin login failed with HTTP {response.status_code}"
    api.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return api


def test_env_file_is_private(app_host, settings):
    path = StackLayout(settings.stack_dir).env_file
    env = app_host.file(path)
    assert env.is_file, f"{path} is missing"
    assert env.mode == 0o600, f".env has mode {env.mode:04o}, want 0600"


def test_stack_containers_are_healthy(app_host, settings):
    containers = compose_containers(app_host, settings.compose_project)
    assert containers, f"no containers in compose project {settings.compose_project!r}"
    assert container_problems(containers) == []


def test_nginx_serves_tls_on_443_inside_the_host(app_host, settings):
    url = "https://127.0.0.1/api/health"
    if app_host.exists("curl"):
        result = app_host.run(
            "curl -sSk --max-time 10 -H %s -o /dev/null -w '%%{http_code}' %s", f"Host: {settings.domain}", url
        )
    else:  # minimal hosts: python3 is always there (pyinfra needs it)
        result = app_host.run(
            "python3 -c %s",
            "import ssl,urllib.request as u;"
            f"r=u.urlopen(u.Request('{url}',headers={{'Host':'{settings.domain}'}}),"
            "context=ssl._create_unverified_context(),timeout=10);print(r.status,end='')",
        )
    assert (result.rc, result.stdout.strip()) == (0, "200"), f"inside the host: {result.stderr.strip()}"


def test_https_from_the_test_machine(app_name, api, settings):
    response = api.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

    # The handshake itself: a modern protocol, a certificate presented for the domain (SNI).
    parts = urlsplit(settings.public_https_url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((parts.hostname, parts.port or 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=settings.domain) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.getpeercert(binary_form=True), "no certificate presented"


def test_http_redirects_to_https(app_name, settings):
    import httpx

    response = httpx.get(
        f"{settings.public_http_url}/api/health",
        headers={"Host": settings.domain},
        follow_redirects=False,
        timeout=15,
        trust_env=settings.environment != "local",
    )
    assert response.status_code in (301, 308)
    # to the public HTTPS port of the inventory (left out of the URL when it is 443)
    from deploys.roles.order_stack import https_port_suffix

    wanted = f"https://{settings.domain}{https_port_suffix(settings.https_public_port)}/api/health"
    assert response.headers.get("location", "") == wanted, response.headers


def test_order_created_and_read_back_over_https(app_name, api):
    created = api.post("/api/orders", json=ORDER)
    assert created.status_code == 201, created.text
    check_order(created.json())

    read = api.get(f"/api/orders/{created.json()['id']}")
    assert read.status_code == 200, read.text
    check_order(read.json())
    assert same_order(created.json(), read.json())


@pytest.mark.parametrize("port", DATA_STORE_PORTS.values(), ids=DATA_STORE_PORTS.keys())
def test_data_stores_unreachable_from_outside(app_name, orderops_inventory, port):
    ip = orderops_inventory.get(app_name).data.get("testhost_ip")  # harness data, not a setting
    if not ip:
        pytest.skip("no testhost_ip in the inventory: the test machine has no direct route to compare")

    def connects(target_port: int) -> bool:
        try:
            socket.create_connection((ip, target_port), timeout=3).close()
        except (ConnectionRefusedError, TimeoutError):
            return False
        return True

    # Control: the address does reach the host, or "unreachable" would prove nothing.
    assert connects(443), f"{ip}:443 unreachable from the test machine: wrong testhost_ip?"
    assert not connects(port), f"{ip}:{port} accepts connections from outside the host"


@pytest.mark.parametrize("port", DATA_STORE_PORTS.values(), ids=DATA_STORE_PORTS.keys())
def test_data_stores_not_listening_on_host_interfaces(app_host, port):
    exposed = [f"{addr}:{p}" for addr, p in listening_tcp(app_host) if p == port and not is_loopback(addr)]
    assert exposed == [], f"listening on {exposed}"


def test_only_nginx_ports_are_published(app_host, settings):
    published = published_ports(compose_containers(app_host, settings.compose_project))
    store_ports = set(DATA_STORE_PORTS.values())
    data_store = [p for p in published if p[1] in store_ports or p[2] in store_ports]
    assert data_store == [], f"data store ports published: {data_store}"
    # with the monitoring stack on its own host, nginx's /metrics listener too, on the host's address only
    metrics = {METRICS_PORT} if settings.monitoring_part == "agent" else set()
    assert {p[1] for p in published} <= {80, 443} | metrics, f"published: {published}"
    on = {c["Publishers"][i]["URL"] for c in compose_containers(app_host, settings.compose_project)
          for i, p in enumerate(c.get("Publishers") or []) if p.get("PublishedPort") in metrics}
    assert on <= {settings.monitoring_address}, f"/metrics listener published on {on}"


@pytest.mark.disruptive
def test_order_survives_compose_restart(app_host, settings, api):
    created = api.post("/api/orders", json=ORDER)
    assert created.status_code == 201, created.text
    order = created.json()
    project, stack_dir = settings.compose_project, settings.stack_dir
    count = len(compose_containers(app_host, project))

    result = app_host.run(compose_command(project, stack_dir, "restart"))
    assert result.rc == 0, f"restart failed: {result.stderr.strip()}"

    problems = wait_healthy(app_host, project, expected=count, timeout=settings.health_timeout)
    assert problems == [], f"not healthy {settings.health_timeout}s after the restart"

    def read_back():
        try:
            response = api.get(f"/api/orders/{order['id']}")
        except Exception:  # nginx may still be coming up  # noqa: BLE001
            return None
        return response if response.status_code == 200 else None

    response = wait_until(read_back, timeout=60)
    assert response is not None, f"order {order['id']} not readable after the restart"
    assert same_order(order, response.json())
