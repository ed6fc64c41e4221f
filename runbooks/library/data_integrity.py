"""Runbook ``data-integrity``: invariants of the live order database.

Checks that hold while orders keep arriving (each is one statement, so one consistent
snapshot; an order and its lines commit together): foreign keys (lines, transitions and
attachments belong to an order, owners exist), each order's total equals the sum of its lines,
the status history agrees with the status, and no key table has fewer rows than the latest
backup's manifest. Exact counts and checksums belong on a restored copy (``restore-drill``).
Any violation fails its step with the table and the rows named (at most 20 per check).
"""

from __future__ import annotations

import json

from deploys.contract.services import DB_NAME
from runbooks.engine.model import Runbook, StepContext, StepResult, Table, step
from runbooks.library._backup import INVARIANTS, backup_cmd, check_invariants, count_compare, manifest_of, psql_db

__all__ = ["RUNBOOK"]


@step("Invariants", timeout=900)
def invariants(ctx: StepContext) -> StepResult:
    """Foreign keys, order totals, status history (see `runbooks/library/_backup.py` INVARIANTS)."""
    violations, errors = check_invariants(ctx, lambda sql: ctx.sh(psql_db(ctx, DB_NAME, sql)))
    checked = [[name, what] for name, (what, _) in INVARIANTS.items()]
    tables = [Table("checks", ["invariant", "what"], checked)]
    if violations:
        tables.append(Table("violations", ["invariant", "table", "row", "detail"], violations))
    if errors:
        return ctx.failed("; ".join(errors), tables=tables)
    if violations:
        first = "; ".join(f"{v[0]}: {v[1]} row {v[2]} ({v[3]})" for v in violations[:3])
        return ctx.failed(f"{len(violations)} violation(s): {first}", {"violations": violations[:50]}, tables)
    return ctx.ok(f"{len(INVARIANTS)} invariants hold", tables=tables)


@step("Row counts not below the latest backup", timeout=300)
def counts(ctx: StepContext) -> StepResult:
    """Live `count(*)` of the key tables against the latest valid manifest (rows are never deleted
    by the service; fewer rows than at the last backup means lost data)."""
    manifest, why = manifest_of(ctx, "latest")
    if manifest is None:
        return ctx.skipped(f"no backup to compare with: {why}")
    out = ctx.sh(backup_cmd("counts", DB_NAME))
    if not out.ok:
        return ctx.failed(f"cannot count rows: {out.stderr.strip()[-200:]}")
    live = json.loads(out.stdout)
    bad = count_compare(manifest["row_counts"], live, exact=False)
    rows = [[t, n, live.get(t)] for t, n in sorted(manifest["row_counts"].items())]
    table = Table(f"against backup {manifest['id']}", ["table", "manifest", "live"], rows)
    if bad:
        return ctx.failed("fewer rows than the latest backup: " + "; ".join(bad), {"live": live}, [table])
    return ctx.ok(f"no table below backup {manifest['id']}", {"live": live}, [table])


RUNBOOK = Runbook(name="data-integrity", title="Data integrity", doc=__doc__, steps=(invariants, counts), lock=False)
