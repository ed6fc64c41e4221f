"""The one container-hardening mechanism (deploys/roles/compose_hardening.py), used by both projects."""

from __future__ import annotations

import pytest
import yaml

from deploys.roles import compose_hardening
from deploys.roles.compose_hardening import Hardening, compose_keys, harden
from inventories.limits import ServiceLimits

LIMITS = ServiceLimits(memory="64m", cpus=0.25, pids=32)


def test_keys_of_a_bare_entry_and_of_a_full_one():
    assert compose_keys(Hardening(), LIMITS) == {
        "security_opt": ["no-new-privileges:true"], "cap_drop": ["ALL"], "read_only": True,
        "mem_limit": "64m", "cpus": 0.25, "pids_limit": 32,
    }
    keys = compose_keys(Hardening(cap_add=("CHOWN",), tmpfs=("/tmp", "/run"), user="10:20"), LIMITS)
    assert list(keys) == ["security_opt", "cap_drop", "cap_add", "user", "read_only", "tmpfs", "mem_limit", "cpus",
                          "pids_limit"]
    assert (keys["cap_add"], keys["tmpfs"], keys["user"]) == (["CHOWN"], ["/tmp", "/run"], "10:20")


@pytest.mark.parametrize("bad", [dict(cap_add=("CAP_CHOWN",)), dict(cap_add=("chown",)), dict(tmpfs=("tmp",)),
                                 dict(user="nobody"), dict(user="65534")])
def test_bad_entries_are_refused(bad):
    with pytest.raises(ValueError):
        Hardening(**bad)


def test_every_service_needs_an_entry_and_limits_and_no_key_outside_the_table():
    services = {"a": {"image": "x"}, "b": {"image": "y"}}
    with pytest.raises(ValueError, match="b"):
        harden(services, {"a": Hardening()}, {"a": LIMITS, "b": LIMITS})
    with pytest.raises(ValueError, match="b"):
        harden(services, {"a": Hardening(), "b": Hardening()}, {"a": LIMITS})
    with pytest.raises(ValueError, match="a: user"):
        harden({"a": {"image": "x", "user": "root"}}, {"a": Hardening()}, {"a": LIMITS})
    out = harden(services, {"a": Hardening(), "b": Hardening(tmpfs=("/tmp",))}, {"a": LIMITS, "b": LIMITS})
    assert out["a"]["image"] == "x" and out["b"]["tmpfs"] == ["/tmp"] and "tmpfs" not in out["a"]
    assert services == {"a": {"image": "x"}, "b": {"image": "y"}}  # input left alone


def test_both_projects_go_through_the_one_helper(monkeypatch, make_settings):
    """A changed baseline shows in every service of the order stack and of the monitoring project."""
    from deploys.roles import monitoring, order_stack
    from tests.unit.monitoring.conftest import IMAGES

    original = compose_hardening.compose_keys
    monkeypatch.setattr(compose_hardening, "compose_keys", lambda h, lim: {**original(h, lim), "labels": {"x": "1"}})
    settings = make_settings(groups=("app", "monitoring"),
                             monitoring={"images": IMAGES, "webhook_url": "https://hooks.example.com/a"})
    for text in (order_stack.compose_text(settings), monitoring.compose_text(settings)):
        services = yaml.safe_load(text)["services"]
        assert services and all(svc["labels"] == {"x": "1"} for svc in services.values())
