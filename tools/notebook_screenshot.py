#!/usr/bin/env python3
"""Screenshot of a live runbook notebook, executed on the local test host, opened in JupyterLab.

    .venv/bin/python tools/notebook_screenshot.py [-i inventories/local.py] [-p key=value ...]
                                                  [-o docs/screenshots/runbook-notebook-jupyterlab.png]

Needs a deployed test host (``make hosts-up`` + ``pyinfra -y inventories/local.py deploys/site.py``),
the ``notebook`` extra (``make venv``: papermill, ipykernel, jupyterlab) and ``/usr/bin/chromium``
(Debian's package, ``tools/packages.txt``). Not part of any test tier: it makes the README's picture.

1. ``runbook notebook daily -i INVENTORY -o <tmp>/daily.ipynb --execute --runs-dir <tmp>/runs``:
   the notebook is written and executed headless by papermill against the host; the run's
   ``report.ipynb`` (the executed notebook) is what gets opened. Exit code 1 (a step failed, e.g.
   the load check on a busy machine) still gives a real executed notebook; anything else stops.
2. The executed notebook is checked for every secret of the inventory (as
   ``tests/integration/test_notebooks.py`` does; the session masks them).
3. JupyterLab on ``127.0.0.1`` with a free port and a random token, no browser, every Jupyter
   directory (config, data, runtime, settings, workspaces) in the temporary directory, and nothing
   that fetches from the network: no news feed (``LabApp.news_url = None``), no update check
   (``NeverCheckForUpdate``), the read-only extension manager (no PyPI queries); the user settings
   also switch ``fetchNews``/``checkForUpdates`` off and render every cell (``windowingMode: none``).
4. Headless Chromium (``--headless --no-sandbox --disable-background-networking``) driven over
   the Chrome DevTools Protocol (``websocket-client``, which jupyter_server depends on) opens
   ``/lab/tree/daily.ipynb``, waits until every cell is rendered, every step's results table is
   shown and the kernel is idle, collapses papermill's injected-parameters cell (it repeats the
   values), scrolls the parameters cell to the top, checks the page text for the secrets again,
   and saves a ``--width`` x ``--height`` PNG (``--scale`` 0.85 device pixels per CSS pixel, so
   the parameters cell, the session, the first step's Markdown and its per-host results table fit).
   Every URL the page requested is recorded; one that is not on 127.0.0.1 fails the run.
5. Chromium is closed and JupyterLab shut down (``POST /api/shutdown``, then SIGTERM to its
   process group); the temporary directory is removed (``--keep`` keeps it).

Exit code 0 with the PNG written; 1 with one line on stderr otherwise.
Sources: Chrome DevTools Protocol (https://chromedevtools.github.io/devtools-protocol/: Page.navigate,
Runtime.evaluate, Emulation.setDeviceMetricsOverride, Page.captureScreenshot); JupyterLab's
configuration (https://jupyterlab.readthedocs.io/en/stable/user/announcements.html,
https://jupyterlab.readthedocs.io/en/stable/user/directories.html).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import secrets as token_source
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
DEFAULT_OUTPUT = ROOT / "docs" / "screenshots" / "runbook-notebook-jupyterlab.png"
RUNBOOK = "daily"

#: JupyterLab user settings (JUPYTERLAB_SETTINGS_DIR): plugin id -> settings
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

#: jupyter_server / JupyterLab configuration (JUPYTER_CONFIG_DIR/jupyter_server_config.json)
SERVER_CONFIG = {
    "ServerApp": {"open_browser": False, "ip": "127.0.0.1", "allow_remote_access": False,
                  "allow_root": True,  # the harness machine runs everything as root (README)
                  "terminals_enabled": False},
    "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
               "extension_manager": "readonly"},
    "LabServerApp": {"open_browser": False},
    "KernelManager": {"shutdown_wait_time": 60},  # README: releasing a lock takes an SSH round trip
}

#: JavaScript: the notebook is rendered (cells, every step's table, idle kernel) -> a JSON summary
RENDERED_JS = r"""
(() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return JSON.stringify({ready: false, why: 'no notebook'});
  const cells = nb.querySelectorAll('.jp-Cell');
  const tables = nb.querySelectorAll('.jp-OutputArea-output table');
  const code = nb.querySelectorAll('.jp-CodeCell .cm-content');
  const md = nb.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown h2');
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const kernel = document.querySelector('.jp-KernelName');
  const idle = status ? (status.getAttribute('data-status') || '') : '';
  return JSON.stringify({ready: cells.length === %(cells)d && tables.length >= %(tables)d
                                && code.length === %(code)d && md.length >= %(steps)d && idle === 'idle'
                                && kernel !== null && kernel.textContent.includes('ipykernel'),
                         cells: cells.length, tables: tables.length, code: code.length, h2: md.length,
                         status: idle, kernel: kernel ? kernel.textContent : ''});
})()
"""

#: JavaScript: the view of the screenshot (cells by index): papermill's injected-parameters cell
#: (it repeats the values) collapsed to one line with JupyterLab's input collapser, as a user
#: clicks it; the parameters cell scrolled to the top; nothing focused
VIEW_JS = r"""
(() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')];
  const injected = cells[%(injected)d], params = cells[%(params)d];
  if (!params || !params.textContent.includes('# Parameters (papermill')) return 'no parameters cell';
  if (injected && !injected.classList.contains('jp-mod-collapsed')) {
    const collapser = injected.querySelector('.jp-Cell-inputCollapser .jp-Collapser-child');
    if (collapser) collapser.click();
  }
  params.scrollIntoView({block: 'start'});
  if (document.activeElement) document.activeElement.blur();
  return 'ok';
})()
"""


class Failed(Exception):
    """One line for stderr; the tool exits 1."""


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel picks it; closed again for the server to bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, probe, timeout: float, interval: float = 0.5):
    """``probe()`` until it returns a truthy value (returned), or :class:`Failed` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Failed:
            raise
        except Exception as e:  # noqa: BLE001 - not up yet: probe again
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise Failed(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


def inventory_secrets(inventory: str) -> list[str]:
    """Every secret value of ``inventory`` (what the runbooks' masker masks)."""
    from runbooks.engine.targets import load_inventory, secret_values

    return [v for v in secret_values(load_inventory(inventory)) if len(v) >= 4]


def check_no_secret(text: str, where: str, values: list[str]) -> None:
    """:class:`Failed` when any of ``values`` occurs in ``text`` (the value itself is never printed)."""
    if any(v in text for v in values):
        raise Failed(f"a secret of the inventory appears in {where}")


def execute_notebook(inventory: str, params: list[str], tmp: Path) -> Path:
    """``runbook notebook daily --execute`` into ``tmp``; returns the executed notebook (the run's report.ipynb)."""
    runs = tmp / "runs"
    runs.mkdir()
    cmd = [sys.executable, "-m", "runbooks", "notebook", RUNBOOK, "-i", inventory, "-o", str(tmp / f"{RUNBOOK}.ipynb"),
           "--execute", "--runs-dir", str(runs)]
    for p in params:
        cmd += ["-p", p]
    print("+", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, check=False)
    if proc.returncode not in (0, 1):
        raise Failed(f"runbook notebook exited {proc.returncode}")
    reports = sorted(runs.glob("*/report.ipynb"))
    if len(reports) != 1:
        raise Failed(f"expected one executed notebook in {runs}, found {len(reports)}")
    if proc.returncode == 1:
        print("note: a step failed (see the table above); the executed notebook shows it", flush=True)
    return reports[0]


class JupyterLab:
    """JupyterLab serving ``root`` on 127.0.0.1 with a free port and a random token; every
    Jupyter directory under ``home`` (context manager: started on enter, shut down on exit)."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.port = _free_port()
        self.token = token_source.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def _env(self) -> dict[str, str]:
        dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
                "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "IPYTHONDIR": "ipython"}
        env = dict(os.environ)
        for var, sub in dirs.items():
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.home / sub)
        (self.home / "config" / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG, indent=1))
        for plugin, values in LAB_SETTINGS.items():
            package, name = plugin.split(":")
            f = self.home / "settings" / package / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        return env

    def _get(self, path: str) -> dict:
        req = urllib.request.Request(self.base + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def __enter__(self) -> "JupyterLab":
        env = self._env()
        log = open(self.home / "jupyterlab.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", f"--port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}"],
            cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        print(f"JupyterLab on {self.base} (log {self.home / 'jupyterlab.log'})", flush=True)

        def up():
            if self.proc.poll() is not None:
                raise Failed(f"JupyterLab exited {self.proc.returncode}: see {self.home / 'jupyterlab.log'}")
            return self._get("/api/status")
        try:
            _wait("JupyterLab's /api/status", lambda: up(), 120)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:  # graceful: kernels shut down (the kernel opened by the browser holds no session)
            req = urllib.request.Request(self.base + "/api/shutdown", method="POST", data=b"",
                                         headers={"Authorization": f"token {self.token}"})
            urllib.request.urlopen(req, timeout=10).close()
            self.proc.wait(timeout=90)
        except Exception:  # noqa: BLE001 - fall back to signals
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=30)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        print(f"JupyterLab stopped (exit {self.proc.returncode})", flush=True)


class Chromium:
    """Headless Chromium with a throw-away profile, one page driven over the DevTools Protocol
    (context manager). :meth:`call` sends one command and returns its ``result``."""

    def __init__(self, profile: Path, width: int, height: int, scale: float = 1.0):
        self.profile, self.width, self.height, self.scale = profile, width, height, scale
        #: every URL the page requested (``Network.requestWillBeSent``), to prove nothing left 127.0.0.1
        self.requests: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self._ids = itertools.count(1)

    def __enter__(self) -> "Chromium":
        import websocket  # websocket-client (a dependency of jupyter_server)

        if not os.access(CHROMIUM, os.X_OK):
            raise Failed(f"{CHROMIUM} missing: `make prereqs` installs chromium (tools/packages.txt)")
        self.profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
             "--disable-extensions", "--disable-sync", "--disable-default-apps", "--disable-component-update",
             "--no-first-run", "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
             "--hide-scrollbars", f"--window-size={self.width},{self.height}", f"--user-data-dir={self.profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(self.profile.parent / "chromium.log", "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            active = self.profile / "DevToolsActivePort"
            port = int(_wait("Chromium's DevTools port", lambda: active.exists() and active.read_text().split()[0], 60))

            def page_ws():
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    return next((t["webSocketDebuggerUrl"] for t in json.loads(r.read()) if t["type"] == "page"), None)
            self.ws = websocket.create_connection(_wait("Chromium's page target", page_ws, 30), timeout=60,
                                                  suppress_origin=True)
            # a CSS viewport 1/scale as large, drawn into width x height device pixels (scale 0.85: more
            # of the notebook in the picture, text still legible)
            self.call("Emulation.setDeviceMetricsOverride", width=round(self.width / self.scale),
                      height=round(self.height / self.scale), deviceScaleFactor=self.scale, mobile=False)
            self.call("Network.enable")
        except BaseException:
            self.__exit__()
            raise
        return self

    def call(self, method: str, **params):
        """Send ``method`` with ``params``; the command's result (events in between are skipped)."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise Failed(f"Chromium {method}: {msg['error'].get('message')}")
                return msg["result"]

    def js(self, expression: str, *, wait: bool = False):
        """The value of a JavaScript expression in the page (``wait``: of the promise it gives)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=wait)
        if "exceptionDetails" in res:
            raise Failed(f"JavaScript error: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            try:
                self.call("Browser.close")
            except Exception:  # noqa: BLE001 - killed below
                pass
            self.ws.close()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _offsite(urls: list[str]) -> list[str]:
    """The URLs of ``urls`` that would leave this machine (anything but 127.0.0.1, data:, blob:, about:)."""
    from urllib.parse import urlsplit

    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob", "about")
            and urlsplit(u).hostname != "127.0.0.1"]


def screenshot(notebook: Path, output: Path, *, width: int, height: int, scale: float, tmp: Path,
               values: list[str]) -> None:
    """Open ``notebook`` in JupyterLab in headless Chromium and save the PNG ``output``."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    expected = {"cells": len(nb.cells), "code": sum(c.cell_type == "code" for c in nb.cells),
                "steps": sum(c.cell_type == "markdown" and c.source.startswith("## ") for c in nb.cells),
                "tables": sum(c.cell_type == "code" and "session.run(" in c.source for c in nb.cells)}
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    view = {"params": next(i for i, t in enumerate(tags) if "parameters" in t),
            "injected": next((i for i, t in enumerate(tags) if "injected-parameters" in t), -1)}
    root = tmp / "lab"
    root.mkdir()
    shutil.copyfile(notebook, root / f"{RUNBOOK}.ipynb")
    with JupyterLab(root, tmp / "jupyter") as lab, Chromium(tmp / "chromium-profile", width, height, scale) as browser:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"{lab.base}/lab/tree/{RUNBOOK}.ipynb?reset&token={lab.token}")
        state = _wait("the notebook to render in JupyterLab",
                      lambda: (s := json.loads(browser.js(RENDERED_JS % expected)))["ready"] and s, 180, interval=1)
        print(f"rendered: {state}", flush=True)
        if (why := browser.js(VIEW_JS % view)) != "ok":
            raise Failed(f"the notebook's view: {why}")
        time.sleep(1.5)  # the collapse, the scroll and the toolbar settle
        browser.js("document.fonts.ready.then(() => true)", wait=True)
        check_no_secret(browser.js("document.body.innerText") or "", "the rendered page", values)
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        browser.js("true")  # collect the last request events
        if offsite := _offsite(browser.requests):
            raise Failed(f"the page requested {len(offsite)} URL(s) off this machine, e.g. {offsite[0]}")
        print(f"{len(browser.requests)} requests, all to 127.0.0.1", flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(base64.b64decode(shot["data"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-i", "--inventory", default="inventories/local.py", help="inventory [inventories/local.py]")
    ap.add_argument("-p", "--param", action="append", default=[], help="runbook parameter key=value (runbook notebook -p)")
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"PNG [{DEFAULT_OUTPUT.relative_to(ROOT)}]")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--scale", type=float, default=0.85, help="device pixels per CSS pixel [0.85]")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, runs, Jupyter dirs)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="orderops-nbshot-"))
    try:
        values = inventory_secrets(args.inventory)
        report = execute_notebook(args.inventory, args.param, tmp)
        check_no_secret(report.read_text(), "the executed notebook", values)
        screenshot(report, args.output.resolve(), width=args.width, height=args.height, scale=args.scale, tmp=tmp, values=values)
    except Failed as e:
        print(f"notebook_screenshot: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
