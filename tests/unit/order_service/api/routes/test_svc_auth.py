"""Access: OAuth2 password flow, JWT expiry, roles (customer / operator / admin) incl. denials,
user management, rate limits (per user and per address, 429 + Retry-After), CORS allowlist."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from order_service.core.security import create_access_token, hash_password, verify_password
from order_service.main import create_app
from tests.unit.order_service.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login

Headers = dict[str, str]


def test_password_hashes_are_bcrypt_and_verify() -> None:
    hashed = hash_password("correct horse battery staple " * 5, rounds=4)  # > 72 bytes is fine
    assert hashed.startswith("$2b$04$")
    assert verify_password("correct horse battery staple " * 5, hashed)
    assert not verify_password("correct horse battery staple " * 4, hashed)
    assert not verify_password("anything", None)


def test_every_order_route_needs_a_token(anon_client: TestClient, order_body: dict[str, Any]) -> None:
    some_id = uuid.uuid4()
    for method, path in [
        ("POST", "/api/orders"),
        ("GET", "/api/orders"),
        ("GET", f"/api/orders/{some_id}"),
        ("POST", f"/api/orders/{some_id}/transitions"),
        ("GET", f"/api/orders/{some_id}/attachments"),
        ("GET", "/api/users/me"),
    ]:
        response = anon_client.request(method, path, json=order_body if method == "POST" else None)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_login_issues_an_expiring_token(anon_client: TestClient, settings: Any) -> None:
    response = anon_client.post("/api/login/access-token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    claims = jwt.decode(body["access_token"], settings.SECRET_KEY.get_secret_value(), algorithms=["HS256"])
    assert claims["role"] == "admin" and claims["exp"] - claims["iat"] == body["expires_in"]
    me = anon_client.get("/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["email"] == ADMIN_EMAIL and "hashed_password" not in me.json()


@pytest.mark.parametrize(
    ("username", "password"),
    [(ADMIN_EMAIL, "wrong-password"), ("nobody@example.com", ADMIN_PASSWORD), ("x" * 300, "y")],
)
def test_bad_credentials_are_400(anon_client: TestClient, username: str, password: str, caplog: Any) -> None:
    with caplog.at_level("WARNING", logger="order_service.api.routes.login"):
        response = anon_client.post("/api/login/access-token", data={"username": username, "password": password})
    assert response.status_code == 400
    assert response.json() == {"detail": "incorrect email or password"}
    # the refusal names the client address (what a ban reads), never the submitted credentials
    refused = [r for r in caplog.records if r.getMessage() == "login refused"]
    assert len(refused) == 1 and refused[0].levelname == "WARNING" and refused[0].client == "testclient"
    assert all(password not in r.getMessage() and username not in r.getMessage() for r in caplog.records)


def test_expired_forged_and_garbage_tokens_are_401(anon_client: TestClient, settings: Any, admin_headers: Headers) -> None:
    admin_id = anon_client.get("/api/users/me", headers=admin_headers).json()["id"]
    secret = settings.SECRET_KEY.get_secret_value()
    now = int(time.time())
    expired = jwt.encode({"sub": admin_id, "role": "admin", "iat": now - 120, "exp": now - 60, "typ": "access"},
                         secret, algorithm="HS256")
    forged, _ = create_access_token(uuid.UUID(admin_id), "admin", "another-secret-of-sufficient-length!", 5)
    unsigned = jwt.encode({"sub": admin_id, "iat": now, "exp": now + 60, "typ": "access"}, None, algorithm="none")
    for token in (expired, forged, unsigned, "garbage", "a.b.c"):
        response = anon_client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


def test_deactivated_user_loses_access(anon_client: TestClient, admin_headers: Headers) -> None:
    created = anon_client.post("/api/users", headers=admin_headers,
                               json={"email": "Temp@Example.com", "password": "temporary-pass"}).json()
    assert created["email"] == "temp@example.com" and created["role"] == "customer"
    headers = login(anon_client, "temp@example.com", "temporary-pass")
    assert anon_client.get("/api/users/me", headers=headers).status_code == 200
    patched = anon_client.patch(f"/api/users/{created['id']}", headers=admin_headers, json={"is_active": False})
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert anon_client.get("/api/users/me", headers=headers).status_code == 401
    assert anon_client.post("/api/login/access-token",
                            data={"username": "temp@example.com", "password": "temporary-pass"}).status_code == 400


def test_user_management_is_for_admins_only(
    anon_client: TestClient, admin_headers: Headers, user_factory: Callable[..., Headers]
) -> None:
    body = {"email": "new@example.com", "password": "long enough", "role": "operator"}
    for role in ("customer", "operator"):
        headers = user_factory(role)
        assert anon_client.get("/api/users", headers=headers).status_code == 403
        assert anon_client.post("/api/users", headers=headers, json=body).status_code == 403
        me = anon_client.get("/api/users/me", headers=headers).json()
        assert anon_client.patch(f"/api/users/{me['id']}", headers=headers, json={"role": "admin"}).status_code == 403
    assert anon_client.post("/api/users", headers=admin_headers, json=body).status_code == 201
    assert anon_client.post("/api/users", headers=admin_headers, json=body).status_code == 409
    emails = [user["email"] for user in anon_client.get("/api/users", headers=admin_headers).json()]
    assert "new@example.com" in emails and ADMIN_EMAIL in emails
    bad = anon_client.post("/api/users", headers=admin_headers, json={**body, "email": "x@y.z", "is_admin": True})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "is_admin"]
    assert anon_client.get(f"/api/users/{uuid.uuid4()}", headers=admin_headers).status_code == 404


def test_last_admin_cannot_demote_itself(anon_client: TestClient, admin_headers: Headers) -> None:
    me = anon_client.get("/api/users/me", headers=admin_headers).json()
    response = anon_client.patch(f"/api/users/{me['id']}", headers=admin_headers, json={"role": "customer"})
    assert response.status_code == 409


def test_admin_is_seeded_once(settings: Any, clean_db: None, pg_server: Any, migrated_db: str) -> None:
    for _ in range(2):
        with TestClient(create_app(settings)):
            pass
    with pg_server.admin(migrated_db) as conn:
        rows = conn.execute("SELECT email, role FROM users").fetchall()
    assert rows == [(ADMIN_EMAIL, "admin")]


def test_customer_sees_only_own_orders(
    anon_client: TestClient, user_factory: Callable[..., Headers], order_body: dict[str, Any]
) -> None:
    alice, bob, operator = user_factory("customer"), user_factory("customer"), user_factory("operator")
    order = anon_client.post("/api/orders", json=order_body, headers=alice).json()
    assert anon_client.get(f"/api/orders/{order['id']}", headers=alice).status_code == 200
    assert anon_client.get(f"/api/orders/{order['id']}", headers=bob).status_code == 404  # not revealed
    assert anon_client.get("/api/orders", headers=bob).json()["items"] == []
    assert anon_client.get(f"/api/orders/{order['id']}/transitions", headers=bob).status_code == 404
    assert [o["id"] for o in anon_client.get("/api/orders", headers=operator).json()["items"]] == [order["id"]]
    assert anon_client.get(f"/api/orders/{order['id']}", headers=operator).status_code == 200


def test_rate_limit_per_user_is_429_with_retry_after(settings_factory: Any, clean_db: None) -> None:
    app = create_app(settings_factory(RATE_LIMIT_USER=3, RATE_LIMIT_IP=1000))
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        answers = [client.get("/api/users/me", headers=headers) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 61
        assert "user" in answers[-1].json()["detail"]


def test_rate_limit_per_address_covers_login(settings_factory: Any, clean_db: None) -> None:
    app = create_app(settings_factory(RATE_LIMIT_IP=2, RATE_LIMIT_USER=1000))
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [
            client.post("/api/login/access-token", data={"username": ADMIN_EMAIL, "password": "nope"}).status_code
            for _ in range(3)
        ]
        assert codes == [400, 400, 429]
        # another address has its own budget
        other = TestClient(app, raise_server_exceptions=False, client=("198.51.100.9", 5000))
        assert other.post("/api/login/access-token",
                          data={"username": ADMIN_EMAIL, "password": "nope"}).status_code == 400


def test_cors_allowlist(settings_factory: Any, clean_db: None) -> None:
    app = create_app(settings_factory(CORS_ORIGINS="https://shop.example.com"))
    with TestClient(app) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}
        allowed = client.options("/api/orders", headers={"Origin": "https://shop.example.com", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
        denied = client.options("/api/orders", headers={"Origin": "https://evil.example.net", **preflight})
        assert denied.status_code == 400
        assert "Access-Control-Allow-Origin" not in denied.headers
        simple = client.get("/api/health", headers={"Origin": "https://evil.example.net"})
        assert "Access-Control-Allow-Origin" not in simple.headers


def test_redis_down_rate_limits_fail_open_idempotency_fails_closed(
    settings_factory: Any, clean_db: None, closed_port: int, order_body: dict[str, Any]
) -> None:
    """Without Redis the limiter lets requests through (logged); an Idempotency-Key cannot be
    honoured, so such a request is a 503 rather than a possible duplicate."""
    app = create_app(settings_factory(REDIS_PORT=closed_port, DEPENDENCY_TIMEOUT_SECONDS=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        assert client.post("/api/orders", json=order_body).status_code == 201
        keyed = client.post("/api/orders", json=order_body, headers={"Idempotency-Key": "k-1"})
        assert keyed.status_code == 503
        assert keyed.json() == {"detail": "redis unavailable"}
