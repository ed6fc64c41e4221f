"""The running release of a host: the order-service image the host should run.

The emergency-redeploy runbook records it in ``/var/lib/orderops/release.json``::

    {"order_service": "<image ref>", "inventory_ref": "<the inventory's ref when recorded>",
     "previous": "<ref before>", "run_id": "...", "recorded_at": "2026-11-29T20:15:00Z"}

``deploys/site.py`` reads it through :class:`RunningRelease`, so a later converge keeps a
redeployed version (and the drift check does not flag it) — until the inventory's own
``images.order_service`` changes, which is a new deliberate release and wins
(:func:`deploys.roles.order_stack.effective_settings`).
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

__all__ = ["RunningRelease", "RELEASE_FILE", "parse_release"]

RELEASE_FILE = "/var/lib/orderops/release.json"


def parse_release(text: str) -> dict[str, Any] | None:
    """The release record from the file's text; ``None`` when absent, empty or not a JSON object."""
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("order_service"), str) else None


class RunningRelease(FactBase):
    """The host's release record (:data:`RELEASE_FILE`), or ``None``."""

    def command(self) -> str:
        return f"cat {RELEASE_FILE} 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, Any] | None:
        return parse_release("\n".join(output))
