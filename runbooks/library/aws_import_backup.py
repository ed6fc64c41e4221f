"""Runbook ``aws-import-backup``: a single-host backup (``orderops-backup``) into the environment's
RDS database (an AWS inventory). Destructive: the import runs only with ``--yes``.

    runbook run aws-import-backup -i INVENTORY -p backup=./20261203T023000Z \\
        -p identity=~/.config/orderops/backup.key -p via=127.0.0.1:15432 --check     # then --yes

Both steps run ``orderops-aws import-backup`` (deploys/aws/import_backup.py, the backup tooling's
restore pointed at RDS over TLS) on this machine, with the parameters of
:class:`deploys.contract.aws_import.ImportParams`: the first with ``--check`` (SHA-256 of every file
against the manifest, the identity tried on the dump's head, client and engine versions, the instance,
task definition and secret through boto3, the refusal when the target holds the app's tables), the
second with ``--yes``, re-entering this run's environment lock (``$ORDEROPS_RUN_ID``). The master
password stays inside that command (Secrets Manager -> ``PGPASSWORD`` of its client tools); the
identity is passed as its path.
"""

from __future__ import annotations

import json
import shlex

from deploys.contract.aws_import import ImportParams, import_argv
from deploys.contract.lock import RUN_ID_ENV
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step

__all__ = ["RUNBOOK", "import_command"]


def import_command(inventory: str, run_id: str, params: ImportParams, mode: str) -> str:
    """The shell command of a step: ``orderops-aws ... import-backup ... --json MODE`` with the run ID."""
    return f"{RUN_ID_ENV}={shlex.quote(run_id)} " + shlex.join(import_argv(inventory, params, mode))


def _run(ctx: StepContext, mode: str) -> tuple[dict | None, str]:
    """The command's JSON report, or ``None`` and its last error line."""
    out = ctx.sh(import_command(ctx.host.inventory, ctx.run_id, ctx.params, mode), sudo=False)
    if not out.ok:
        lines = (out.stderr or out.stdout).strip().splitlines() or [f"exit {out.rc}"]
        return None, lines[-1].removeprefix("orderops-aws: ").removeprefix("import-backup: ")[-500:]
    try:
        return json.loads(out.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError):
        return None, f"unreadable report from orderops-aws import-backup: {out.stdout.strip()[-200:]!r}"


def _counts(report: dict, title: str) -> Table:
    return Table(title, ["table", "manifest", "imported"],
                 [[t, n, "-" if got is None else got] for t, n, got in report["counts"]])


@step("Verify the backup and the target", target="aws", executor="local", timeout=3600, on_failure="abort")
def verify(ctx: StepContext) -> StepResult:
    """`orderops-aws import-backup --check`: checksums, identity, versions, the RDS target and its
    credentials, and whether the target database may be written (nothing is written)."""
    report, why = _run(ctx, "--check")
    if report is None:
        return ctx.failed(why)
    ctx.memory["plan"] = report
    t = report["target"]
    return ctx.ok(f"backup {report['backup']} -> {report['database']} on {t['instance']} ({t['endpoint']}, "
                  f"PostgreSQL {t['engine_version']}, via {t['connect']}, sslmode=require); client {report['client']}",
                  {k: report[k] for k in ("backup", "database", "client", "target", "actions")},
                  [_counts(report, "manifest row counts")])


@step("Import into RDS", target="aws", executor="local", timeout=6 * 3600, destructive=True, on_failure="abort")
def do_import(ctx: StepContext) -> StepResult:
    """`orderops-aws import-backup --yes`: streamed restore into a fresh database, exact counts against
    the manifest, swapped in as the app's database (or left under the given fresh name); the RTO."""
    plan = ctx.memory["plan"]
    if ctx.check:
        return ctx.skipped("would: " + "; ".join(plan["actions"]))
    report, why = _run(ctx, "--yes")
    if report is None:
        return ctx.failed(why)
    return ctx.changed(f"imported {report['backup']} into {report['database']}: counts equal the manifest's, "
                       f"{report['seconds']:.1f} s", {"backup": report["backup"], "database": report["database"],
                                                       "rto_seconds": report["seconds"], "actions": report["actions"],
                                                       "kept": report["kept"]},
                       [_counts(report, "row counts")])


RUNBOOK = Runbook(
    name="aws-import-backup",
    title="AWS: import a single-host backup into RDS",
    doc=__doc__ or "",
    params=ImportParams,
    environment="aws",
    steps=(verify, do_import),
)
