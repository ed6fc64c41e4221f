"""Files whose content is secret: uploaded without diffs, logs or world-readable moments."""

from __future__ import annotations

import hashlib
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand
from pyinfra.facts.files import File, Sha256File

from deploys.facts.cache import declares

__all__ = ["present"]


@declares(lambda a: [(File, {"path": a["dest"]}), (Sha256File, {"path": a["dest"]})])
@operation()
def present(dest: str, content: str | None = None, upload_dir: str = "", user: str = "root", group: str = "root",
            mode: str = "0600", src: str | None = None):
    """
    Write a secret file, comparing SHA-256 sums instead of contents (no diff is ever printed).

    + dest: path on the host
    + content: the file's text (kept out of every log line)
    + src: instead of ``content``, a file on the controller machine read each time the body runs,
      so it may be made by an earlier operation of the same run at execution (e.g. a key generated
      then); while pyinfra plans, a missing ``src`` means the file will be written
    + upload_dir: directory (0700, owned by the SSH user) for the upload's temporary file, so the
      secret never sits in a shared temporary directory
    + user, group, mode: ownership and permissions of ``dest`` (mode as an octal string)
    """
    if (content is None) == (src is None):
        raise OperationError("secret_files.present needs exactly one of content and src")
    if not upload_dir:
        raise OperationError("secret_files.present needs upload_dir")
    if src is not None and Path(src).is_file():
        content = Path(src).read_text()
    wanted = hashlib.sha256(content.encode()).hexdigest() if content is not None else None
    info = host.get_fact(File, path=dest)
    same_content = bool(info) and host.get_fact(Sha256File, path=dest) == wanted
    # pyinfra's File fact gives the mode as an int of octal digits: 0600 -> 600.
    same_meta = bool(info) and info.get("user") == user and info.get("group") == group and \
        info.get("mode") == int(mode)
    if same_content and same_meta:
        host.noop(f"{dest} is up to date")
        return
    if not same_content:
        staged = f"{upload_dir.rstrip('/')}/.{hashlib.sha256(dest.encode()).hexdigest()[:12]}.part"
        yield StringCommand("umask 077 && install -d -m 0700", QuoteString(upload_dir))
        # a src still missing (planning only) is uploaded from its path once it exists
        yield FileUploadCommand(StringIO(content) if content is not None else src, staged,
                                remote_temp_filename=f"{staged}.tmp")
        yield StringCommand(
            "install", "-m", mode, "-o", QuoteString(user), "-g", QuoteString(group),
            QuoteString(staged), QuoteString(dest), "&&", "rm", "-f", QuoteString(staged),
        )
    else:
        yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(dest), "&&", "chmod", mode, QuoteString(dest))
