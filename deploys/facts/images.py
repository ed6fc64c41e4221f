"""Facts about Docker images on a host."""

from __future__ import annotations

import json

from pyinfra.api import FactBase, QuoteString, StringCommand

__all__ = ["DockerImageIds", "DockerRepositoryTags"]


class DockerImageIds(FactBase):
    """Image IDs of image references on the host.

    + refs: image references (``repo:tag`` or ``repo@sha256:...``)

    Returns ``{ref: "sha256:..." or None}``; ``None`` when the host lacks that image.
    """

    requires_command = "docker"

    @staticmethod
    def default() -> dict[str, str | None]:
        return {}

    def command(self, refs: list[str]) -> StringCommand:
        parts: list = ["for r in"]
        parts.extend(QuoteString(ref) for ref in refs)
        parts.append(
            '; do printf "%s %s\\n" "$r" "$(docker image inspect --format "{{.Id}}" "$r" 2>/dev/null || echo -)"; done',
        )
        return StringCommand(*parts)

    def process(self, output: list[str]) -> dict[str, str | None]:
        result: dict[str, str | None] = {}
        for line in output:
            ref, _, image_id = line.strip().partition(" ")
            if ref:
                result[ref] = image_id if image_id.startswith("sha256:") else None
        return result


class DockerRepositoryTags(FactBase):
    """Tags of one repository on the host, newest first.

    + repository: repository name without tag, e.g. ``orderops/order-service``

    Reads ``docker images --format '{{json .}}'`` (one JSON object per image). Returns
    ``[{"tag": str, "id": "sha256:...", "created": "<docker CreatedAt text>"}]`` sorted by
    creation time, newest first (``docker images`` order); untagged (``<none>``) images are left
    out. Raises ``ValueError`` naming a line that is not such an object.
    """

    requires_command = "docker"

    @staticmethod
    def default() -> list[dict[str, str]]:
        return []

    def command(self, repository: str) -> StringCommand:
        return StringCommand("docker", "images", "--no-trunc", "--format", QuoteString("{{json .}}"), QuoteString(repository))

    def process(self, output: list[str]) -> list[dict[str, str]]:
        rows = []
        for line in filter(None, (line.strip() for line in output)):
            try:
                doc = json.loads(line)
                row = {"tag": doc["Tag"], "id": doc["ID"], "created": doc["CreatedAt"]}
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"not a docker images JSON object: {line[:120]!r}") from None
            if row["tag"] != "<none>":
                rows.append(row)
        return rows
