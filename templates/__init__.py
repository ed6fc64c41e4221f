"""Jinja2 templates of config languages (nginx, sshd, systemd units, shell); data files (compose.yaml,
daemon.json) are built as data and written with yaml.safe_dump / json.dumps instead.

Every template renders with ``StrictUndefined``: a variable missing from the context raises
``jinja2.UndefinedError`` instead of silently rendering an empty string.
"""

from __future__ import annotations

import json

from pathlib import Path
from typing import Any

import jinja2

__all__ = ["TEMPLATE_DIR", "render"]

#: Folder holding the ``*.j2`` files.
TEMPLATE_DIR = Path(__file__).resolve().parent

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
#: JSON inline in YAML configs (a list of scrape targets): ``{{ targets | tojson_compact }}``.
_ENV.filters["tojson_compact"] = lambda v: json.dumps(v, separators=(",", ":"))


def render(name: str, **context: Any) -> str:
    """Render template ``name`` (path relative to ``templates/``, e.g. ``nginx/orderops.conf.j2``).

    Returns the rendered text. Raises ``jinja2.TemplateNotFound`` or ``jinja2.UndefinedError``.
    """
    return _ENV.get_template(name).render(**context)
