"""The executed notebook of a run (``report.ipynb``), written directly with nbformat.

No kernel is involved: the notebook is nbformat v4 with one Markdown cell per step's
documentation followed by a code cell whose source names the step and whose outputs are the
per-host results (a Markdown table as ``display_data``, with a ``text/plain`` fallback), the
step's tables and its attached files (``files``): a PNG in the run directory is embedded as an
``image/png`` output (base64, so the notebook stands alone), any other file is a Markdown link.
It opens and renders in Jupyter as an already executed notebook.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from runbooks.engine.reports import hosts_by_steps, md_table
from runbooks.engine.rotation import NOTEBOOK_FILE

__all__ = ["build_notebook", "write_notebook"]


def _display(markdown: str, plain: str) -> Any:
    return v4.new_output("display_data", data={"text/markdown": markdown, "text/plain": plain})


def _attachment(run_dir: Path | None, host: str, name: str) -> Any:
    """The output of one attached file: its PNG inline, else a link; a missing file or a name
    that leaves the run directory is said so (stderr), never read."""
    path = (run_dir / name) if run_dir is not None else None
    inside = path is not None and path.resolve().parent == run_dir.resolve()
    if not inside or not path.is_file():
        return v4.new_output("stream", name="stderr", text=f"{host}: attachment {name} not in the run directory\n")
    if name.lower().endswith(".png"):
        return v4.new_output("display_data", data={"image/png": base64.b64encode(path.read_bytes()).decode("ascii"),
                                                   "text/plain": f"<{host}: {name}>"})
    text = f"**{host}: attachment** [{name}]({name})"
    return _display(text, text)


def build_notebook(result: dict[str, Any], run_dir: Path | None = None) -> nbformat.NotebookNode:
    """An nbformat v4 notebook of a (masked) ``result.json`` dict; attached files are read from
    ``run_dir`` (the run directory; ``None``: attachments are listed as missing)."""
    r = result
    nb = v4.new_notebook()
    nb.metadata["orderops"] = {"run_id": r["run_id"], "runbook": r["runbook"], "schema_version": r["schema_version"]}
    nb.metadata["language_info"] = {"name": "python"}
    header = (
        f"# {r['title']} (`{r['runbook']}`)\n\n"
        f"run `{r['run_id']}` · status **{r['status']}**{' · check mode' if r['check'] else ''} · "
        f"{r['started_at']} → {r['finished_at']} ({r['duration_s']:.1f} s)\n\n"
        f"inventory `{r['inventory']}` · parameters `{json.dumps(r['params'], sort_keys=True)}`"
    )
    nb.cells.append(v4.new_markdown_cell(header))
    overview = md_table(*hosts_by_steps(r))
    cell = v4.new_code_cell("# overview: hosts by steps", execution_count=1)
    cell.outputs.append(_display(overview, overview))
    nb.cells.append(cell)
    for i, s in enumerate(r["steps"], 2):
        nb.cells.append(v4.new_markdown_cell(f"## {s['name']}\n\n{s['doc']}".rstrip()))
        src = f"# step {s['name']!r}: target={s['target']} executor={s['executor']} on_failure={s['on_failure']}"
        code = v4.new_code_cell(src, execution_count=i)
        rows = [[h, hr["status"], hr["message"], hr["attempts"], f"{hr['duration_s']:.1f}"] for h, hr in s["results"].items()]
        table = md_table(["host", "status", "message", "attempts", "seconds"], rows)
        code.outputs.append(_display(table, table))
        for h, hr in s["results"].items():
            for t in hr.get("tables", []):
                text = f"**{h}: {t['title']}**\n\n" + (md_table(t["columns"], t["rows"]) if t["rows"] else "_(empty)_")
                code.outputs.append(_display(text, text))
            for name in hr.get("files", []):
                code.outputs.append(_attachment(run_dir, h, name))
            if hr["status"] == "failed":
                code.outputs.append(v4.new_output("stream", name="stderr", text=f"{h}: {hr['message']}\n"))
        nb.cells.append(code)
    return nb


def write_notebook(run_dir: Path, result: dict[str, Any]) -> Path:
    """Validate and write ``report.ipynb``; returns its path."""
    nb = build_notebook(result, run_dir)
    nbformat.validate(nb)
    path = run_dir / NOTEBOOK_FILE
    nbformat.write(nb, str(path))
    path.chmod(0o600)
    return path
