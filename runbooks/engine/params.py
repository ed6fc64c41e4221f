"""Runbook parameters: ``-p key=value`` strings -> the runbook's pydantic model.

Validation happens before any host is touched; the first problem raises
:class:`~runbooks.core.errors.ParameterError` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from runbooks.core.errors import ParameterError

__all__ = ["parse_assignments", "validate_params", "describe_params"]


def parse_assignments(runbook: str, pairs: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; raises :class:`ParameterError` for a pair
    without ``=`` or with an empty key, or a key given twice."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ParameterError(runbook, pair or "(empty)", "expected key=value")
        if key in values:
            raise ParameterError(runbook, key, "given twice")
        values[key] = value
    return values


def validate_params(runbook: str, model: type[BaseModel], values: Mapping[str, Any]) -> BaseModel:
    """Validate ``values`` (strings are coerced: ``"80"`` -> 80) into ``model``.

    Raises :class:`ParameterError` naming the first unknown, missing or invalid parameter.
    """
    try:
        return model.model_validate(dict(values))
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(parameters)"
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            raise ParameterError(runbook, loc, f"unknown parameter (known: {known})") from None
        msg = "required value is missing" if first["type"] == "missing" else first["msg"].removeprefix("Value error, ")
        raise ParameterError(runbook, loc, msg) from None


def describe_params(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """``[(name, type, default, description)]`` of a parameter model, for ``runbook list``."""
    rows = []
    for name, f in model.model_fields.items():
        type_name = getattr(f.annotation, "__name__", str(f.annotation))
        default = "(required)" if f.is_required() else repr(f.default)
        rows.append((name, type_name, default, f.description or ""))
    return rows
