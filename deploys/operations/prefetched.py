"""pyinfra's ``files`` and ``systemd`` operations, each declaring the facts it will read
(:func:`deploys.facts.cache.declare`), so that a converge reads them in a few batched commands
instead of one ``stat`` / ``sha1sum`` / ``systemctl show`` per call.

The roles import these in place of pyinfra's modules; every other name is pyinfra's own:

    from deploys.operations.prefetched import files, systemd
    files.put(name=..., src=..., dest="/etc/x.conf", mode="644")   # pyinfra's files.put

The operations themselves are pyinfra's, unchanged: the declaration only warms the cache
(deploys/facts/cache.py ``install``), which pyinfra's ``host.get_fact`` then reads through.
"""

from __future__ import annotations

import posixpath
from inspect import signature
from types import SimpleNamespace

from pyinfra import host
from pyinfra.facts.files import Directory, File, Link, Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files as _files
from pyinfra.operations import systemd as _systemd

from deploys.facts.cache import declare

__all__ = ["files", "systemd"]


def _bound(op, args, kwargs) -> dict:
    bound = signature(op._inner).bind_partial(*args, **{k: v for k, v in kwargs.items() if not k.startswith("_") and k != "name"})
    bound.apply_defaults()
    return bound.arguments


def _declare_upload(a: dict) -> None:
    """The facts ``files.put`` / ``files.template`` read for ``dest`` (and its directory)."""
    declare(host, File, path=a["dest"])
    declare(host, Sha1File, path=a["dest"])
    if a.get("create_remote_dir"):
        declare(host, Directory, path=posixpath.dirname(a["dest"]))


def _put(*args, **kwargs):
    _declare_upload(_bound(_files.put, args, kwargs))
    return _files.put(*args, **kwargs)


def _template(*args, **kwargs):
    _declare_upload(_bound(_files.template, args, kwargs))
    return _files.template(*args, **kwargs)


def _directory(*args, **kwargs):
    declare(host, Directory, path=_bound(_files.directory, args, kwargs)["path"])
    return _files.directory(*args, **kwargs)


def _file(*args, **kwargs):
    a = _bound(_files.file, args, kwargs)
    declare(host, File, path=a["path"])
    if a.get("create_remote_dir"):
        declare(host, Directory, path=posixpath.dirname(a["path"]))
    return _files.file(*args, **kwargs)


def _link(*args, **kwargs):
    declare(host, Link, path=_bound(_files.link, args, kwargs)["path"])
    return _files.link(*args, **kwargs)


_UNIT_SUFFIXES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path", ".timer", ".slice", ".scope")


def _service(*args, **kwargs):
    a = _bound(_systemd.service, args, kwargs)
    service = a["service"]
    if not service.endswith(_UNIT_SUFFIXES):
        service = f"{service}.service"  # as systemd.service names it
    where = {"user_mode": a["user_mode"], "machine": a["machine"], "user_name": a["user_name"], "services": [service]}
    declare(host, SystemdStatus, **where)
    if isinstance(a["enabled"], bool):
        declare(host, SystemdEnabled, **where)
    return _systemd.service(*args, **kwargs)


class _Module(SimpleNamespace):
    """pyinfra's module with some operations replaced; any other name is the module's own."""

    def __init__(self, module, **replaced):
        super().__init__(**replaced)
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)


files = _Module(_files, put=_put, template=_template, directory=_directory, file=_file, link=_link)
systemd = _Module(_systemd, service=_service)
