"""The one image-reference parser: ``[registry[:port]/]path[:tag][@digest]``.

Grammar after the Docker distribution reference (github.com/distribution/reference,
``reference.go``), restricted to what orderops accepts: lower-case path components, a tag of
1-128 ``[A-Za-z0-9_.-]`` characters not starting with ``.`` or ``-``, a ``sha256`` digest.
A ``host:port/`` prefix only counts before a slash, so ``registry:5000/app`` is a repository and
``app:5000`` a tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "parse_image_ref", "check_immutable"]

_IMAGE_REF = re.compile(
    r"^(?P<repo>(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference.

    + repository: ``[registry[:port]/]path`` without tag or digest
    + tag: the tag, or ``None``
    + digest: ``sha256:<64 hex>``, or ``None``
    """

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        return self.repository + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository with ``tag`` and no digest."""
        return ImageRef(self.repository, tag)


def parse_image_ref(ref: str) -> ImageRef:
    """Parse ``ref``; raises ``ValueError("not a valid image reference: ...")`` when it is none."""
    match = _IMAGE_REF.match(ref)
    if not match:
        raise ValueError(f"not a valid image reference: {ref!r}")
    return ImageRef(match.group("repo"), match.group("tag"), match.group("digest"))


def check_immutable(ref: str) -> str:
    """Return ``ref`` if it names an immutable image: a tag other than ``latest``, or a digest.

    Raises ``ValueError`` saying what is wrong (invalid, no tag or digest, ``latest``).
    """
    parsed = parse_image_ref(ref)
    if not parsed.tag and not parsed.digest:
        raise ValueError(f"{ref!r} has no tag or digest; use an immutable version tag")
    if parsed.tag == "latest" and not parsed.digest:
        raise ValueError(f"{ref!r}: 'latest' is mutable; use a version tag or a digest")
    return ref
