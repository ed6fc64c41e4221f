"""``runbook``: list, run and inspect runbooks (typer + rich).

    runbook list
    runbook run NAME -i INVENTORY [--limit HOSTS] [--check] [-p key=value ...] [--yes]
    runbook show RUN_ID
    runbook history
    runbook notebook NAME -i INVENTORY [-p key=value ...] [-o FILE] [--check] [--limit HOSTS] [--execute]

Exit codes: 0 the run had no failed step, 1 a step failed (or the run aborted), 2 a usage
problem (unknown runbook, bad parameter, bad inventory or --limit), reported in one line
before any host is touched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table as RichTable

from inventories.schema import DEFAULT_RUNBOOK_SCHEDULES
from runbooks.core.errors import RunbookError
from runbooks.engine.masking import Masker
from runbooks.engine.params import describe_params, parse_assignments, validate_params
from runbooks.engine.results import load_result
from runbooks.engine.rotation import REPORT_FILE, RESULT_FILE, run_dirs
from runbooks.engine.runner import default_runs_dir, new_run_id, run as run_runbook
from runbooks.engine.outputs import notify_webhook, write_textfile
from runbooks.engine.targets import load_targets, secret_values, select
from runbooks.library import all_runbooks, get_runbook

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="orderops runbooks: operations knowledge as code.")
console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)

_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "skipped": "dim", "aborted": "bold red"}


def _fail(message: str) -> None:
    err.print(f"[bold red]runbook:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command("list")
def list_runbooks() -> None:
    """List the runbooks with their steps and parameters."""
    for rb in all_runbooks():
        console.print(f"[bold]{rb.name}[/]  {rb.title}")
        if rb.name in DEFAULT_RUNBOOK_SCHEDULES:
            console.print(f"   [dim]scheduled by default (controller timer, runbook_schedules): {DEFAULT_RUNBOOK_SCHEDULES[rb.name]}[/]")
        for i, s in enumerate(rb.steps, 1):
            flags = ", ".join(f for f, on in (("changes", s.changes), ("destructive", s.destructive), (f"serial {s.serial}", s.serial)) if on)
            console.print(f"   {i}. {s.name}  [dim]({s.executor}, {s.target}{', ' + flags if flags else ''})[/]")
        for name, type_name, default, desc in describe_params(rb.params):
            console.print(f"   -p {name}=<{type_name}>  default {default}  [dim]{desc}[/]")


@app.command("run")
def run(
    name: str = typer.Argument(..., help="runbook name (see `runbook list`)"),
    inventory: Path = typer.Option(..., "-i", "--inventory", help="pyinfra inventory file (aws-* runbooks: an AWS inventory)"),
    limit: Optional[list[str]] = typer.Option(None, "--limit", help="host names, groups or globs (comma-separated)"),
    check: bool = typer.Option(False, "--check", help="check mode: change nothing, report what would change"),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="runbook parameter key=value"),
    yes: bool = typer.Option(False, "--yes", "-y", help="approve destructive steps"),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="parent of run directories [default: .orderops/runs]"),
    keep_runs: int = typer.Option(50, help="run directories kept (count)"),
    keep_days: float = typer.Option(30.0, help="run directories kept (age, days)"),
    forks: int = typer.Option(10, help="hosts run in parallel"),
    textfile_dir: Optional[Path] = typer.Option(None, help="write node-exporter textfile metrics here"),
    webhook_url: Optional[str] = typer.Option(None, help="POST a failed run's summary to this URL"),
) -> None:
    """Run a runbook against an inventory and write its run directory."""
    try:
        runbook = get_runbook(name)
        params = validate_params(name, runbook.params, parse_assignments(name, param or []))
        hosts = select(load_targets(inventory, runbook.environment), limit)
    except RunbookError as e:
        _fail(str(e))
        return
    from runbooks.executors.ansible import AnsibleExecutor
    from runbooks.executors.local import LocalExecutor
    from runbooks.executors.pyinfra_exec import PyinfraExecutor

    masker = Masker(secret_values(hosts))
    run_id = new_run_id(runbook.name)
    interactive = sys.stdin.isatty() and not yes

    def approve(step) -> bool:
        return typer.confirm(f"Step {step.name!r} is destructive. Run it on {len(hosts)} host(s)?", default=False)

    def progress(event: dict) -> None:
        if event["event"] == "step-start":
            console.print(f"[bold]▶ {event['step']}[/]")
        elif event["event"] == "host-result":
            st = event["status"]
            console.print(f"   [{_STYLE.get(st, '')}]{st:8}[/] {event['host']}: {escape(masker.text(event['message'])[:200])}")
        elif event["event"] == "retry":
            console.print(f"   [yellow]retry[/]    {event['host']}: {escape(event['message'][:200])}")

    console.print(f"runbook [bold]{runbook.name}[/] run {run_id} on {', '.join(h.name for h in hosts)}"
                  + (" [yellow](check mode)[/]" if check else ""))
    if runbook.environment == "aws":
        from runbooks.executors.aws import AwsExecutor

        with AwsExecutor() as aws, LocalExecutor() as local:
            result = run_runbook(
                runbook, hosts, params, {"aws": aws, "local": local},
                inventory=str(inventory), limit=limit or None, check=check,
                approve=True if yes else (approve if interactive else False), runs_dir=runs_dir, forks=forks,
                keep_runs=keep_runs, keep_days=keep_days, run_id=run_id, on_event=progress,
            )
        _finish(result, textfile_dir, webhook_url)
        return
    with AnsibleExecutor() as remote, LocalExecutor() as local, \
            PyinfraExecutor(str(inventory), run_id=run_id, relock=remote if runbook.lock else None) as deployer:
        result = run_runbook(
            runbook, hosts, params, {"remote": remote, "local": local, "pyinfra": deployer},
            inventory=str(inventory), limit=limit or None, check=check,
            approve=True if yes else (approve if interactive else False), runs_dir=runs_dir, forks=forks,
            keep_runs=keep_runs, keep_days=keep_days, run_id=run_id, on_event=progress,
        )
    _finish(result, textfile_dir, webhook_url)


def _finish(result, textfile_dir: Optional[Path], webhook_url: Optional[str]) -> None:
    """Print the matrix, write metrics, notify; exits 1 when a step failed, else 0."""
    data = {**result.model_dump(mode="json"), "run_dir": result.run_dir}  # run() returns the masked result
    _matrix(data)
    if textfile_dir:
        write_textfile(textfile_dir, data)
    if webhook_url and result.failed:
        problem = notify_webhook(webhook_url, data)
        if problem:
            err.print(f"runbook: {problem}")
    raise typer.Exit(1 if result.failed else 0)


def _matrix(data: dict) -> None:
    table = RichTable(title=f"{data['runbook']} · {data['run_id']} · {data['status']}")
    table.add_column("step")
    for h in data["hosts"]:
        table.add_column(h)
    for s in data["steps"]:
        cells = []
        for h in data["hosts"]:
            r = s["results"].get(h)
            cells.append(f"[{_STYLE.get(r['status'], '')}]{r['status']}[/]" if r else "-")
        table.add_row(s["name"], *cells)
    console.print(table)
    console.print(f"report: {data.get('run_dir', '')}/report.md  (result.json, report.ipynb, events.jsonl)")


def _find_run(runs_dir: Path, run_id: str) -> Path:
    exact = runs_dir / run_id
    if (exact / RESULT_FILE).exists():
        return exact
    matches = [d for d in run_dirs(runs_dir) if d.name.startswith(run_id) or d.name.endswith(run_id)]
    if len(matches) == 1 and (matches[0] / RESULT_FILE).exists():
        return matches[0]
    _fail(f"no (unique) finished run {run_id!r} in {runs_dir}")
    raise AssertionError  # unreachable


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="run ID (or a unique prefix/suffix)"),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir"),
    fmt: str = typer.Option("md", "--format", help="md | json"),
) -> None:
    """Show a run's report."""
    d = _find_run(Path(runs_dir or default_runs_dir()), run_id)
    if fmt == "json":
        console.print_json((d / RESULT_FILE).read_text())
    else:
        console.print(Markdown((d / REPORT_FILE).read_text()))


@app.command("history")
def history(
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir"),
    runbook: Optional[str] = typer.Option(None, "--runbook", help="only this runbook"),
    n: int = typer.Option(20, "-n", help="newest N runs"),
) -> None:
    """List past runs, newest first."""
    table = RichTable(title="runbook history")
    table.add_column("run (UTC start-runbook-id)", no_wrap=True)
    for col in ("status", "check", "hosts", "seconds"):
        table.add_column(col)
    rows = 0
    for d in reversed(run_dirs(Path(runs_dir or default_runs_dir()))):
        try:
            r = load_result(d)  # any schema version
        except (OSError, ValueError):
            continue
        if runbook and r.runbook != runbook:
            continue
        table.add_row(r.run_id, f"[{_STYLE.get(r.status, '')}]{r.status}[/]", "yes" if r.check else "",
                      ",".join(r.hosts), f"{r.duration_s:.1f}")
        rows += 1
        if rows >= n:
            break
    console.print(table)


@app.command("notebook")
def notebook(
    name: str = typer.Argument(..., help="runbook name (see `runbook list`)"),
    inventory: Path = typer.Option(..., "-i", "--inventory", help="pyinfra inventory file"),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="runbook parameter key=value"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="notebook file [default: NAME.ipynb]"),
    limit: Optional[str] = typer.Option(None, "--limit", help="host names, groups or globs (comma-separated)"),
    check: bool = typer.Option(False, "--check", help="check mode (the notebook's `check` parameter)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="approve destructive steps (the notebook's `approve`)"),
    lock_at_start: bool = typer.Option(False, "--lock-at-start", help="take the host lock before the first step"),
    execute: bool = typer.Option(False, "--execute", help="run it headless now (papermill); the executed notebook is the run's report.ipynb"),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="parent of run directories [default: .orderops/runs]"),
) -> None:
    """Write an executable notebook of a runbook (parameters cell, one cell per step); --execute runs it."""
    from runbooks.engine.notebook_cells import build_live_notebook

    try:
        runbook = get_runbook(name)
        values = validate_params(name, runbook.params, parse_assignments(name, param or [])).model_dump(mode="json")
        hosts = select(load_targets(inventory, runbook.environment), [limit] if limit else None)
    except RunbookError as e:
        _fail(str(e))
        return
    nb = build_live_notebook(runbook, inventory=str(inventory), values=values, limit=limit, check=check,
                             approve=yes, lock_at_start=lock_at_start)
    import nbformat

    out = output or Path(f"{runbook.name}.ipynb")
    nbformat.write(nb, str(out))
    console.print(f"notebook: {out}  (open it in Jupyter, or run it: runbook notebook {name} -i {inventory} --execute)")
    if not execute:
        return
    from runbooks import live

    run_id = new_run_id(runbook.name)
    console.print(f"runbook [bold]{runbook.name}[/] run {run_id} on {', '.join(h.name for h in hosts)} (papermill)"
                  + (" [yellow](check mode)[/]" if check else ""))
    try:
        run_dir = live.execute(out, run_id=run_id, runs_dir=runs_dir, inventory=str(inventory), cwd=os.getcwd(),
                               parameters=values)
    except RunbookError as e:
        err.print(f"[bold red]runbook:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(1)
    data = {**load_result(run_dir).model_dump(mode="json"), "run_dir": str(run_dir)}
    _matrix(data)
    raise typer.Exit(1 if data["status"] in ("failed", "aborted") else 0)


def main() -> None:
    """Console entry point ``runbook``; signals abort a run (:mod:`runbooks.engine.interrupts`)."""
    from runbooks.engine import interrupts

    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    interrupts.install()
    app()


if __name__ == "__main__":
    main()
