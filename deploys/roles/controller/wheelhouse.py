"""The runbook tooling as a wheelhouse, built on the controller machine (no index on the controller host).

:func:`build_bundle` makes ``wheelhouse-<key>.tar`` (the project wheel + wheels of all its
dependencies) in ``controller/`` of the controller machine's cache dir
(:func:`deploys.contract.paths.local_cache_dir`); :func:`source_key` is the content key and
:func:`bundle_path` the tarball's name, both without building or writing anything (the plan
judges by key; the build runs when pyinfra executes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

from pyinfra.api.exceptions import OperationError

from deploys.contract.paths import REPO_ROOT, local_cache_dir

__all__ = ["build_bundle", "bundle_path", "source_key", "SOURCES", "BUILD_INPUTS", "KEEP_BUNDLES"]

#: the packages the controller tooling runs (the bundle key covers these + the build inputs; the wheel
#: also carries order_service and testhosts, which the controller host never runs)
SOURCES = ("deploys", "inventories", "templates", "runbooks")
#: files whose content decides the dependency wheels
BUILD_INPUTS = ("pyproject.toml", "constraints.txt")
#: wheelhouse tarballs kept in the cache (newest first)
KEEP_BUNDLES = 3


def source_key(root: Path = REPO_ROOT) -> tuple[str, str]:
    """``(deps key, bundle key)``: 16-hex-digit hashes of the build inputs, and of those plus every source file."""
    deps = hashlib.sha256()
    for name in BUILD_INPUTS:
        p = root / name
        deps.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b"") + b"\0")
    full = hashlib.sha256(deps.digest())
    for top in SOURCES:
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                full.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return deps.hexdigest()[:16], full.hexdigest()[:16]


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "-q", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OperationError(f"pip {' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]}")


def bundle_path(key: str, cache: Path | None = None) -> Path:
    """Where :func:`build_bundle` puts the wheelhouse tarball of bundle key ``key``; touches nothing."""
    return Path(cache or local_cache_dir()) / "controller" / f"wheelhouse-{key}.tar"


def build_bundle(root: Path = REPO_ROOT, cache: Path | None = None) -> tuple[Path, str]:
    """Build (or reuse) the wheelhouse tarball on the controller machine; returns ``(path, key)``.

    Dependency wheels are cached by the hash of ``pyproject.toml`` + ``constraints.txt``; the
    project wheel and the tarball by the hash of every source file. The tarball is written
    deterministically (sorted, mtime 0), so an unchanged bundle uploads nothing. Raises
    ``OperationError`` when pip fails.
    """
    deps_key, key = source_key(root)
    bundle = bundle_path(key, cache)
    cache = bundle.parent
    if bundle.exists():
        return bundle, key
    cache.mkdir(parents=True, exist_ok=True)
    deps_dir = cache / f"deps-{deps_key}"
    if not deps_dir.exists():
        project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".deps-"))
        req = tmp / "requirements.txt"
        req.write_text("\n".join(project["dependencies"]) + "\n")
        constraints = ["-c", str(root / "constraints.txt")] if (root / "constraints.txt").exists() else []
        _pip("wheel", "-w", str(tmp / "wheels"), *constraints, "-r", str(req))
        (tmp / "wheels").rename(deps_dir)
        shutil.rmtree(tmp, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".project-"))
    try:
        _pip("wheel", "--no-deps", "-w", str(work), str(root))
        wheels = sorted(deps_dir.glob("*.whl")) + sorted(work.glob("orderops-*.whl"))
        part = bundle.with_suffix(f".part{os.getpid()}")
        with tarfile.open(part, "w") as tar:
            for w in wheels:
                info = tar.gettarinfo(str(w), arcname=f"wheelhouse/{w.name}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(w, "rb") as f:
                    tar.addfile(info, f)
        part.rename(bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    newest = sorted(cache.glob("wheelhouse-*.tar"), key=lambda p: p.stat().st_mtime)[-KEEP_BUNDLES:]
    for old in cache.glob("wheelhouse-*.tar"):
        if old != bundle and old not in newest:
            old.unlink(missing_ok=True)
    return bundle, key
