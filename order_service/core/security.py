"""Passwords (bcrypt) and access tokens (JWT, HS256).

Passwords are hashed as ``bcrypt(base64(sha256(password)))``: the SHA-256 step
removes bcrypt's 72-byte input limit (and its silent truncation) while bcrypt
keeps the cost. Tokens carry ``sub`` (user id), ``role``, ``iat`` and ``exp``
(seconds since the epoch) and are signed with ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
from cachetools import TTLCache

ALGORITHM = "HS256"
#: A valid hash of a random password, checked when the user does not exist (same timing).
_DUMMY_HASH = bcrypt.hashpw(b"orderops-no-such-user", bcrypt.gensalt(rounds=4)).decode()


class InvalidTokenError(ValueError):
    """The token is malformed, badly signed, expired or lacks a claim."""


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())


def hash_password(password: str, rounds: int = 12) -> str:
    """bcrypt hash (``$2b$<rounds>$...``, 60 characters) of ``password`` (any length)."""
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, hashed: str | None) -> bool:
    """``True`` when ``password`` matches ``hashed``; a ``None`` hash is checked against a dummy (False)."""
    try:
        matched = bcrypt.checkpw(_prehash(password), (hashed or _DUMMY_HASH).encode("ascii"))
    except ValueError:
        return False
    return matched and hashed is not None


@dataclass(frozen=True)
class TokenClaims:
    """The claims the service reads from a valid token."""

    user_id: uuid.UUID
    role: str
    expires_at: datetime


def create_access_token(user_id: uuid.UUID, role: str, secret: str, expires_minutes: int) -> tuple[str, int]:
    """A signed JWT for ``user_id``; returns ``(token, lifetime in seconds)``."""
    now = datetime.now(UTC)
    lifetime = timedelta(minutes=expires_minutes)
    claims = {"sub": str(user_id), "role": role, "iat": now, "exp": now + lifetime, "typ": "access"}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), int(lifetime.total_seconds())


def decode_access_token(token: str, secret: str) -> TokenClaims:
    """Verify signature and expiry (no leeway); raises :class:`InvalidTokenError` on any problem."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub"]}
        )
        if claims.get("typ") != "access":
            raise InvalidTokenError("not an access token")
        return TokenClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            role=str(claims.get("role", "")),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidTokenError(str(exc)) from exc


class VerifiedTokens:
    """Tokens already verified by this process, so a reused token skips the signature check.

    :meth:`decode` answers like :func:`decode_access_token` for ``secret``: a token seen
    before is taken from a :class:`cachetools.TTLCache` (at most ``max_tokens`` tokens, each
    kept up to ``ttl_seconds``) and its expiry checked against the clock again; a new token
    is verified in full. Only tokens that verified are kept, so a bad one costs a full check
    every time. One instance per application (per secret); thread-safe.
    """

    def __init__(self, secret: str, ttl_seconds: float = 60.0, max_tokens: int = 10_000) -> None:
        self._secret = secret
        self._cache: TTLCache[str, tuple[float, TokenClaims]] = TTLCache(
            maxsize=max_tokens, ttl=ttl_seconds, timer=time.monotonic
        )
        self._lock = threading.Lock()

    def decode(self, token: str) -> TokenClaims:
        """The claims of ``token``; raises :class:`InvalidTokenError` as :func:`decode_access_token` does."""
        with self._lock:
            entry = self._cache.get(token)
        if entry is not None:
            expires, claims = entry
            if time.time() < expires:
                return claims
            raise InvalidTokenError("Signature has expired")
        claims = decode_access_token(token, self._secret)
        with self._lock:
            self._cache[token] = (claims.expires_at.timestamp(), claims)
        return claims
