"""The runbook library: one module per runbook, each defining ``RUNBOOK``.

Adding a runbook: write ``runbooks/library/<name>.py`` with ``RUNBOOK = Runbook(...)`` and list
it in :data:`RUNBOOKS` (CLI name -> module); a host runbook also in ``names.txt``. The ``aws-*``
runbooks (``environment="aws"``) run against an AWS inventory through the boto3 executor.
"""

from __future__ import annotations

import importlib

from runbooks.core.errors import UnknownRunbook
from runbooks.engine.model import Runbook

__all__ = ["RUNBOOKS", "get_runbook", "all_runbooks"]

#: CLI name -> module path
RUNBOOKS = {
    "daily": "runbooks.library.daily",
    "weekly": "runbooks.library.weekly",
    "capacity": "runbooks.library.capacity",
    "monthly": "runbooks.library.monthly",
    "diagnose": "runbooks.library.diagnose",
    "emergency-restart": "runbooks.library.emergency_restart",
    "emergency-redeploy": "runbooks.library.emergency_redeploy",
    "aws-daily": "runbooks.library.aws_daily",
    "aws-backup": "runbooks.library.aws_backup",
    "aws-restore": "runbooks.library.aws_restore",
    "aws-emergency": "runbooks.library.aws_emergency",
    "aws-import-backup": "runbooks.library.aws_import_backup",
    "emergency-restore": "runbooks.library.emergency_restore",
    "restore-drill": "runbooks.library.restore_drill",
    "data-integrity": "runbooks.library.data_integrity",
    "backup": "runbooks.library.backup_now",
}


def get_runbook(name: str) -> Runbook:
    """The runbook called ``name``; raises :class:`UnknownRunbook`."""
    if name not in RUNBOOKS:
        raise UnknownRunbook(name, sorted(RUNBOOKS))
    return importlib.import_module(RUNBOOKS[name]).RUNBOOK


def all_runbooks() -> list[Runbook]:
    """Every runbook, by name."""
    return [get_runbook(n) for n in sorted(RUNBOOKS)]
