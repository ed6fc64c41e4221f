"""Role ``images``: the stack's images on the host, by the transport the inventory chooses."""

from __future__ import annotations

import os
from pathlib import Path

from pyinfra.api import deploy

from deploys.operations import images as image_ops
from inventories.schema import HostSettings

__all__ = ["images", "archive_cache_dir"]


def archive_cache_dir() -> Path:
    """Controller directory for ``docker save`` archives: ``$ORDEROPS_STATE_DIR/cache/images``."""
    return Path(os.environ.get("ORDEROPS_STATE_DIR", ".orderops")) / "cache" / "images"


@deploy("images")
def images(settings: HostSettings, upload_dir: str) -> None:
    """Make every image of the order stack present on the host with the controller's content."""
    image_ops.present(
        name=f"Stack images ({settings.image_transport})",
        refs=list(settings.images.refs().values()),
        transport=settings.image_transport,
        cache_dir=str(archive_cache_dir()),
        upload_dir=upload_dir,
    )
