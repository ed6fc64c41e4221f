"""The executable notebook of a runbook (``runbook notebook NAME``), built with nbformat.

Not to be confused with :mod:`runbooks.engine.notebook`, the *record* of a finished run. The
notebook written here runs the runbook when its cells run (in Jupyter, or headless with
papermill). Its cells, in order:

1. Markdown: the runbook's title and documentation, how to run it;
2. code, tagged ``parameters`` (papermill's convention): the run's controls (``inventory``,
   ``limit``, ``check``, ``approve``, ``lock_at_start``, ``runs_dir``, ``run_id``), then one
   variable per runbook parameter, as a Python literal of its type, default or ``-p`` value;
3. code: ``session = open_session(...)`` (:func:`runbooks.live.open_session`): parameters and
   inventory validated here, before any host is touched;
4. per step: Markdown (the step's documentation and policies), then code
   ``step_<slug> = session.run("<step name>")`` whose output is the per-host results table;
   ``step_<slug>.data`` is the structured data (``{host: {...}}``);
5. code: ``result = session.close()`` (lock released, run records written).

Sources: nbformat v4 (https://nbformat.readthedocs.io), papermill's parameters cell
(https://papermill.readthedocs.io/en/latest/usage-parameterize.html).
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
from nbformat import v4
from pydantic import BaseModel

from runbooks.engine.model import Runbook

__all__ = ["build_live_notebook", "CONTROLS", "step_variable"]

#: The run controls in the parameters cell (name -> comment); runbook parameters must not reuse them.
CONTROLS = {
    "inventory": "pyinfra inventory file (path as for `runbook run -i`)",
    "limit": "host names, groups or globs, comma-separated; None: every host",
    "check": "check mode: changing steps only report what they would do",
    "approve": "approve destructive steps (for one cell only: pass approve to its session.run)",
    "lock_at_start": "take the host lock before the first step (default: before the first changing step)",
    "runs_dir": "parent of the run directory; None: .orderops/runs",
    "run_id": "run ID (the run directory's name); None: a new one",
}


def step_variable(name: str) -> str:
    """The variable a step's cell assigns: ``"Service status"`` -> ``step_service_status``."""
    return "step_" + (re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "unnamed")


def _literal(value: Any) -> str:
    """A Python literal of a JSON value (``repr`` is one for str/int/float/bool/None/list/dict)."""
    return repr(value)


def build_live_notebook(runbook: Runbook, *, inventory: str, values: dict[str, Any] | None = None,
                        limit: str | None = None, check: bool = False, approve: bool = False,
                        lock_at_start: bool = False) -> nbformat.NotebookNode:
    """The executable nbformat v4 notebook of ``runbook`` (see the module docstring).

    + values: runbook parameters already validated (``model.model_dump(mode="json")``, or a subset);
      parameters not given get their model default, required ones without a value ``None``
      (``open_session`` then reports them missing, naming the field)

    Raises ``ValueError`` when a runbook parameter's name is one of :data:`CONTROLS`.
    """
    values = dict(values or {})
    model: type[BaseModel] = runbook.params
    clash = sorted(set(model.model_fields) & set(CONTROLS))
    if clash:
        raise ValueError(f"runbook {runbook.name!r}: parameter(s) {', '.join(clash)} clash with the notebook controls")
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["orderops"] = {"runbook": runbook.name, "kind": "live"}
    steps = "\n".join(f"{i}. {s.name}" for i, s in enumerate(runbook.steps, 1))
    nb.cells.append(v4.new_markdown_cell(
        f"# {runbook.title} (`{runbook.name}`)\n\n{runbook.doc.strip()}\n\n"
        f"Steps:\n\n{steps}\n\n"
        "Run the cells in order (or one step again: that step runs again and is recorded as a second "
        "attempt). Every cell writes the run directory (`events.jsonl`, `result.json`, `report.md`) as "
        "`runbook run` does; the last cell releases the host lock. Headless: "
        f"`runbook notebook {runbook.name} -i INVENTORY --execute` (papermill)."))
    lines = ["# Parameters (papermill injects its own values after this cell)"]
    control_values = {"inventory": inventory, "limit": limit, "check": check, "approve": approve,
                      "lock_at_start": lock_at_start, "runs_dir": None, "run_id": None}
    for name, comment in CONTROLS.items():
        lines.append(f"{name} = {_literal(control_values[name])}  # {comment}")
    if model.model_fields:
        lines.append(f"# runbook parameters ({model.__name__})")
    for name, field in model.model_fields.items():
        if name in values:
            value = values[name]
        elif field.is_required():
            value = None
        else:
            value = field.get_default(call_default_factory=True)
        type_name = getattr(field.annotation, "__name__", str(field.annotation))
        note = " (required)" if field.is_required() else ""
        lines.append(f"{name} = {_literal(value)}  # {type_name}{note}: {field.description or ''}".rstrip())
    params_cell = v4.new_code_cell("\n".join(lines))
    params_cell.metadata["tags"] = ["parameters"]
    nb.cells.append(params_cell)
    args = ", ".join(f"{n}={n}" for n in model.model_fields)
    nb.cells.append(v4.new_code_cell(
        "from runbooks.live import open_session\n\n"
        "# parameters and inventory are validated here, before any host is touched\n"
        f"session = open_session({runbook.name!r}, inventory=inventory, limit=limit, check=check, approve=approve,\n"
        f"                       lock_at_start=lock_at_start, runs_dir=runs_dir, run_id=run_id,\n"
        f"                       params=dict({args}))\n"
        "session"))
    for s in runbook.steps:
        flags = ", ".join(f for f, on in (("changes the host", s.changes), ("destructive: needs approval", s.destructive)) if on)
        nb.cells.append(v4.new_markdown_cell(
            f"## {s.name}\n\n{s.doc}\n\n"
            f"*target `{s.target}` · executor `{s.executor}` · timeout {s.timeout:g} s · retries {s.retries} · "
            f"on failure `{s.on_failure}`{' · ' + flags if flags else ''}*".strip()))
        var = step_variable(s.name)
        approve_arg = "  # destructive: pass approve=True to run it" if s.destructive else ""
        nb.cells.append(v4.new_code_cell(f"{var} = session.run({s.name!r}){approve_arg}\n{var}"))
    nb.cells.append(v4.new_markdown_cell("## End of the run\n\nReleases the host lock and writes `report.ipynb`."))
    nb.cells.append(v4.new_code_cell("result = session.close()\nresult"))
    nbformat.validate(nb)
    return nb
