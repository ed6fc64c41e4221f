"""What the backup runbooks share: the host's ``orderops-backup`` command, streaming the age
identity from the machine running the runbook, row-count comparisons and the live invariants.

The private age key never lands on a server: :func:`stream_to_host` opens its own SSH
connection (the inventory's connection data, as the other executors use it) and writes the
identity to the remote command's stdin, which hands it to ``age -d`` on a pipe.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from deploys.contract.backups import BACKUP_COMMAND, age_identity, backup_command
from deploys.contract.services import DB_USER
from runbooks.core.process import run_process
from runbooks.core.types import CommandResult
from runbooks.engine.model import StepContext
from runbooks.executors.ansible import host_key_checking
from runbooks.library._common import compose

__all__ = ["backup_cmd", "stream_to_host", "read_identity", "manifest_of", "INVARIANTS", "check_invariants",
           "count_compare", "BACKUP_COMMAND"]

#: The host command ``orderops-backup ARGS`` (:func:`deploys.contract.backups.backup_command`).
backup_cmd = backup_command


def read_identity(path: str | None) -> bytes:
    """The age identity file on this machine; ``ValueError`` naming the problem (never the key)."""
    if not path:
        raise ValueError("parameter identity: the age private key file on this machine is required (-p identity=PATH)")
    try:
        return age_identity(Path(path).expanduser())
    except ValueError as e:
        raise ValueError(f"parameter identity: {e}") from None


def stream_to_host(ctx: StepContext, command: str, data: bytes, timeout: float | None = None) -> CommandResult:
    """Run ``sudo -n command`` on the host over a fresh SSH connection, ``data`` (an age identity,
    text) on its stdin. Raises :class:`runbooks.core.errors.CommandTimeout` after ``timeout`` s
    (default: what the step has left)."""
    d = ctx.host.data
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-p", str(d.get("ssh_port") or 22)]
    if d.get("ssh_key"):
        argv += ["-i", str(Path(str(d["ssh_key"])).expanduser()), "-o", "IdentitiesOnly=yes"]
    # host keys verified as the Ansible transport verifies them (runbooks/executors/ansible.py)
    argv += ["-o", f"StrictHostKeyChecking={host_key_checking(ctx.host)}"]
    if d.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={Path(str(d['ssh_known_hosts_file'])).expanduser()}"]
    target = d.get("ssh_hostname") or ctx.host.name
    argv += [f"{d['ssh_user']}@{target}" if d.get("ssh_user") else str(target), f"sudo -n {command}"]
    left = ctx.remaining() if timeout is None else min(timeout, ctx.remaining())
    # in the step's scope (runbooks.core.process): a step timeout or an abort kills this ssh too
    return run_process(argv, timeout=left, what=f"ssh to {ctx.host.name}", input=data.decode())


def manifest_of(ctx: StepContext, ref: str, verify: bool = False) -> tuple[dict | None, str]:
    """``(manifest, "")`` of backup ``ref`` on the host, or ``(None, why)``."""
    out = ctx.sh(backup_cmd("verify" if verify else "show", ref))
    if not out.ok:
        return None, (out.stderr.strip().splitlines() or ["orderops-backup failed"])[-1]
    try:
        return json.loads(out.stdout), ""
    except ValueError:
        return None, "orderops-backup printed no manifest"


def count_compare(expected: dict[str, int], actual: dict[str, int], exact: bool) -> list[str]:
    """Problems: tables whose count differs (``exact``) or is below the manifest's."""
    bad = []
    for table, n in sorted(expected.items()):
        got = actual.get(table)
        if got is None or (got != n if exact else got < n):
            bad.append(f"{table}: manifest {n}, database {got if got is not None else 'missing'}")
    return bad


#: name -> (what it checks, SQL returning ``table|row id|detail`` lines for each violation, at most 20)
INVARIANTS: dict[str, tuple[str, str]] = {
    "foreign keys": (
        "every line, transition and attachment belongs to an existing order",
        "(SELECT 'order_lines', l.id::text, 'order ' || l.order_id FROM order_lines l "
        " WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = l.order_id) LIMIT 20) UNION ALL "
        "(SELECT 'order_transitions', t.id::text, 'order ' || t.order_id FROM order_transitions t "
        " WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = t.order_id) LIMIT 20) UNION ALL "
        "(SELECT 'attachments', a.id::text, 'order ' || a.order_id FROM attachments a "
        " WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.order_id) LIMIT 20) UNION ALL "
        "(SELECT 'orders', o.id::text, 'owner ' || o.owner_id FROM orders o WHERE o.owner_id IS NOT NULL "
        " AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.owner_id) LIMIT 20)",
    ),
    "order totals": (
        "each order's total equals the sum of its lines (an order and its lines commit together)",
        "SELECT 'orders', o.id::text, 'total ' || o.total_minor || ' <> lines ' || coalesce(sum(l.quantity * l.unit_price_minor), 0) "
        "FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id GROUP BY o.id, o.total_minor "
        "HAVING o.total_minor <> coalesce(sum(l.quantity * l.unit_price_minor), 0) LIMIT 20",
    ),
    "status history": (
        "an order's status is the last transition's target (pending when it has none), and each "
        "transition starts where the previous one ended",
        "(SELECT 'orders', o.id::text, 'status ' || o.status || ', last transition to ' || coalesce(t.to_status::text, '(none)') "
        " FROM orders o LEFT JOIN (SELECT DISTINCT ON (order_id) order_id, to_status FROM order_transitions "
        " ORDER BY order_id, id DESC) t ON t.order_id = o.id "
        " WHERE o.status <> coalesce(t.to_status, 'pending'::order_status) LIMIT 20) UNION ALL "
        "(SELECT 'order_transitions', id::text, 'from ' || from_status || ' but previous ended at ' || prev "
        " FROM (SELECT id, from_status, lag(to_status::text) OVER (PARTITION BY order_id ORDER BY id) AS prev "
        " FROM order_transitions) x WHERE prev IS NOT NULL AND prev <> from_status::text LIMIT 20)",
    ),
}


def check_invariants(ctx: StepContext, psql) -> tuple[list[list[str]], list[str]]:
    """Run :data:`INVARIANTS` with ``psql(sql) -> CommandResult``; returns ``(violation rows
    [invariant, table, row, detail], errors)``."""
    rows, errors = [], []
    for name, (_, sql) in INVARIANTS.items():
        out = psql(sql)
        if not out.ok:
            errors.append(f"{name}: {out.stderr.strip()[-200:]}")
            continue
        for line in out.lines():
            table, row, detail = (line.split("|", 2) + ["", ""])[:3]
            rows.append([name, table, row, detail])
    return rows, errors


def psql_db(ctx: StepContext, database: str, sql: str) -> str:
    """``psql`` command on ``database`` inside the postgres container (tuples only, unaligned)."""
    return compose(ctx, "exec", "-T", "postgres", "psql", "-X", "-U", DB_USER, "-d", shlex.quote(database),
                   "-v", "ON_ERROR_STOP=1", "-tA", "-c", shlex.quote(sql))


#: prints the alembic head revision(s) packaged in an order-service image
HEADS_SCRIPT = (
    "import pathlib, order_service; from alembic.script import ScriptDirectory; "
    "print(','.join(sorted(ScriptDirectory(str(pathlib.Path(order_service.__file__).parent / 'migrations')).get_heads())))"
)


def image_heads_command(image: str) -> str:
    """Command printing the migration head(s) of ``image`` (no database needed)."""
    return f"docker run --rm --network none --entrypoint python {shlex.quote(image)} -c {shlex.quote(HEADS_SCRIPT)}"
