"""Inventory of the local test hosts (the embedded default target).

Reads the harness state that ``make hosts-up`` (``python -m testhosts up``) writes to
``.orderops/`` (or ``$ORDEROPS_STATE_DIR``): the hosts and their ports, the locally built image
references, the SSH key and the generated secrets. Works for 1 or N hosts, in the ``single``
layout (every host in ``app``, the first also ``controller``), ``split`` (one controller, the
rest ``app``) or ``monitoring`` (as split, the last host ``monitoring`` only: the monitoring stack on
its own host; the app hosts' exporters and Loki are reached over the test network's addresses).

    pyinfra inventories/local.py deploys/site.py
"""

import json as _json
import os as _os

from deploys.contract.paths import local_state_dir as _local_state_dir
from deploys.contract.services import SERVICE_IMAGES as _SERVICE_IMAGES
from inventories.schema import InventoryError as _InventoryError
from inventories.schema import check_inventory as _check_inventory

_STATE = _local_state_dir()


def _load(name):
    path = _STATE / name
    if not path.exists():
        raise SystemExit(f"orderops: {_InventoryError(None, str(path), 'missing: run `make hosts-up` (and `make images`) first')}")
    return _json.loads(path.read_text())


_hosts_state = _load("hosts.json")


def _backup_recipients():
    # the harness's age key pair (testhosts/secrets.py ensure_backup_key); the private key stays here
    try:
        lines = (_STATE / "keys" / "backup_age.key").read_text().splitlines()
    except OSError:
        return []
    return [ln.split(": ", 1)[1].strip() for ln in lines if ln.startswith("# public key: ")]


_images = _load("images.json")
# the front end built by `make web` (tools/build_web.py); without it no front end is shipped
_web = _json.loads((_STATE / "web.json").read_text()) if (_STATE / "web.json").exists() else {}


# Test-speed monitoring values live here only (production defaults: inventories/monitoring.py).
# alert-sink is the live test's webhook receiver + SMTP sink (tests/integration/test_monitoring.py).
_MONITORING = {
    "images": _images.get("monitoring") or None,
    "scrape_interval_s": 5,
    "evaluation_interval_s": 5,
    "alert_for_s": 10,
    "resend_delay_s": 5,
    "group_wait_s": 5,
    "group_interval_s": 10,
    "repeat_interval_s": 3600,
    "retention_time": "2d",
    "retention_size": "512MB",
    "loki_retention_hours": 48,
    "probe_tls_verify": False,  # the local certificate is self-signed
    "grafana_public": True,  # nginx serves /grafana/ over HTTPS (tests/integration/test_monitoring.py)
    "webhook_url": "http://alert-sink:9099/alerts",
    "smtp": {"smarthost": "alert-sink:2525", "sender": "alertmanager@order.test", "to": ["ops@order.test"],
             "require_tls": False},
}


def _host_data(h):
    return {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": h["ssh_port"],
        "ssh_user": _hosts_state["ssh_user"],
        "ssh_key": _hosts_state["ssh_key"],
        # host keys verified: `make hosts-up` records them (read through Docker) in known_hosts
        "ssh_strict_host_key_checking": "yes",
        "ssh_known_hosts_file": str(_STATE / "known_hosts"),
        "_sudo": True,
        "environment": "local",
        "domain": "order.test",
        "secrets_file": str(_STATE / "secrets" / "local.json"),
        "docker_source": "distro",
        "compose_source": "deb-file",
        "compose_deb": _hosts_state["compose_deb"],
        "image_transport": "archive",
        "images": {role: _images[role] for role in _SERVICE_IMAGES.values()},
        # the front end built by `make web` (none: no front end is shipped)
        "web_artifact": _web.get("artifact"),
        # production fields the harness fills: the controller host reaches app hosts over the
        # Docker network, probes on this machine through the published ports
        "controller_address": h["ip"],
        "probe_https_url": f"https://127.0.0.1:{h['https_port']}",
        "probe_http_url": f"http://127.0.0.1:{h['http_port']}",
        # the harness publishes the host's 443 on this loopback port: HTTP redirects point there
        "https_public_port": h["https_port"],
        # test speed: the integration tests log in and call the API far more often than a client
        "nginx_login_rate": "600r/m",
        "nginx_login_burst": 200,
        "nginx_api_rate": "200r/s",
        "nginx_api_burst": 400,
        "service_rate_limit_user": 20000,
        "service_rate_limit_ip": 40000,
        # harness-only data for the tests (not settings: see inventories.schema)
        "testhost_ip": h["ip"],
        "testhost_ip6": h.get("ip6") or None,
        "testhost_container": h["container"],
        "monitoring": _MONITORING,
        "backup_age_recipients": _backup_recipients(),
        # test-speed value: the backup timer must not fire during a test run (tests use `backup now`)
        "backup_schedule": "*-01-01 00:00:00",
    }


_with_monitoring = _os.environ.get("ORDEROPS_MONITORING", "1") != "0" and bool(_MONITORING["images"])
# layout monitoring: the stack on a host of its own, scraping the app hosts over the test network
_own = [h for h in _hosts_state["hosts"] if "monitoring" in h["groups"]] if _with_monitoring else []
if _own:
    _MONITORING.update(
        app_hosts={h["name"]: h["ip"] for h in _hosts_state["hosts"] if "app" in h["groups"]},
        monitoring_hosts={h["name"]: h["ip"] for h in _own},
        grafana_public=False,  # no nginx on the monitoring host: Grafana through the SSH tunnel only
    )

app = [(h["name"], _host_data(h)) for h in _hosts_state["hosts"] if "app" in h["groups"]]
controller = [(h["name"], _host_data(h)) for h in _hosts_state["hosts"] if "controller" in h["groups"]]
# the monitoring stack on its own host (layout monitoring), else it shares the (first) app host;
# ORDEROPS_MONITORING=0 leaves it out
monitoring = [(h["name"], _host_data(h)) for h in _own] if _own else app[:1] if _with_monitoring else []

_check_inventory({"app": app, "controller": controller, "monitoring": monitoring})
