"""``/metrics``: Prometheus text with request counts and latency histograms by route template and
status, orders created by status, order transitions, DB pool usage; and ``/api/ready`` reporting
migrations that are not at head."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from order_service.main import create_app


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_by_route_template_and_status(client: TestClient, order_body: dict[str, Any], admin_headers: dict[str, str]) -> None:
    before = _samples(client)
    order = client.post("/api/orders", json=order_body).json()
    client.get(f"/api/orders/{order['id']}")
    client.get("/api/orders/00000000-0000-4000-8000-000000000000")
    client.post(f"/api/orders/{order['id']}/transitions", json={"to": "paid"},
                headers={**admin_headers, "If-Match": '"1"'})
    client.get("/no/such/path")
    after = _samples(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    route = "/api/orders/{order_id}"
    assert delta("orderops_http_requests_total", method="GET", route=route, status="200") == 1
    assert delta("orderops_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("orderops_http_requests_total", method="POST", route="/api/orders", status="201") == 1
    assert delta("orderops_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("orderops_http_request_duration_seconds_count", method="GET", route=route, status="200") == 1
    assert delta("orderops_http_request_duration_seconds_bucket", method="GET", route=route, status="200", le="+Inf") == 1
    assert delta("orderops_orders_created_total", status="pending") == 1
    assert delta("orderops_order_transitions_total", from_status="pending", to_status="paid") == 1
    assert after[("orderops_db_pool_connections", (("state", "open"),))] >= 1
    assert ("orderops_db_pool_connections", (("state", "in_use"),)) in after
    assert after[("orderops_db_pool_limit", ())] >= 4
    # the raw path (with the id) never becomes a label
    assert not any(order["id"] in str(key) for key in after)


def test_metrics_are_not_in_the_openapi_schema(client: TestClient) -> None:
    assert "/metrics" not in client.get("/api/openapi.json").json()["paths"]


def test_ready_is_503_when_migrations_are_behind(settings: Any, clean_db: None) -> None:
    app = create_app(settings)
    app.state.migration_heads = frozenset({"9999"})  # this code expects a newer revision
    with TestClient(app) as client:
        response = client.get("/api/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "error: at 0002, head 9999"
    assert response.json()["checks"]["database"] == "ok"
