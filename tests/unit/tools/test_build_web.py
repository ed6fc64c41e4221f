"""tools/build_web.py: the cache key, the manifest (checked by `sha256sum -c` on hosts), the Node.js check."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("build_web", ROOT / "tools" / "build_web.py")
build_web = importlib.util.module_from_spec(_spec)
sys.modules["build_web"] = build_web
_spec.loader.exec_module(build_web)

NODE = (20, 20, 2)


def _web(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    for rel, text in {
        "package-lock.json": "{}", "app/page.tsx": "export default 1", "test/a.test.ts": "t",
        "node_modules/x/index.js": "x", "out/index.html": "<html>",
    }.items():
        (web / rel).parent.mkdir(parents=True, exist_ok=True)
        (web / rel).write_text(text)
    return web


def test_key_follows_shipped_sources_only(tmp_path):
    web = _web(tmp_path)
    key = build_web.cache_key(NODE, web)
    (web / "test" / "a.test.ts").write_text("changed test")
    (web / "node_modules" / "x" / "index.js").write_text("changed dependency copy")
    (web / "out" / "index.html").write_text("changed output")
    assert build_web.cache_key(NODE, web) == key
    (web / "app" / "page.tsx").write_text("export default 2")
    assert build_web.cache_key(NODE, web) != key
    assert build_web.cache_key((22, 0, 0), web) != build_web.cache_key(NODE, web)


def test_manifest_is_sha256sum_format(tmp_path):
    artifact = tmp_path / "artifact"
    (artifact / "site" / "_next").mkdir(parents=True)
    (artifact / "site" / "index.html").write_text("<html></html>")
    (artifact / "site" / "_next" / "a b.js").write_text("js")
    (artifact / "csp.txt").write_text("default-src 'self'")
    (artifact / "MANIFEST").write_text(build_web.manifest(artifact))
    subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST"], cwd=artifact, check=True)
    (artifact / "site" / "index.html").write_text("tampered")
    assert subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST"], cwd=artifact, capture_output=True).returncode == 1


@pytest.mark.parametrize(("version", "ok"), [("v20.8.1", False), ("v18.19.0", False), ("v20.9.0", True), ("v22.1.0", True)])
def test_node_version_check(tmp_path, monkeypatch, version, ok):
    # a stand-in `node` that only answers --version, first on PATH
    fake = tmp_path / "bin" / "node"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    if ok:
        assert build_web.node_version()[:2] >= (20, 9)
    else:
        with pytest.raises(build_web.BuildError, match="too old: Next.js needs >= 20.9"):
            build_web.node_version()
