"""auditd rules, on real hosts only."""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand
from pyinfra.facts.files import Sha256File

from deploys.facts.cache import cached_fact
from deploys.facts.sysctl import ProcSysMode

__all__ = ["rules", "RULES_DIR", "CONTAINER_SKIP"]

RULES_DIR = "/etc/audit/rules.d"
#: why a container gets no audit rules (logged as the operation's noop)
CONTAINER_SKIP = ("skipped inside a container: the kernel's audit subsystem belongs to the machine "
                  "(auditd needs CAP_AUDIT_CONTROL in the initial namespaces)")


@operation()
def rules(filename: str, content: str):
    """
    Install ``/etc/audit/rules.d/<filename>`` and load it (``augenrules --load``) on a real host.

    + filename: a plain ``*.rules`` file name
    + content: the rules text (auditctl syntax)

    Inside a container (read-only ``/proc/sys``) nothing is done; the noop says why.
    """
    if cached_fact(host, ProcSysMode) == "ro":
        host.noop(f"auditd rules {CONTAINER_SKIP}")
        return
    dest = f"{RULES_DIR}/{filename}"
    if host.get_fact(Sha256File, path=dest) == hashlib.sha256(content.encode()).hexdigest():
        host.noop(f"{dest} is up to date")
        return
    yield StringCommand("mkdir -p", RULES_DIR)
    yield FileUploadCommand(StringIO(content), dest)
    yield StringCommand("chmod 0640", QuoteString(dest), "&&", "augenrules --load")
