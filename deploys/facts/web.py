"""The shipped front-end releases of a host (see :mod:`deploys.operations.web`).

Layout below the web root (``<stack_dir>/web``)::

    releases/<id>/      a complete release (its RELEASE file is written last, after verification)
    releases/.<id>.part an interrupted upload (ignored, replaced by the next one)
    current -> releases/<id>    what nginx serves
    previous -> releases/<id>   the release before (its hashed assets stay reachable)
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

__all__ = ["WebReleases", "parse_web_releases"]


def parse_web_releases(lines: list[str]) -> dict[str, Any]:
    """``{"current": "<id>"|None, "previous": "<id>"|None, "releases": {<id>: <mtime s>}}``.

    Input lines: ``current <link target>``, ``previous <link target>``, ``release <mtime> <id>``;
    a link target outside ``releases/`` counts as none; other lines are ignored.
    """
    out: dict[str, Any] = {"current": None, "previous": None, "releases": {}}
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind in ("current", "previous"):
            target = rest.strip()
            out[kind] = target.removeprefix("releases/") if target.startswith("releases/") and "/" not in target[9:] else None
        elif kind == "release":
            mtime, _, rid = rest.partition(" ")
            if mtime.isdigit() and rid:
                out["releases"][rid] = int(mtime)
    return out


class WebReleases(FactBase):
    """The releases below ``root``, and where ``current``/``previous`` point (nothing when ``root`` is missing)."""

    def command(self, root: str) -> StringCommand:
        return StringCommand(
            StringCommand("r=", QuoteString(root), ";", _separator=""),
            'if [ -d "$r" ]; then',
            'printf "current %s\\n" "$(readlink "$r/current" 2>/dev/null)";',
            'printf "previous %s\\n" "$(readlink "$r/previous" 2>/dev/null)";',
            'for d in "$r"/releases/*/; do [ -f "$d/RELEASE" ] && printf "release %s %s\\n" "$(stat -c %Y "$d")" "$(basename "$d")"; done;',
            "fi; true",
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_web_releases(output)
