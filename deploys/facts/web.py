"""The shipped front-end releases of a host (see :mod:`deploys.operations.web`).

Layout below the web root (``<stack_dir>/web``)::

    releases/<id>/      a complete release (its RELEASE file is written last, after verification)
    releases/.<id>.part an interrupted upload (ignored, replaced by the next one)
    current -> releases/<id>    what nginx serves
    previous -> releases/<id>   the release before (its hashed assets stay reachable)
    csp.conf            the Content-Security-Policy nginx sends (``set $orderops_web_csp "...";``):
                        the union of the current and the previous release's ``csp.txt``
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from deploys.contract.paths import WEB_CSP_CONF

__all__ = ["WebReleases", "parse_web_releases"]


def parse_web_releases(lines: list[str]) -> dict[str, Any]:
    """The releases and CSP state of a web root, from the lines of :class:`WebReleases`' command.

    Returns ``{"current": "<id>"|None, "previous": "<id>"|None, "releases": {<id>: <mtime s>},
    "current_policy": str|None, "previous_policy": str|None, "csp_conf_sha256": "<hex>"|None}``.

    Input lines: ``current <link target>``, ``previous <link target>``, ``release <mtime> <id>``,
    ``policy current|previous <first line of that release's csp.txt>`` and ``csp.conf <sha256 hex>``
    (of the root's csp.conf, when present); a link target outside ``releases/`` counts as none, an
    empty policy as none; other lines are ignored.
    """
    out: dict[str, Any] = {"current": None, "previous": None, "releases": {},
                           "current_policy": None, "previous_policy": None, "csp_conf_sha256": None}
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind in ("current", "previous"):
            target = rest.strip()
            out[kind] = target.removeprefix("releases/") if target.startswith("releases/") and "/" not in target[9:] else None
        elif kind == "release":
            mtime, _, rid = rest.partition(" ")
            if mtime.isdigit() and rid:
                out["releases"][rid] = int(mtime)
        elif kind == "policy":
            which, _, policy = rest.partition(" ")
            if which in ("current", "previous"):
                out[f"{which}_policy"] = policy.strip() or None
        elif kind == "csp.conf":
            digest = rest.strip()
            if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                out["csp_conf_sha256"] = digest
    return out


class WebReleases(FactBase):
    """The releases below ``root``, where ``current``/``previous`` point, their policies (``csp.txt``)
    and the SHA-256 of the root's ``csp.conf`` (nothing when ``root`` is missing)."""

    def command(self, root: str) -> StringCommand:
        return StringCommand(
            StringCommand("r=", QuoteString(root), ";", _separator=""),
            'if [ -d "$r" ]; then',
            'printf "current %s\\n" "$(readlink "$r/current" 2>/dev/null)";',
            'printf "previous %s\\n" "$(readlink "$r/previous" 2>/dev/null)";',
            'for d in "$r"/releases/*/; do [ -f "$d/RELEASE" ] && printf "release %s %s\\n" "$(stat -c %Y "$d")" "$(basename "$d")"; done;',
            'for l in current previous; do printf "policy %s %s\\n" "$l" "$(head -n 1 "$r/$l/csp.txt" 2>/dev/null)"; done;',
            StringCommand(StringCommand("c=", QuoteString(WEB_CSP_CONF), ";", _separator=""),
                          '[ -f "$r/$c" ] && printf "csp.conf %s\\n" "$(sha256sum < "$r/$c" | cut -c1-64)";'),
            "fi; true",
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_web_releases(output)
