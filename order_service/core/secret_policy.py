"""The one secret policy of orderops: the service enforces it at start, the inventory schema
(``inventories/schema.py``) before any host is touched, so both accept and refuse the same values.

Standard library only: the deploy side imports it without the service's dependencies.

- Format (every environment): non-empty, every character printable (``str.isprintable``: letters
  of any script, digits, punctuation including quotes, backslash, ``$``, backtick, ``#`` and the
  space; no control characters, tabs or line breaks, which no ``.env`` line can hold).
- Strength (every environment except ``local``): at least :data:`MIN_SECRET_LENGTH` characters,
  :data:`MIN_SECRET_DISTINCT_CHARS` distinct ones, and none of :data:`WEAK_SECRET_WORDS` inside
  (case-insensitive), so ``postgres-6f2c9a1e8b7d4c3f90ab`` is refused by both.

Reasons returned never contain the value.
"""

from __future__ import annotations

__all__ = [
    "WEAK_SECRET_WORDS",
    "MIN_SECRET_LENGTH",
    "MIN_SECRET_DISTINCT_CHARS",
    "secret_format_problem",
    "secret_weakness",
]

#: Refused as substrings of a secret outside ``local`` (compared lower-cased).
WEAK_SECRET_WORDS: tuple[str, ...] = (
    "changethis",
    "changeme",
    "password",
    "secret",
    "default",
    "example",
    "postgres",
    "redis",
)
#: Minimum length (characters) of any secret outside ``local``.
MIN_SECRET_LENGTH = 24
#: Minimum number of distinct characters outside ``local`` (refuses "aaaa...").
MIN_SECRET_DISTINCT_CHARS = 8


def secret_format_problem(value: str) -> str | None:
    """Say why ``value`` cannot be carried as a secret at all (any environment), else ``None``."""
    if not value:
        return "it is empty"
    if not value.isprintable():
        return "it contains a control character, tab or line break (printable characters only)"
    return None


def secret_weakness(value: str) -> str | None:
    """Say why ``value`` is not acceptable as a secret outside ``local``, else ``None``.

    Checks :func:`secret_format_problem` first, then length, weak words and variety.
    """
    problem = secret_format_problem(value)
    if problem is not None:
        return problem
    if len(value) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} characters"
    lowered = value.lower()
    for word in WEAK_SECRET_WORDS:
        if word in lowered:
            return f"it contains the default/weak word {word!r}"
    if len(set(value)) < MIN_SECRET_DISTINCT_CHARS:
        return f"it has fewer than {MIN_SECRET_DISTINCT_CHARS} distinct characters"
    return None
