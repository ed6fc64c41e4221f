"""The front end in a real browser: Playwright drives Debian's Chromium against the deployed local
test host over HTTPS (order_service/web/e2e, config in order_service/web/playwright.config.ts).

Needs the deploy of test_deploy.py (the host serves the release of `make web`). The admin's
password goes to Playwright in its environment, read from the secrets file, never printed.
``ORDEROPS_UPDATE_SCREENSHOTS=1`` writes the list and detail screenshots to docs/screenshots/
(the README shows them); otherwise they go to a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploys.contract.paths import STACK_DIR, StackLayout, local_state_dir
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

WEB = ROOT / "order_service" / "web"
CHROMIUM = "/usr/bin/chromium"


def test_front_end_in_chromium(inventory, tmp_path):
    state = local_state_dir()
    assert Path(CHROMIUM).exists(), "chromium missing: `make prereqs` installs it (tools/packages.txt)"
    assert (WEB / "node_modules" / ".bin" / "playwright").exists(), "run `make web` first (npm ci)"
    _name, data = inventory["app"][0]
    assert data.get("web_artifact"), "no front end in the inventory: run `make web` before the deploy"
    secrets = json.loads((state / "secrets" / "local.json").read_text())
    shots = ROOT / "docs" / "screenshots" if os.environ.get("ORDEROPS_UPDATE_SCREENSHOTS") == "1" else tmp_path / "shots"
    env = {
        **os.environ,
        "ORDEROPS_WEB_URL": data["probe_https_url"],
        "ORDEROPS_ADMIN_EMAIL": f"admin@{data['domain']}",
        "ORDEROPS_ADMIN_PASSWORD": secrets["admin_password"],
        "ORDEROPS_SCREENSHOT_DIR": str(shots),
        "ORDEROPS_CHROMIUM": CHROMIUM,
        "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
        "CI": "1",
    }
    proc = subprocess.run(
        [shutil.which("npx") or "npx", "--no-install", "playwright", "test"],
        cwd=WEB, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    output = (proc.stdout + proc.stderr).replace(secrets["admin_password"], "***")
    print(output[-8000:])
    assert proc.returncode == 0, output[-8000:]
    assert "passed" in output and " failed" not in output
    assert (shots / "orders-list.png").stat().st_size > 0
    assert (shots / "order-detail.png").stat().st_size > 0
    assert secrets["admin_password"] not in proc.stdout + proc.stderr


def _artifact_variant(artifact: Path, dest: Path) -> str:
    """A copy of ``artifact`` whose sign-in page differs (an HTML comment), with its own MANIFEST/RELEASE."""
    import importlib.util
    import hashlib

    spec = importlib.util.spec_from_file_location("build_web", ROOT / "tools" / "build_web.py")
    build_web = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_web)
    shutil.copytree(artifact, dest)
    page = dest / "site" / "login" / "index.html"
    page.write_text(page.read_text() + "<!-- release variant -->\n")
    text = build_web.manifest(dest)
    (dest / "MANIFEST").write_text(text)
    release = hashlib.sha256(text.encode()).hexdigest()[:16]
    (dest / "RELEASE").write_text(release + "\n")
    return release


def test_a_new_release_is_switched_and_the_old_one_comes_back_without_upload(inventory, tmp_path):
    import ssl
    import urllib.request

    from tests.integration.conftest import run_pyinfra, ssh

    _name, data = inventory["app"][0]
    original = Path(data["web_artifact"])
    variant = tmp_path / "variant"
    release = _artifact_variant(original, variant)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the local host's self-signed certificate

    def login_page() -> str:
        with urllib.request.urlopen(f"{data['probe_https_url']}/login/", context=ctx, timeout=30) as resp:
            return resp.read().decode()

    web_dir = StackLayout(data.get("stack_dir", STACK_DIR)).web_dir

    def links() -> str:
        return ssh(data, f"readlink {web_dir}/current; readlink {web_dir}/previous").stdout

    assert run_pyinfra("--data", f"web_artifact={variant}").returncode == 0
    assert "release variant" in login_page()
    assert links().split()[0] == f"releases/{release}"
    again = run_pyinfra("--data", f"web_artifact={variant}")
    assert again.returncode == 0 and again.totals["success"] == 0, again.output[-3000:]

    back = run_pyinfra()
    assert back.returncode == 0
    assert "release variant" not in login_page()
    original_release = (original / "RELEASE").read_text().strip()
    assert links().split() == [f"releases/{original_release}", f"releases/{release}"]
    final = run_pyinfra()
    assert final.returncode == 0 and final.totals["success"] == 0, final.output[-3000:]
