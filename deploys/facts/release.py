"""The host's release record (:mod:`deploys.contract.release`) as a pyinfra fact.

``deploys/site.py`` reads it, so a later converge keeps a version the emergency-redeploy runbook
recorded — until the inventory's own ``images.order_service`` changes
(:func:`deploys.contract.release.running_version`).
"""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys.contract.release import ReleaseRecord, parse_release, read_command

__all__ = ["RunningRelease"]


class RunningRelease(FactBase):
    """The host's :class:`~deploys.contract.release.ReleaseRecord`, or ``None`` (none, or unreadable)."""

    def command(self) -> str:
        return read_command()

    def process(self, output: list[str]) -> ReleaseRecord | None:
        return parse_release("\n".join(output))
