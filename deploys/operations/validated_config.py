"""Configuration trees that are validated on the host before they replace the running files.

A bad file never replaces a good one: changed files are uploaded into a staging copy of the
directory (``<dest>.staging``), every check command runs against the staging copy, and only when
all of them succeed is the staging copy installed over ``dest``. A failing check fails the
operation (pyinfra reports the host error with the checker's output); ``dest`` stays as it was.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand
from pyinfra.facts.files import Sha256File

from deploys.facts.cache import declare, declares

__all__ = ["tree", "changed_files"]


def changed_files(files: Mapping[str, str], current: Mapping[str, str | None]) -> list[str]:
    """Relative paths of ``files`` whose SHA-256 differs from ``current`` (``{path: sha256 or None}``)."""
    return [path for path, text in files.items()
            if current.get(path) != hashlib.sha256(text.encode()).hexdigest()]


def current_hashes(dest: str, files: Mapping[str, str]) -> dict[str, str | None]:
    """``{relative path: sha256 of the host's file or None}`` (the :class:`Sha256File` fact per file,
    declared first: read in one command where the fact cache is installed)."""
    for path in files:
        declare(host, Sha256File, path=posixpath.join(dest, path))
    return {path: host.get_fact(Sha256File, path=posixpath.join(dest, path)) for path in files}


@declares(lambda a: [(Sha256File, {"path": posixpath.join(a["dest"], p)}) for p in a["files"]])
@operation()
def tree(dest: str, files: Mapping[str, str], checks: Sequence[str] = (), mode: str = "0644"):
    """
    Install ``files`` under ``dest`` after ``checks`` pass against a staging copy.

    + dest: absolute directory on the host
    + files: ``{relative path: text}``; other files under ``dest`` are kept
    + checks: shell commands; ``{dir}`` is replaced by the (quoted) staging directory. Each must exit 0.
    + mode: mode of the installed files
    """
    changed = changed_files(files, current_hashes(dest, files))
    if not changed:
        host.noop(f"{dest}: {len(files)} files up to date")
        return
    staging = f"{dest.rstrip('/')}.staging"
    yield StringCommand("rm", "-rf", QuoteString(staging), "&&", "mkdir", "-p", QuoteString(dest), "&&",
                        "cp", "-a", QuoteString(dest), QuoteString(staging))
    for directory in sorted({posixpath.dirname(p) for p in changed if posixpath.dirname(p)}):
        yield StringCommand("mkdir", "-p", QuoteString(posixpath.join(staging, directory)))
    for path in changed:
        target = posixpath.join(staging, path)
        yield FileUploadCommand(StringIO(files[path]), target)  # pyinfra stages it in its temp dir, moves with sudo
        yield StringCommand("chmod", mode, QuoteString(target))
    for check in checks:
        yield StringCommand(check.replace("{dir}", _quote(staging)))
    # all checks passed: install the staging copy (rename per file: readers never see half a file)
    yield StringCommand("cp", "-a", QuoteString(f"{staging}/."), QuoteString(dest + "/"), "&&",
                        "rm", "-rf", QuoteString(staging))


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
