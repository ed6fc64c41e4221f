"""OpenSSH server configuration through a validated drop-in."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand
from pyinfra.facts.files import Sha256File

from deploys.contract.sshd import mismatches
from deploys.facts.cache import cached_fact, declares
from deploys.facts.sshd import SshdEffectiveConfig
from deploys.operations.errors import fail

__all__ = ["drop_in", "enforced", "mismatches"]

DROP_IN_DIR = "/etc/ssh/sshd_config.d"


#: where the role installs templates/sshd/apply-drop-in.sh (check, reload, login probe, restore)
APPLY_SCRIPT = "/usr/local/sbin/orderops-sshd-apply"


@declares(lambda a: [(Sha256File, {"path": f"{DROP_IN_DIR}/{a['filename']}"})])
@operation()
def drop_in(filename: str, content: str, probe_user: str, service: str = "ssh", apply_script: str = APPLY_SCRIPT):
    """
    Install an sshd drop-in: ``sshd -t``, reload, a fresh login probe, restore on failure.

    + filename: file name in ``/etc/ssh/sshd_config.d`` (``00-orderops.conf``: read first, so it wins)
    + content: the drop-in's text
    + probe_user: user whose fresh SSH login (to 127.0.0.1, one-time key) must work after the reload
    + service: systemd unit to reload (``ssh`` on Debian and Ubuntu)
    + apply_script: the host path of ``templates/sshd/apply-drop-in.sh``

    The new file is staged next to the old one; a failed ``sshd -t``, reload or login probe puts
    the previous file back (sshd reloaded with it) and fails the operation with the reason.
    """
    if "/" in filename or not filename.endswith(".conf"):
        raise OperationError(f"drop-in filename must be a plain *.conf file name, got {filename!r}")
    dest = f"{DROP_IN_DIR}/{filename}"
    wanted = hashlib.sha256(content.encode()).hexdigest()
    if host.get_fact(Sha256File, path=dest) == wanted:
        host.noop(f"{dest} is up to date")
        return
    staged = f"{dest}.orderops-new"
    yield StringCommand("mkdir", "-p", DROP_IN_DIR)
    yield FileUploadCommand(StringIO(content), staged)
    yield StringCommand(QuoteString(apply_script), QuoteString(dest), QuoteString(staged), QuoteString(service), QuoteString(probe_user))


@declares(lambda a: [(SshdEffectiveConfig, {})])
@operation()
def enforced(settings: Mapping[str, str]):
    """
    Fail unless ``sshd -T`` shows every setting in force (another file may win over the drop-in).

    + settings: ``{Keyword: value}`` as written in the drop-in
    """
    effective = cached_fact(host, SshdEffectiveConfig)
    if not effective:
        host.noop("sshd not installed yet; checked on the next run")
        return
    problems = mismatches(effective, settings)
    if problems:
        yield fail("sshd is not using orderops' settings (another file wins?): " + "; ".join(problems))
        return
    host.noop("sshd uses orderops' settings")
