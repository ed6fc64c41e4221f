"""The runbook engine: model, parameters, runner, results, masking, reports, notebook, rotation."""

from runbooks.engine.model import Runbook, Step, StepContext, StepResult, Table, step
from runbooks.engine.results import SCHEMA_VERSION, RunResult
from runbooks.engine.runner import run

__all__ = ["Runbook", "Step", "StepContext", "StepResult", "Table", "step", "run", "RunResult", "SCHEMA_VERSION"]
