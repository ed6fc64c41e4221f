"""promtool and amtool for the unit tier: the real binaries from Debian's packages.

Found on ``PATH`` when the machine has them; otherwise ``apt-get download`` fetches Debian's
``prometheus`` (promtool) and ``prometheus-alertmanager`` (amtool) .debs with the machine's own apt
lists into ``$ORDEROPS_CACHE_DIR/tools`` (default ``.orderops/cache/tools``) and ``dpkg-deb -x``
unpacks them there; nothing is installed and no service starts. Raises ``RuntimeError`` when
neither works (the test then fails, it is never skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from testhosts.state import StatePaths

__all__ = ["tool"]

_PACKAGE = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def tool(name: str) -> str:
    """Absolute path of ``promtool`` or ``amtool``."""
    found = shutil.which(name)
    if found:
        return found
    cache = StatePaths.from_env().cache / "tools"
    binary = cache / "root" / "usr" / "bin" / name
    if binary.exists():
        return str(binary)
    cache.mkdir(parents=True, exist_ok=True)
    package = _PACKAGE[name]
    for old in cache.glob(f"{package}_*.deb"):
        old.unlink()
    result = subprocess.run(["apt-get", "download", package], cwd=cache, capture_output=True, text=True,
                            env={**os.environ, "LC_ALL": "C"})
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise RuntimeError(f"{name}: not on PATH and `apt-get download {package}` failed: {result.stderr.strip()[-300:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(cache / "root")], check=True)
    if not binary.exists():
        raise RuntimeError(f"{name}: {debs[-1].name} has no usr/bin/{name}")
    return str(binary)
