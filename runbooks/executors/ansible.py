"""Remote execution through ansible-runner, against an inventory generated from the pyinfra one.

Every call:

* generates the Ansible inventory for the one host from its pyinfra host data
  (``ssh_hostname``/``ssh_port``/``ssh_user``/``ssh_key``, host-key policy) — the same inventory
  file serves pyinfra, ansible-runner and testinfra;
* writes a tiny generated playbook (a Python structure dumped with ``yaml.SafeDumper``) whose
  single ``shell`` task carries the command as an ``!unsafe`` string (Ansible never templates
  it, so ``{{ }}`` in docker ``--format`` is safe);
* verifies host keys unless the inventory's ``ssh_strict_host_key_checking`` says otherwise;
* runs in a fresh private data directory (0700) with ``timeout`` (job) and ``idle_timeout``
  set and ``rotate_artifacts=1``, and deletes the directory afterwards, so no command output
  (which may hold secrets) stays on disk.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import tempfile
import time
from typing import Any

import yaml

from runbooks.core.errors import CommandCancelled, CommandTimeout, ExecutorError
from runbooks.core.process import current_scope
from runbooks.core.types import ClosingExecutor, CommandResult, HostTarget

__all__ = ["AnsibleExecutor", "ansible_inventory", "playbook", "playbook_text", "host_key_checking"]


def host_key_checking(host: HostTarget) -> str:
    """The host's ``StrictHostKeyChecking`` value: the inventory's ``ssh_strict_host_key_checking``
    (pyinfra's own host-data key), ``yes`` when the inventory says nothing."""
    value = str(host.data.get("ssh_strict_host_key_checking") or "yes").lower()
    return {"off": "no", "false": "no", "on": "yes", "true": "yes"}.get(value, value)


def ansible_inventory(host: HostTarget) -> dict[str, Any]:
    """Ansible inventory (JSON/YAML dict) for ``host`` from its pyinfra host data.

    Host keys are verified (``StrictHostKeyChecking=yes``, against ``ssh_known_hosts_file`` when
    given, else the user's known_hosts) unless the inventory's ``ssh_strict_host_key_checking``
    says otherwise.
    """
    d = host.data
    hv: dict[str, Any] = {
        "ansible_host": d.get("ssh_hostname") or host.name,
        "ansible_port": int(d.get("ssh_port") or 22),
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    if d.get("ssh_user"):
        hv["ansible_user"] = d["ssh_user"]
    if d.get("ssh_key"):
        hv["ansible_ssh_private_key_file"] = str(d["ssh_key"])
    args = ["-o BatchMode=yes", "-o ConnectTimeout=15", f"-o StrictHostKeyChecking={shlex.quote(host_key_checking(host))}"]
    if d.get("ssh_known_hosts_file"):
        args += [f"-o UserKnownHostsFile={shlex.quote(os.path.expanduser(str(d['ssh_known_hosts_file'])))}"]
    hv["ansible_ssh_common_args"] = " ".join(args)
    return {"all": {"hosts": {host.name: hv}}}


def control_path_dir(host: HostTarget) -> str:
    """Directory of the SSH ControlPersist sockets for ``host``'s host-key policy.

    A master connection skips host-key checks for every later session that reuses it, so one is
    shared only by runs with the same known_hosts file and ``StrictHostKeyChecking`` value.
    """
    policy = f"{host_key_checking(host)}\0{host.data.get('ssh_known_hosts_file') or ''}"
    return os.path.join(tempfile.gettempdir(), "orderops-ansible-cp", hashlib.sha256(policy.encode()).hexdigest()[:12])


class _Unsafe(str):
    """A string Ansible must never template: dumped with Ansible's ``!unsafe`` tag."""


class _PlaybookDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that also writes :class:`_Unsafe` strings as ``!unsafe`` scalars."""


_PlaybookDumper.add_representer(_Unsafe, lambda dumper, v: dumper.represent_scalar("!unsafe", str(v), style='"'))

#: The name of the one task (its result is looked up by it).
TASK_NAME = "orderops runbook command"


def playbook(command: str, sudo: bool) -> list[dict[str, Any]]:
    """The generated one-task playbook, as data: ``command`` run with bash, never templated."""
    return [{
        "hosts": "all", "gather_facts": False, "become": bool(sudo),
        "tasks": [{"name": TASK_NAME, "ansible.builtin.shell": {"cmd": _Unsafe(command), "executable": "/bin/bash"},
                   "failed_when": False}],
    }]


def playbook_text(command: str, sudo: bool) -> str:
    """:func:`playbook` as YAML (safe dumper, plus the ``!unsafe`` tag for the command)."""
    return yaml.dump(playbook(command, sudo), Dumper=_PlaybookDumper, sort_keys=False)


class AnsibleExecutor(ClosingExecutor):
    """ansible-runner transport (see the module docstring).

    + idle_timeout: seconds without output after which ansible-runner stops the job
    + tmp_root: parent of the private data directories (default: the system temp dir)

    ``close()`` has nothing to release: each call removes its own directory.
    """

    name = "remote"

    def __init__(self, idle_timeout: float = 120.0, tmp_root: str | None = None):
        self.idle_timeout = idle_timeout
        self.tmp_root = tmp_root

    def run(self, host: HostTarget, command: str, *, sudo: bool = False, timeout: float = 60.0) -> CommandResult:
        """Run ``command`` on ``host``; raises :class:`CommandTimeout` / :class:`ExecutorError`."""
        import ansible_runner

        scope = current_scope()
        if scope.cancelled:
            raise CommandCancelled(f"command on {host.name}", scope.cancel_reason or "cancelled")
        start = time.monotonic()
        private = tempfile.mkdtemp(prefix="orderops-ansible-", dir=self.tmp_root)
        os.chmod(private, 0o700)
        try:
            os.makedirs(os.path.join(private, "project"))
            with open(os.path.join(private, "project", "run.yml"), "w") as f:
                f.write(playbook_text(command, sudo))
            job_timeout = max(1, int(timeout + 0.999))
            bindir = os.path.dirname(sys.executable)
            if bindir not in os.environ.get("PATH", "").split(os.pathsep):  # venv without activation
                os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
            r = ansible_runner.run(
                private_data_dir=private,
                playbook="run.yml",
                inventory=ansible_inventory(host),
                limit=host.name,
                quiet=True,
                timeout=job_timeout,
                settings={"idle_timeout": int(min(self.idle_timeout, job_timeout)) or 1, "suppress_ansible_output": True,
                          "pexpect_timeout": 1},  # seconds between checks of cancel_callback
                rotate_artifacts=1,
                # ansible-runner starts ansible-playbook in its own session (pexpect) and kills that
                # process group when this returns True: the step's timeout or the run's abort
                cancel_callback=scope.is_cancelled,
                envvars={
                    # the inventory decides (ansible_ssh_common_args carries StrictHostKeyChecking)
                    "ANSIBLE_HOST_KEY_CHECKING": "False" if host_key_checking(host) == "no" else "True",
                    "ANSIBLE_NOCOLOR": "1", "LC_ALL": "C.UTF-8",
                    "ANSIBLE_LOCAL_TEMP": os.path.join(private, "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "False",
                    "ANSIBLE_SSH_CONTROL_PATH_DIR": control_path_dir(host),
                },
            )
            if r.status == "canceled":
                raise CommandCancelled(f"command on {host.name}", scope.cancel_reason or "cancelled")
            if r.status == "timeout":
                raise CommandTimeout(f"command on {host.name}", timeout)
            res = None
            problem = ""
            for event in r.events:
                kind = event.get("event")
                data = event.get("event_data", {})
                if kind in ("runner_on_ok", "runner_on_failed") and data.get("task") == TASK_NAME:
                    res = data.get("res", {})
                elif kind == "runner_on_unreachable":
                    problem = f"host {host.name} unreachable: {data.get('res', {}).get('msg', '')}".strip()
                elif kind == "runner_on_failed" and not problem:
                    problem = str(data.get("res", {}).get("msg", "task failed"))
            if res is None or "rc" not in res:
                detail = problem or (res or {}).get("msg") or f"ansible-runner status {r.status} (rc {r.rc})"
                raise ExecutorError(f"ansible-runner on {host.name}: {detail}")
            return CommandResult(int(res["rc"]), res.get("stdout", ""), res.get("stderr", ""), time.monotonic() - start)
        finally:
            shutil.rmtree(private, ignore_errors=True)
