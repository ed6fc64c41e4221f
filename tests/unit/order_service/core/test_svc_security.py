"""VerifiedTokens: a reused token skips the signature check but never outlives its expiry."""

from __future__ import annotations

import time
import uuid

import pytest

from order_service.core import security
from order_service.core.security import InvalidTokenError, VerifiedTokens, create_access_token

SECRET = "unit-test-secret-" + "s" * 32


def test_same_answer_as_a_full_check_and_cached() -> None:
    user_id = uuid.uuid4()
    token, _ = create_access_token(user_id, "operator", SECRET, 5)
    tokens = VerifiedTokens(SECRET)
    first = tokens.decode(token)
    assert first == security.decode_access_token(token, SECRET)
    assert (first.user_id, first.role) == (user_id, "operator")
    assert tokens.decode(token) is first  # second use: from the cache


def test_bad_tokens_are_refused_every_time() -> None:
    token, _ = create_access_token(uuid.uuid4(), "admin", SECRET, 5)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    tokens = VerifiedTokens(SECRET)
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            tokens.decode(tampered)
    with pytest.raises(InvalidTokenError):
        VerifiedTokens("another-secret-" + "o" * 32).decode(token)
    expired, _ = create_access_token(uuid.uuid4(), "admin", SECRET, -1)
    with pytest.raises(InvalidTokenError):
        tokens.decode(expired)


def test_a_cached_token_expires_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    token, lifetime = create_access_token(uuid.uuid4(), "customer", SECRET, 1)
    tokens = VerifiedTokens(SECRET, ttl_seconds=3600)
    tokens.decode(token)
    later = time.time() + lifetime + 1
    monkeypatch.setattr(security.time, "time", lambda: later)  # the clock moves past `exp`
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.decode(token)
