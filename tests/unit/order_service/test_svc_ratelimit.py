"""The rate limiter (one Lua script for all of a request's counters) and the user cache, on real Redis."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from order_service.api.deps import Principal, UserCache
from order_service.core.redis_clients import make_async_redis
from order_service.models import Role
from order_service.ratelimit import KEY_PREFIX, Limit, RateLimited, RateLimiter
from tests.unit.order_service.conftest import REDIS_PASSWORD


def _run(settings: Any, *batches: tuple[Limit, ...]) -> list[BaseException | None]:
    """Hit each batch of limits in turn on one event loop; the exception of each (or None)."""

    async def main() -> list[BaseException | None]:
        client = make_async_redis(settings)
        limiter = RateLimiter(client)
        outcomes: list[BaseException | None] = []
        try:
            for batch in batches:
                try:
                    await limiter.hit(*batch)
                    outcomes.append(None)
                except RateLimited as exc:
                    outcomes.append(exc)
        finally:
            await client.aclose()
        return outcomes

    return asyncio.run(main())


def _keys(service_redis_proc: Any) -> dict[str, int]:
    client = redis.Redis(host="127.0.0.1", port=service_redis_proc.port, password=REDIS_PASSWORD)
    return {key.decode(): client.ttl(key) for key in client.scan_iter("*")}


def test_second_limit_exceeded_names_its_scope(settings: Any, clean_db: None, service_redis_proc: Any) -> None:
    user, ip = Limit("user", "u-1", 2, 60), Limit("ip", "192.0.2.1", 2, 30)
    outcomes = _run(settings, (user, ip), (ip,), (ip,), (user,), (user,))
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], RateLimited) and outcomes[2].scope == "ip"
    assert 1 <= outcomes[2].retry_after <= 30
    assert outcomes[3] is None  # the user's second request
    assert isinstance(outcomes[4], RateLimited) and outcomes[4].scope == "user"
    assert 1 <= outcomes[4].retry_after <= 60
    keys = _keys(service_redis_proc)
    assert len(keys) == 2 and all(key.startswith(f"{KEY_PREFIX}:") for key in keys)
    ttls = {("u-1" in key, "192.0.2.1" in key): ttl for key, ttl in keys.items()}
    assert set(ttls) == {(True, False), (False, True)}
    assert 30 < ttls[(True, False)] <= 60 and 0 < ttls[(False, True)] <= 30


def test_zero_disables_a_limit(settings: Any, clean_db: None, service_redis_proc: Any) -> None:
    assert _run(settings, *[(Limit("user", "u-2", 0, 60),)] * 5) == [None] * 5
    assert _keys(service_redis_proc) == {}


def test_unreachable_redis_lets_requests_through(
    settings_factory: Any, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory(REDIS_PORT=closed_port, DEPENDENCY_TIMEOUT_SECONDS=1)
    assert _run(settings, (Limit("user", "u-3", 1, 60),), (Limit("user", "u-3", 1, 60),)) == [None, None]
    assert "rate limiter unavailable" in caplog.text


class FakeClock:
    """A settable clock (seconds) for the cache's TTL."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _principal() -> Principal:
    return Principal(id=uuid.uuid4(), email="a@example.com", role=Role.customer, is_active=True,
                     created_at=datetime.now(UTC))


def test_user_cache_expires_and_forgets() -> None:
    clock = FakeClock()
    cache = UserCache(5, timer=clock)
    alice, bob = _principal(), _principal()
    cache.put(alice)
    cache.put(bob)
    clock.now += 4.9
    assert cache.get(alice.id) == alice
    cache.forget(bob.id)
    assert cache.get(bob.id) is None
    clock.now += 0.2
    assert cache.get(alice.id) is None


def test_user_cache_zero_caches_nothing_and_size_is_bounded() -> None:
    disabled = UserCache(0)
    principal = _principal()
    disabled.put(principal)
    assert disabled.get(principal.id) is None
    bounded = UserCache(60, timer=FakeClock())
    people = [_principal() for _ in range(UserCache.MAX_USERS + 1)]
    for person in people:
        bounded.put(person)
    assert bounded.get(people[0].id) is None  # the oldest was evicted
    assert bounded.get(people[-1].id) == people[-1]
