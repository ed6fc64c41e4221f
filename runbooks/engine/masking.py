"""Secret masking for everything a run writes or prints.

The secrets are every value of the inventory's secrets (``Secrets.values()`` of each host);
each occurrence in any string becomes :data:`MASK`. Masking is applied to events, result.json,
report.md, the notebook and the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Masker", "MASK"]

MASK = "********"


class Masker:
    """Replaces secret values in strings and nested JSON-like structures.

    Values shorter than 4 characters are ignored (they would mask ordinary text); longer values
    are replaced longest first, so a secret containing another is masked whole.
    """

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        """Add more secret values."""
        self._secrets = sorted(set(self._secrets) | {s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by :data:`MASK`."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def obj(self, value: Any) -> Any:
        """A copy of ``value`` (dicts, lists, tuples, strings, scalars) with strings masked (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.obj(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value
