"""tools/notebook_screenshot.py: the JupyterLab settings and server options it relies on to stay
off the network exist in the installed JupyterLab (a renamed setting would silently fetch news
again), the off-machine request check, the secret check.

The screenshot itself needs a deployed test host and Chromium: `make notebook-screenshot`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("notebook_screenshot", ROOT / "tools" / "notebook_screenshot.py")
shot = importlib.util.module_from_spec(_spec)
sys.modules["notebook_screenshot"] = shot
_spec.loader.exec_module(shot)


@pytest.mark.parametrize("plugin", sorted(shot.LAB_SETTINGS))
def test_lab_settings_are_settings_of_the_installed_jupyterlab(plugin):
    package, name = plugin.split(":")
    schema = json.loads((Path(sys.prefix) / "share/jupyter/lab/schemas" / package / f"{name}.json").read_text())
    values = shot.LAB_SETTINGS[plugin]
    assert set(values) <= set(schema["properties"]), f"{plugin}: unknown setting(s)"
    jsonschema.validate(values, {**schema, "additionalProperties": True})  # the values are allowed ones


def test_server_options_are_traits_of_the_installed_apps():
    from jupyter_server.serverapp import ServerApp
    from jupyter_client.manager import KernelManager
    from jupyterlab.handlers.announcements import NeverCheckForUpdate
    from jupyterlab.labapp import LabApp

    apps = {"ServerApp": ServerApp, "LabApp": LabApp, "LabServerApp": LabApp, "KernelManager": KernelManager}
    for section, options in shot.SERVER_CONFIG.items():
        traits = apps[section].class_traits(config=True)
        assert set(options) <= set(traits), f"{section}: {sorted(set(options) - set(traits))}"
    assert shot.SERVER_CONFIG["LabApp"]["news_url"] is None  # None: no news feed is fetched (LabApp.news_url)
    assert shot.SERVER_CONFIG["LabApp"]["check_for_updates_class"] == \
        f"jupyterlab.{NeverCheckForUpdate.__name__}"


def test_offsite_requests_are_anything_but_this_machine():
    urls = ["http://127.0.0.1:8888/lab/api/settings", "data:image/png;base64,AA", "blob:http://127.0.0.1:1/x",
            "about:blank", "https://jupyterlab.github.io/assets/feed.xml", "http://localhost:8888/x",
            "https://pypi.org/pypi/jupyterlab/json"]
    assert shot._offsite(urls) == urls[4:]


def test_a_secret_in_the_text_fails_without_showing_it():
    shot.check_no_secret("nothing here", "x", ["s3cr3t-value"])
    with pytest.raises(shot.Failed) as e:
        shot.check_no_secret("a s3cr3t-value in it", "the page", ["other", "s3cr3t-value"])
    assert "s3cr3t" not in str(e.value) and "the page" in str(e.value)
