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
    """A copy of ``artifact`` whose sign-in page differs (an HTML comment and an inline script of
    its own, so its csp.txt has a hash the original's lacks: policy recomputed by
    order_service/web/scripts/csp.mjs), with its own MANIFEST/RELEASE."""
    import importlib.util
    import hashlib

    spec = importlib.util.spec_from_file_location("build_web", ROOT / "tools" / "build_web.py")
    build_web = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_web)
    shutil.copytree(artifact, dest)
    page = dest / "site" / "login" / "index.html"
    page.write_text(page.read_text() + "<!-- release variant --><script>self.__orderopsVariant=1</script>\n")
    subprocess.run(["node", str(WEB / "scripts" / "csp.mjs"), str(dest / "site"), str(dest)], check=True,
                   capture_output=True, text=True)
    text = build_web.manifest(dest)
    (dest / "MANIFEST").write_text(text)
    release = hashlib.sha256(text.encode()).hexdigest()[:16]
    (dest / "RELEASE").write_text(release + "\n")
    return release


def _hashes(policy: str) -> set[str]:
    """The hash sources (``'sha256-...'``) of a serialized policy."""
    return {token for token in policy.replace(";", " ").split() if token.startswith("'sha256-")}


#: Run on the test host: the start time (epoch seconds, clock-tick precision) of every nginx worker
#: (the processes a reload replaces) and the time `current` was switched (its symlink's mtime).
_TIMES = """
import json, os, sys, time
tick = os.sysconf("SC_CLK_TCK")
boot = time.time() - float(open("/proc/uptime").read().split()[0])
workers = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        title = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b"").decode()
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    if title == "nginx: worker process":
        workers[pid] = boot + int(stat.rsplit(")", 1)[1].split()[19]) / tick
web = sys.argv[1]
print(json.dumps({"workers": workers, "switched": os.lstat(web + "/current").st_mtime,
                  "csp_written": os.stat(web + "/csp.conf").st_mtime}))
"""


def test_a_switched_release_is_served_with_its_csp_at_once_and_the_old_one_comes_back_without_upload(inventory, tmp_path):
    """The moment after the switch: nginx was last reloaded before `current` changed (no reload
    after it), and the new release's page already gets a CSP with every hash of its csp.txt and
    still every hash of the previous release's. A rollback then changes no CSP (no reload)."""
    import shlex
    import ssl
    import urllib.request

    from tests.integration.conftest import run_pyinfra, ssh

    _name, data = inventory["app"][0]
    original = Path(data["web_artifact"])
    variant = tmp_path / "variant"
    release = _artifact_variant(original, variant)
    new_hashes = _hashes((variant / "csp.txt").read_text())
    old_hashes = _hashes((original / "csp.txt").read_text())
    assert new_hashes - old_hashes, "the variant's inline script adds a hash"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the local host's self-signed certificate

    def login_page() -> tuple[str, str]:
        with urllib.request.urlopen(f"{data['probe_https_url']}/login/", context=ctx, timeout=30) as resp:
            return resp.read().decode(), resp.headers["Content-Security-Policy"]

    web_dir = StackLayout(data.get("stack_dir", STACK_DIR)).web_dir

    def links() -> str:
        return ssh(data, f"readlink {web_dir}/current; readlink {web_dir}/previous").stdout

    def times() -> dict:
        return json.loads(ssh(data, f"python3 -c {shlex.quote(_TIMES)} {shlex.quote(web_dir)}").stdout)

    def csp_conf() -> str:
        return ssh(data, f"cat {web_dir}/csp.conf").stdout

    assert run_pyinfra().returncode == 0  # the original release current (a module run alone)
    assert run_pyinfra("--data", f"web_artifact={variant}").returncode == 0
    assert links().split()[0] == f"releases/{release}"
    moment = times()
    assert moment["workers"], "no nginx worker found on the host"
    # the workers serving now were started by a reload before the switch (clock-tick precision:
    # 50 ms of slack; a reload after the switch would be a later operation, seconds later)
    assert max(moment["workers"].values()) <= moment["switched"] + 0.05, moment
    assert moment["csp_written"] <= moment["switched"], moment
    body, policy = login_page()
    assert "release variant" in body
    assert new_hashes <= _hashes(policy), "the new release's inline scripts are allowed"
    assert old_hashes <= _hashes(policy), "the previous release's pages stay allowed"
    assert "'unsafe-inline'" not in policy
    again = run_pyinfra("--data", f"web_artifact={variant}")
    assert again.returncode == 0 and again.totals["success"] == 0, again.output[-3000:]

    before_rollback = csp_conf()
    back = run_pyinfra()
    assert back.returncode == 0
    body, policy = login_page()
    assert "release variant" not in body
    original_release = (original / "RELEASE").read_text().strip()
    assert links().split() == [f"releases/{original_release}", f"releases/{release}"]
    # a rollback to the previous release: the same two policies, so no CSP change and no reload
    assert csp_conf() == before_rollback
    assert set(times()["workers"]) == set(moment["workers"]), "the same nginx workers: no reload"
    assert (new_hashes | old_hashes) <= _hashes(policy)
    final = run_pyinfra()
    assert final.returncode == 0 and final.totals["success"] == 0, final.output[-3000:]
