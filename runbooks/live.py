"""Live runbook notebooks: the session a notebook's cells drive, and headless execution.

The notebook side of what :mod:`runbooks.cli` does for ``runbook run``: load and validate
(parameters, inventory, ``limit``) before any host is touched, enter the executors, hand them to
the engine's :class:`~runbooks.engine.session.Session`. ``runbook notebook`` writes the notebook
(:mod:`runbooks.engine.notebook_cells`); :func:`execute` runs it with papermill.

Lock release: :meth:`Session.close` (the notebook's last cell) releases it; so does the kernel
stopping (Jupyter's shutdown or restart: ``atexit``; ``SIGTERM``: a handler closes the session,
then exits). Releasing takes one SSH round trip per host (seconds); Jupyter kills a kernel that
has not exited ``KernelManager.shutdown_wait_time`` (default 5 s) after the shutdown request, so
give it more (``--KernelManager.shutdown_wait_time=60``) or close the session in its cell. A
kernel killed with ``SIGKILL`` cannot release anything: the lock then expires after the host's
``lock_ttl`` (inventory data, :mod:`deploys.contract.lock`: stale after the TTL).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import weakref
from pathlib import Path
from typing import Any

from runbooks.core.errors import RunbookError
from runbooks.engine.masking import Masker
from runbooks.engine.params import validate_params
from runbooks.engine.runner import default_runs_dir
from runbooks.engine.session import Session
from runbooks.engine.targets import load_inventory, secret_values, select
from runbooks.library import get_runbook

__all__ = ["open_session", "execute", "NotebookRunError"]


class NotebookRunError(RunbookError):
    """A problem a notebook cell reports in one line (IPython shows ``_render_traceback_``
    instead of a traceback; papermill records it as the cell's error)."""

    def _render_traceback_(self) -> list[str]:
        return [f"runbook: {self}"]


_OPEN: "weakref.WeakSet[Session]" = weakref.WeakSet()
_handlers_installed = False


_closing = False


def _close_all() -> None:
    global _closing
    _closing = True
    for session in list(_OPEN):
        with contextlib.suppress(Exception):
            session.close()


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    if _closing:  # already closing at exit (Jupyter sends SIGTERM when the shutdown takes long): go on
        return
    _close_all()
    os._exit(128 + signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_close_all)
    with contextlib.suppress(ValueError):  # not the main thread: atexit only
        signal.signal(signal.SIGTERM, _on_sigterm)


def open_session(name: str, *, inventory: str, params: dict[str, Any] | None = None, limit: str | None = None,
                 check: bool = False, approve: bool = False, lock_at_start: bool = False,
                 runs_dir: str | None = None, run_id: str | None = None) -> Session:
    """Validate, enter the executors, and open the :class:`Session` of runbook ``name``.

    + params: the runbook's parameters (values as typed in the parameters cell; a required one
      left ``None`` is reported missing)
    + limit: host names, groups or globs, comma-separated (as ``--limit``)

    Raises :class:`NotebookRunError` (one line, naming the runbook parameter, host field or
    pattern) for an unknown runbook, a bad parameter, a bad inventory or a ``limit`` matching
    nothing, before any host is touched.
    """
    try:
        runbook = get_runbook(name)
        given = {k: v for k, v in (params or {}).items()
                 if not (v is None and k in runbook.params.model_fields and runbook.params.model_fields[k].is_required())}
        model = validate_params(name, runbook.params, given)
        hosts = select(load_inventory(inventory), [limit] if limit else None)
    except RunbookError as e:
        raise NotebookRunError(str(e)) from None
    from runbooks.executors.ansible import AnsibleExecutor
    from runbooks.executors.local import LocalExecutor
    from runbooks.executors.pyinfra_exec import PyinfraExecutor
    from runbooks.engine.runner import new_run_id

    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    run_id = run_id or new_run_id(runbook.name)
    stack = contextlib.ExitStack()
    remote = stack.enter_context(AnsibleExecutor())
    local = stack.enter_context(LocalExecutor())
    deployer = stack.enter_context(PyinfraExecutor(str(inventory), run_id=run_id, relock=remote if runbook.lock else None))
    try:
        session = Session(runbook, hosts, model, {"remote": remote, "local": local, "pyinfra": deployer},
                          lock_at_start=lock_at_start, on_close=stack.close, inventory=str(inventory),
                          limit=[limit] if limit else None, check=check, approve=bool(approve),
                          runs_dir=Path(runs_dir) if runs_dir else None, run_id=run_id)
    except BaseException:
        stack.close()
        raise
    _OPEN.add(session)
    _install_handlers()
    return session


def execute(notebook: Path, *, run_id: str, runs_dir: Path | None, parameters: dict[str, Any],
            inventory: str, cwd: str | None = None, kernel_name: str = "python3",
            timeout: float | None = None) -> Path:
    """Execute ``notebook`` headless with papermill as run ``run_id``; the executed notebook
    replaces the run directory's ``report.ipynb``; returns the run directory.

    + parameters: injected by papermill after the ``parameters`` cell (runbook parameters and
      controls; ``run_id`` and ``runs_dir`` are set here)
    + timeout: seconds per cell (None: none; the steps have their own timeouts)

    The executed notebook is checked for every secret of the inventory before it is kept (a
    secret found raises :class:`RunbookError` and the file is removed). Raises
    :class:`NotebookRunError` with the failing cell's one-line error when a cell raised (the
    run directory, when one was opened, is complete: the kernel's exit closed the session).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    runs_dir = Path(runs_dir or default_runs_dir())
    run_dir = runs_dir / run_id
    with tempfile.TemporaryDirectory(prefix="orderops-notebook-") as tmp:
        out = Path(tmp) / "report.ipynb"
        error: str | None = None
        try:
            papermill.execute_notebook(
                str(notebook), str(out), parameters={**parameters, "run_id": run_id, "runs_dir": str(runs_dir)},
                kernel_name=kernel_name, cwd=cwd, progress_bar=False, log_output=False,
                execution_timeout=timeout, request_save_on_cell_execute=True,
            )
        except PapermillExecutionError as e:
            error = f"cell {e.exec_count}: {e.ename}: {e.evalue}"
        if out.exists() and run_dir.is_dir():
            text = out.read_text()
            masker_values = secret_values(load_inventory(inventory))
            if Masker(masker_values).text(text) != text:
                raise RunbookError(f"executed notebook of run {run_id} holds a secret value; not kept")
            target = run_dir / "report.ipynb"
            shutil.copyfile(out, target)
            target.chmod(0o600)
        if error:
            raise NotebookRunError(error)
    if not run_dir.is_dir():
        raise NotebookRunError(f"the notebook opened no run directory {run_dir}")
    return run_dir

