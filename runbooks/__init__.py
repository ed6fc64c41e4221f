"""orderops runbooks: operations knowledge as code.

``runbooks.core`` holds what engine and executors share (host targets, command results, the
executor protocols, errors, process groups); ``runbooks.engine`` runs runbooks (ordered steps,
parallel hosts, check mode, approval, per-host lock, reports); ``runbooks.executors`` are the
transports behind one seam; ``runbooks.library`` holds the runbooks; ``runbooks.cli`` is the
``runbook`` command.
"""

from runbooks.core.errors import ParameterError, RunbookError, TargetError, UnknownRunbook
from runbooks.engine.model import Runbook, Step, StepContext, StepResult, Table, step
from runbooks.engine.runner import run

__all__ = [
    "Runbook", "Step", "StepContext", "StepResult", "Table", "step", "run",
    "RunbookError", "UnknownRunbook", "ParameterError", "TargetError",
]
