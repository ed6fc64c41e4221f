"""The ``registry`` image transport against a real registry: Debian's ``docker-registry``
package, run inside the test host on its loopback (127.0.0.1:5000 needs no TLS exemption).

The images reach the registry from the host's own engine (put there by the archive transport),
under registry names; the deploy then runs with ``image_transport: registry`` and those names,
pulls what is missing, converges the stack on them, and a second run changes nothing. Finally
the archive inventory is deployed again, so later suites see the usual stack.
"""

from __future__ import annotations

import pytest

from deploys.contract.compose import COMPOSE_PROJECT, PROJECT_LABEL
from tests.integration.conftest import ROOT, run_pyinfra, ssh

pytestmark = pytest.mark.integration

REGISTRY = "127.0.0.1:5000"


def _registry_inventory(tmp_path, refs: dict[str, str]) -> str:
    inv = tmp_path / "registry_inventory.py"
    inv.write_text(
        "import runpy\n"
        f"ns = runpy.run_path({str(ROOT / 'inventories' / 'local.py')!r})\n"
        "from inventories.schema import check_inventory\n"
        f"_extra = {{'image_transport': 'registry', 'images': {refs!r}}}\n"
        "app = [(n, {**d, **_extra}) for n, d in ns['app']]\n"
        "controller = [(n, {**d, **_extra}) for n, d in ns['controller']]\n"
        "check_inventory({'app': app, 'controller': controller})\n",
    )
    return str(inv)


@pytest.fixture
def registry_on_host(inventory):
    """Debian's docker-registry on the host for this test only: stopped and disabled afterwards, so
    the shared host runs only what the deploy needs again (tests/infra's service allow-list)."""
    data = inventory["app"][0][1]
    yield data
    ssh(data, "sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true")


def test_registry_transport_pulls_and_converges(inventory, registry_on_host, tmp_path):
    name, data = inventory["app"][0]
    images = data["images"]
    ssh(data, "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry "
              ">/dev/null 2>&1 || { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive "
              "apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; }")
    # Debian's default config requires htpasswd auth; this test registry listens on loopback only.
    config = ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n"
              f"http:\n  addr: {REGISTRY}\n")
    ssh(data, f"printf '{config}' | sudo tee /etc/docker/registry/config.yml >/dev/null")
    ssh(data, "sudo systemctl restart docker-registry && for i in $(seq 30); do "
              f"curl -fs http://{REGISTRY}/v2/ >/dev/null && exit 0; sleep 1; done; exit 1")

    refs = {}
    for role, ref in images.items():
        registry_ref = f"{REGISTRY}/{ref}"
        refs[role] = registry_ref
        ssh(data, f"sudo docker tag {ref} {registry_ref} && sudo docker push -q {registry_ref} >/dev/null "
                  f"&& sudo docker rmi {registry_ref} >/dev/null")
    # the host no longer has the registry names: the deploy must pull them
    missing = ssh(data, "sudo docker images --format '{{.Repository}}' | grep -c '^127.0.0.1:5000/' || true").stdout
    assert missing.strip() == "0"

    inv = _registry_inventory(tmp_path, refs)
    first = run_pyinfra(inventory=inv)
    assert first.returncode == 0, first.output[-4000:]
    assert "Stack images (registry)" in first.output
    running = ssh(data, f"sudo docker ps --filter label={PROJECT_LABEL}={COMPOSE_PROJECT} --format '{{{{.Image}}}} {{{{.Status}}}}'").stdout
    for ref in refs.values():
        assert ref in running, running
    assert running.count("(healthy)") == 4, running

    second = run_pyinfra(inventory=inv)
    assert second.returncode == 0
    assert second.totals["success"] == 0, second.output[-4000:]

    # back to the inventory's own (archive) images
    back = run_pyinfra()
    assert back.returncode == 0, back.output[-4000:]
    running = ssh(data, f"sudo docker ps --filter label={PROJECT_LABEL}={COMPOSE_PROJECT} --format '{{{{.Image}}}}'").stdout
    assert images["order_service"] in running
