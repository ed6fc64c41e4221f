"""The repo's Loki, Alloy and Grafana files against the stand-ins (images/monitoring-standins), which
keep the real programs' checks: these tests rely on STAND-INS, not on real Loki/Alloy/Grafana
(production validates the same files with the pinned official images, deploys/roles/monitoring.py)."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

STANDINS = Path(__file__).resolve().parents[3] / "images" / "monitoring-standins"
ENV = {**os.environ, "PYTHONPATH": str(STANDINS)}


def standin(module, *args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", f"standins.{module}", *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, input=stdin, timeout=60)


def test_loki_config_verifies_and_enforces_retention(rendered):
    root = rendered()
    result = standin("loki", f"-config.file={root / 'loki.yaml'}", "-verify-config")
    assert result.returncode == 0, result.stderr
    text = (root / "loki.yaml").read_text()
    (root / "loki.yaml").write_text(text.replace("  delete_request_store: filesystem\n", ""))
    result = standin("loki", f"-config.file={root / 'loki.yaml'}", "-verify-config")
    assert result.returncode == 1 and "delete-request-store" in result.stderr
    (root / "loki.yaml").write_text(text + "bogus: 1\n")
    assert "field bogus not found" in standin("loki", f"-config.file={root / 'loki.yaml'}", "-verify-config").stderr


def test_alloy_config_validates_and_unknown_components_fail(rendered):
    root = rendered()
    assert standin("alloy", "validate", str(root / "config.alloy")).returncode == 0
    text = (root / "config.alloy").read_text()
    (root / "config.alloy").write_text(text + '\nprometheus.scrape "x" {\n  targets = []\n}\n')
    result = standin("alloy", "validate", str(root / "config.alloy"))
    assert result.returncode == 1 and "unrecognized block name 'prometheus.scrape'" in result.stderr
    (root / "config.alloy").write_text(text.replace("loki.write.default.receiver", "loki.write.nothere.receiver"))
    assert "does not exist" in standin("alloy", "validate", str(root / "config.alloy")).stderr


def test_alloy_labels_host_project_service(rendered):
    """The relabel rules of the repo's config give project/service/container from compose labels."""
    sys.path.insert(0, str(STANDINS))
    from standins.alloy import load, relabel

    graph = load(str(rendered() / "config.alloy"))
    rules = graph.components["discovery.relabel.containers"].rules
    target = {"__meta_docker_container_label_com_docker_compose_project": "orderops",
              "__meta_docker_container_label_com_docker_compose_service": "api",
              "__meta_docker_container_name": "/orderops-api-1"}
    labels = relabel(target, rules)
    assert {k: v for k, v in labels.items() if not k.startswith("__")} == {
        "project": "orderops", "service": "api", "container": "orderops-api-1"}
    assert graph.components["loki.source.docker.containers"].labels == {"host": "app-1"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grafana_env(tmp_path, root, password):
    return {"GF_PATHS_DATA": str(tmp_path / "data"), "GF_PATHS_PROVISIONING": str(root / "grafana" / "provisioning"),
            "GF_SECURITY_ADMIN_PASSWORD": password, "GF_SERVER_HTTP_PORT": str(_free_port()),
            "GF_AUTH_ANONYMOUS_ENABLED": "false", "GF_USERS_ALLOW_SIGN_UP": "false"}


def _provisioned_tree(rendered):
    root = rendered()
    provider = root / "grafana" / "provisioning" / "dashboards" / "orderops.yaml"
    provider.write_text(provider.read_text().replace("/var/lib/grafana-dashboards", str(root / "grafana" / "dashboards")))
    return root


def _get(port, path, user=None, password=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _start(env):
    proc = subprocess.Popen([sys.executable, "-m", "standins.grafana", "server"], env={**ENV, **env},
                            stderr=subprocess.PIPE, text=True)
    port = int(env["GF_SERVER_HTTP_PORT"])
    for _ in range(100):
        if proc.poll() is not None:
            return proc
        try:
            if _get(port, "/api/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    return proc


def test_grafana_provisioning_and_admin_password_on_existing_db(rendered, tmp_path):
    root = _provisioned_tree(rendered)
    env = _grafana_env(tmp_path, root, "first-password-1234")
    proc = _start(env)
    port = int(env["GF_SERVER_HTTP_PORT"])
    try:
        assert proc.poll() is None, proc.stderr.read()
        status, hits = _get(port, "/api/search", "admin", "first-password-1234")
        assert status == 200 and {h["uid"] for h in hits} >= {"orderops-red", "orderops-host", "orderops-backups"}
        status, sources = _get(port, "/api/datasources", "admin", "first-password-1234")
        assert {s["type"] for s in sources} == {"prometheus", "loki", "alertmanager"}
        assert _get(port, "/api/search")[0] == 401  # anonymous access off
        assert _get(port, "/api/search", "admin", "admin")[0] == 401
    finally:
        proc.terminate()
        proc.wait(10)
    # existing database: a new GF_SECURITY_ADMIN_PASSWORD is ignored, as by real Grafana ...
    env2 = {**env, "GF_SECURITY_ADMIN_PASSWORD": "second-password-5678", "GF_SERVER_HTTP_PORT": str(_free_port())}
    proc = _start(env2)
    port = int(env2["GF_SERVER_HTTP_PORT"])
    try:
        assert _get(port, "/api/user", "admin", "second-password-5678")[0] == 401
        # ... until the CLI resets it (what the deploy's grafana-admin-password.sh does)
        result = standin("grafana", "cli", "admin", "reset-admin-password", "--password-from-stdin",
                         env=env2, stdin="second-password-5678\n")
        assert result.returncode == 0, result.stderr
        assert _get(port, "/api/user", "admin", "second-password-5678")[0] == 200
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("breakage,message", [
    (lambda p: p.write_text(p.read_text().replace("type: loki", "type: ''")), "type is required"),
    (lambda p: p.write_text(p.read_text().replace("    url: http://loki:3100\n", "    url: http://loki:3100\n    isDefault: true\n")),
     "Only one datasource"),
])
def test_grafana_exits_on_bad_provisioning(rendered, tmp_path, breakage, message):
    root = _provisioned_tree(rendered)
    breakage(root / "grafana" / "provisioning" / "datasources" / "orderops.yaml")
    proc = _start(_grafana_env(tmp_path, root, "pw-123456"))
    assert proc.wait(20) == 1
    err = proc.stderr.read()
    assert "Failed to provision" in err and message in err
