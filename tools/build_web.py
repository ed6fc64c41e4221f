#!/usr/bin/env python3
"""Build the front end (order_service/web) into a shippable artifact, cached by content.

    python3 tools/build_web.py            # prints the artifact directory

The cache key is the SHA-256 of the web sources that reach the browser (every file under
order_service/web except node_modules, build output and tests), the lockfile and the Node.js
version. A hit reuses ``<cache dir>/web/<key>/`` (:func:`deploys.contract.paths.local_cache_dir`); a miss runs ``npm ci`` (only
when the lockfile changed since the last install) and ``npm run build`` (``next build`` +
``scripts/csp.mjs``) and assembles, atomically (a temporary directory renamed into place)::

    cache/web/<key>/
      site/          the static export (next.config.mjs: output 'export')
      csp.txt        the policy alone (inline script hashes): merged by deploys/operations/web.py into
                     the web root's csp.conf, which the vhost includes
      MANIFEST       `sha256sum` lines of every file above, relative to the artifact (checked on the host)
      RELEASE        the release id: the first 16 hex digits of MANIFEST's SHA-256

and records ``{"artifact": <dir>, "release": <id>}`` in ``<state dir>/web.json``, which
``inventories/local.py`` reads. Errors: exit 1 with one line (Node.js older than 20.9, npm or
the build failing; the build log is in ``<cache dir>/logs/web-build.log``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run by the system python3 (no venv needed): the contract is stdlib-only
from deploys.contract.paths import local_cache_dir, local_state_dir  # noqa: E402

WEB = ROOT / "order_service" / "web"
STATE = local_state_dir()
CACHE = local_cache_dir() / "web"
#: Next.js 16 needs Node.js >= 20.9 (nextjs.org/docs/app/getting-started/installation).
NODE_MIN = (20, 9)
#: Not part of the artifact: dependencies, build output, tests and their configuration.
EXCLUDE = {"node_modules", ".next", "out", "test", "e2e", "test-results", "playwright-report",
           "csp.txt", "csp.conf", "next-env.d.ts", "vitest.config.ts", "playwright.config.ts"}
NPM = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]


class BuildError(Exception):
    """A build step failed; the message is one line for the user."""


def node_version() -> tuple[int, int, int]:
    """The installed Node.js version; BuildError when missing or older than :data:`NODE_MIN`."""
    try:
        text = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise BuildError("node not found: the front end needs Node.js >= 20.9") from None
    major, minor, patch = (int(part) for part in text.lstrip("v").split(".")[:3])
    if (major, minor) < NODE_MIN:
        raise BuildError(f"Node.js {text} is too old: Next.js needs >= {NODE_MIN[0]}.{NODE_MIN[1]}")
    return major, minor, patch


def source_files(web: Path = WEB) -> list[Path]:
    """The files of the cache key, relative to ``web``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(web):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE)
        out += [(Path(dirpath) / f).relative_to(web) for f in filenames if f not in EXCLUDE]
    return sorted(out, key=lambda p: p.as_posix())


def cache_key(node: tuple[int, int, int], web: Path = WEB) -> str:
    """SHA-256 (hex, 16 digits) over the Node.js version and each source file's path and bytes."""
    digest = hashlib.sha256(b"orderops-web-v1\0" + ".".join(map(str, node)).encode() + b"\0")
    for rel in source_files(web):
        digest.update(rel.as_posix().encode() + b"\0" + (web / rel).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def manifest(artifact: Path) -> str:
    """``sha256sum``-format lines (``<hex>  <path>``) of every file below ``artifact``, sorted."""
    lines = []
    for dirpath, _dirs, filenames in os.walk(artifact):
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(artifact).as_posix()
            if rel in ("MANIFEST", "RELEASE"):
                continue
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}")
    return "\n".join(sorted(lines, key=lambda line: line[66:])) + "\n"


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1", "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        if subprocess.run(cmd, cwd=WEB, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode != 0:
            raise BuildError(f"`{' '.join(cmd)}` failed; log: {log}")


def ensure_dependencies(log: Path) -> None:
    """``npm ci`` unless node_modules was installed from this very lockfile."""
    lock = hashlib.sha256((WEB / "package-lock.json").read_bytes()).hexdigest()
    stamp = WEB / "node_modules" / ".orderops-lock-sha256"
    if stamp.exists() and stamp.read_text().strip() == lock:
        return
    _run(NPM + ["ci"], log)
    stamp.write_text(lock + "\n")


def build(force: bool = False) -> Path:
    """The artifact directory for the current sources (built when not cached, or ``force``)."""
    key = cache_key(node_version())
    artifact = CACHE / key
    if artifact.is_dir() and (artifact / "RELEASE").exists() and not force:
        _record(artifact)
        return artifact
    logs = local_cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "web-build.log"
    log.write_text("")
    ensure_dependencies(log)
    _run(NPM + ["run", "build"], log)
    CACHE.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=CACHE))
    try:
        shutil.copytree(WEB / "out", stage / "site")
        shutil.copy2(WEB / "csp.txt", stage / "csp.txt")
        text = manifest(stage)
        (stage / "MANIFEST").write_text(text)
        (stage / "RELEASE").write_text(hashlib.sha256(text.encode()).hexdigest()[:16] + "\n")
        for path in [stage, *stage.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if artifact.exists():
            shutil.rmtree(artifact)
        stage.rename(artifact)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _record(artifact)
    return artifact


def _record(artifact: Path) -> None:
    release = (artifact / "RELEASE").read_text().strip()
    STATE.mkdir(parents=True, exist_ok=True)
    state = STATE / "web.json"
    tmp = state.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"artifact": str(artifact), "release": release}, indent=2) + "\n")
    tmp.replace(state)


def main(argv: list[str]) -> int:
    try:
        artifact = build(force="--force" in argv)
    except BuildError as exc:
        print(f"build_web: {exc}", file=sys.stderr)
        return 1
    print(artifact)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
