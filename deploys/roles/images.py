"""Role ``images``: the stack's images on the host, by the transport the inventory chooses."""

from __future__ import annotations

from pyinfra.api import deploy

from deploys.operations import images as image_ops
from inventories.schema import HostSettings

__all__ = ["images"]


@deploy("images")
def images(settings: HostSettings, upload_dir: str) -> None:
    """Make every image of the order stack present on the host with the controller's content."""
    image_ops.present(
        name=f"Stack images ({settings.image_transport})",
        refs=list(settings.images.refs().values()),
        transport=settings.image_transport,
        upload_dir=upload_dir,
    )
