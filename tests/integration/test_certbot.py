"""certbot TLS end to end against Pebble (Debian's ACME test server, tests/support/pebble.py):
issuance through nginx's webroot, one ACME order for three converges, a second converge with zero
changes, a forced renewal that nginx serves (deploy hook), ``certbot renew --dry-run`` while nginx
runs, the unattended renewal service with the test CA, a change of names ordering again, and the
daily runbook's certificate step on the served certificate. Ends by converging back to self-signed.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from deploys.contract.paths import STACK_DIR, StackLayout
from deploys.contract.tls import ACME_CA_BUNDLE_PATH, CERT_NAME, LETSENCRYPT_DIR, live_file
from testhosts.state import StatePaths, load_images
from tests.integration.conftest import ROOT, host_network, run_pyinfra, ssh
from tests.support.pebble import pebble_server

pytestmark = pytest.mark.integration

NAMES = ("order.test", "www.order.test")
CERTBOT = f"sudo env REQUESTS_CA_BUNDLE={ACME_CA_BUNDLE_PATH} certbot"


@pytest.fixture(scope="module")
def app(inventory):
    return inventory["app"][0]


@pytest.fixture(scope="module")
def pebble(app):
    paths = StatePaths.from_env()
    image = load_images(paths).pebble
    if image is None:
        pytest.fail("no pebble image in images.json: run `make images`")
    name, data = app
    network = host_network(data)
    with pebble_server(image, f"{data['testhost_container']}-pebble", paths.label, {n: data["testhost_ip"] for n in NAMES},
                       network=network) as p:
        # Pebble starts empty: certbot state from an earlier Pebble (accounts, lineages) means nothing to it
        ssh(data, f"sudo rm -rf {LETSENCRYPT_DIR}/accounts {LETSENCRYPT_DIR}/live/{CERT_NAME} "
                  f"{LETSENCRYPT_DIR}/archive/{CERT_NAME} {LETSENCRYPT_DIR}/renewal/{CERT_NAME}.conf")
        yield p
    # leave the host as the rest of the suite expects it: self-signed (replaces the symlinks into live/)
    result = run_pyinfra()
    assert result.returncode == 0, result.output[-3000:]


def _inventory(tmp_path_factory, pebble, names=("order.test",)) -> str:
    tmp = tmp_path_factory.mktemp("acme")
    bundle = tmp / "pebble-listener-ca.pem"
    bundle.write_text(pebble.listener_ca)
    extra = {"tls_mode": "acme", "acme_directory_url": pebble.directory_url, "acme_ca_bundle": str(bundle),
             "acme_names": list(names)}
    inv = tmp / "acme_inventory.py"
    inv.write_text(
        "import runpy\n"
        f"ns = runpy.run_path({str(ROOT / 'inventories' / 'local.py')!r})\n"
        "from inventories.schema import check_inventory\n"
        f"extra = {json.dumps(extra)}\n"
        "app = [(n, {**d, **extra}) for n, d in ns['app']]\n"
        "controller = [(n, {**d, **extra}) for n, d in ns['controller']]\n"
        "monitoring = [(n, {**d, **extra}) for n, d in ns['monitoring']]\n"
        "check_inventory({'app': app, 'controller': controller, 'monitoring': monitoring})\n",
    )
    return str(inv)


@pytest.fixture(scope="module")
def acme_inventory(tmp_path_factory, pebble):
    return _inventory(tmp_path_factory, pebble)


def _pebble_root(pebble) -> str:
    """Pebble's root CA (new at every start), from its management API."""
    ctx = ssl.create_default_context(cadata=pebble.listener_ca)
    url = pebble.directory_url.replace(":14000/dir", ":15000/roots/0")
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return r.read().decode()


def served(data, pebble) -> dict[str, str]:
    """The certificate nginx serves on the host's HTTPS port, verified against Pebble's root for
    order.test: ``{"serial", "san"}``."""
    url = urllib.parse.urlsplit(data["probe_https_url"])
    ctx = ssl.create_default_context(cadata=_pebble_root(pebble))
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="order.test") as tls:
        pem = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-ext", "subjectAltName"], input=pem,
                         capture_output=True, text=True, check=True).stdout
    return {"serial": out.split("serial=", 1)[1].split()[0].upper(), "san": out.split("Name:", 1)[1].strip()}


def on_disk(data) -> str:
    out = ssh(data, f"sudo openssl x509 -noout -serial -in {live_file('cert.pem')}").stdout
    return out.strip().split("=", 1)[1].upper()


STATE: dict[str, object] = {}


def test_first_converge_obtains_the_certificate_nginx_serves(app, pebble, acme_inventory):
    _, data = app
    result = run_pyinfra(inventory=acme_inventory)
    assert result.returncode == 0, result.output[-4000:]
    assert "ACME order for orderops: no certificate yet" in result.output
    got = served(data, pebble)  # verifies the chain to Pebble's root for order.test
    assert got["serial"] == on_disk(data) and got["san"] == "DNS:order.test"
    link = ssh(data, f"readlink {StackLayout(STACK_DIR).certificate}").stdout.strip()
    assert link == live_file("fullchain.pem")
    STATE["serial"] = got["serial"]


def test_second_converge_changes_nothing_and_three_converges_make_one_order(app, pebble, acme_inventory):
    second = run_pyinfra(inventory=acme_inventory)
    assert second.returncode == 0
    assert second.totals["success"] == 0, second.output[-4000:]
    assert run_pyinfra(inventory=acme_inventory).returncode == 0
    assert pebble.orders() == 1, "three converges made more than one ACME order"
    assert served(app[1], pebble)["serial"] == STATE["serial"]


def test_renewal_service_carries_the_test_ca_and_no_random_sleep(app):
    _, data = app
    show = ssh(data, "systemctl show -p Environment -p ExecStart certbot.service").stdout
    assert f"REQUESTS_CA_BUNDLE={ACME_CA_BUNDLE_PATH}" in show and "--no-random-sleep-on-renew" in show
    assert ssh(data, "systemctl is-enabled certbot.timer").stdout.strip() == "enabled"
    # the unattended path itself: not due, so it succeeds without an order
    ssh(data, "sudo systemctl start certbot.service")
    assert "Result=success" in ssh(data, "systemctl show -p Result certbot.service").stdout


def test_forced_renewal_is_served_after_the_deploy_hook(app, pebble):
    _, data = app
    ssh(data, f"{CERTBOT} renew --force-renewal --no-random-sleep-on-renew --cert-name {CERT_NAME} -q")
    new = on_disk(data)
    assert new != STATE["serial"]
    assert served(data, pebble)["serial"] == new  # the deploy hook reloaded nginx in its container
    STATE["serial"] = new


def test_renew_dry_run_passes_while_nginx_runs(app, pebble):
    _, data = app
    before = on_disk(data)
    # certbot 2.1 (bookworm) points a dry run at Let's Encrypt staging unless --server is given,
    # whatever the renewal configuration says: a dry run against another CA names it
    ssh(data, f"{CERTBOT} renew --dry-run --no-random-sleep-on-renew --cert-name {CERT_NAME} --server {pebble.directory_url}")
    assert on_disk(data) == before  # a dry run saves nothing
    state = ssh(data, f"sudo docker compose -p orderops --project-directory {STACK_DIR} ps --format json nginx").stdout
    assert '"running"' in state


def test_daily_runbook_reads_the_served_certificate(app, acme_inventory, tmp_path):
    name, _ = app
    proc = subprocess.run(
        [sys.executable, "-m", "runbooks", "run", "daily", "-i", acme_inventory, "-p", "drift=false",
         "-p", "disk_max_percent=100", "-p", "inode_max_percent=100", "-p", "memory_max_percent=100",
         "-p", "load_max_per_cpu=1000", "--runs-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    run_dir = next(tmp_path.iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    step = next(s for s in result["steps"] if s["name"] == "Certificate days left")["results"][name]
    assert step["status"] == "ok", (step, proc.stdout[-2000:])
    assert step["data"]["served_serial"] == step["data"]["file_serial"] == STATE["serial"]


def test_a_change_of_names_orders_one_certificate(app, pebble, tmp_path_factory):
    _, data = app
    before = pebble.orders()
    inv = _inventory(tmp_path_factory, pebble, names=NAMES)
    result = run_pyinfra(inventory=inv)
    assert result.returncode == 0, result.output[-4000:]
    assert "names changed" in result.output
    assert pebble.orders() == before + 1
    got = served(data, pebble)
    assert got["san"] == "DNS:order.test, DNS:www.order.test" and got["serial"] == on_disk(data)
    again = run_pyinfra(inventory=inv)
    assert again.totals["success"] == 0 and pebble.orders() == before + 1
