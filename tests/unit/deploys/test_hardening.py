"""Host baseline: sysctl operation (real host vs container), audit rules, daemon.json, apt lock."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from pyinfra.facts.files import Sha256File

from deploys.facts.sysctl import ProcSysMode, SysctlValues
from deploys.operations import audit, sysctl
from deploys.roles.hardening import SYSCTL_BASELINE, sysctl_text
from templates import TEMPLATE_DIR

from .opcases import check_case

VALUES = {"net.ipv4.tcp_syncookies": "1", "kernel.kptr_restrict": "2", "net.ipv6.conf.all.accept_redirects": "0"}
KEYS = (("keys", tuple(sorted(VALUES))),)


def _facts(mode, current):
    return {(SysctlValues, KEYS): current, ProcSysMode: mode}


APPLY = "/usr/local/sbin/orderops-sysctl-apply /etc/sysctl.d/60-orderops-baseline.conf"
SYSCTL_CASES = {
    "real host, all in force: noop": dict(
        facts=_facts("rw", dict(VALUES)), noop="sysctl baseline in force"),
    "real host, kernel key differs: apply": dict(
        facts=_facts("rw", {**VALUES, "kernel.kptr_restrict": "0"}), commands=[APPLY]),
    "container, only the kernel key differs: noop (it is skipped there)": dict(
        facts=_facts("ro", {**VALUES, "kernel.kptr_restrict": "0"}), noop="the rest skipped in a container"),
    "container, a net key differs: apply": dict(
        facts=_facts("ro", {**VALUES, "net.ipv4.tcp_syncookies": "0"}), commands=[APPLY]),
    "key the kernel lacks: ignored": dict(
        facts=_facts("rw", {**VALUES, "net.ipv6.conf.all.accept_redirects": None}), noop="in force"),
}


@pytest.mark.parametrize("case", SYSCTL_CASES.values(), ids=SYSCTL_CASES.keys())
def test_sysctl_cases(case):
    case = {**case, "kwargs": dict(values=VALUES, path="/etc/sysctl.d/60-orderops-baseline.conf")}
    check_case(sysctl.applied, case)


def test_sysctl_facts_parse():
    out = ["net.ipv4.tcp_syncookies\t1", "net.ipv4.ip_local_port_range\t32768   60999", "kernel.nothing\t##missing"]
    assert SysctlValues().process(out) == {
        "net.ipv4.tcp_syncookies": "1", "net.ipv4.ip_local_port_range": "32768 60999", "kernel.nothing": None}
    assert ProcSysMode().process(["ro"]) == "ro" and ProcSysMode().process([]) == "rw"


def test_baseline_file_and_script_agree_on_keys(tmp_path):
    """The applier's parser (sed) reads back exactly the baseline's keys from the rendered file."""
    path = tmp_path / "baseline.conf"
    path.write_text(sysctl_text())
    script = (TEMPLATE_DIR / "host" / "sysctl-apply.sh").read_text()
    sed = script.split("keys=$(", 1)[1].split(' "$file")', 1)[0]
    out = subprocess.run(["sh", "-c", f'{sed} "$1"', "sh", str(path)], capture_output=True, text=True, check=True).stdout
    assert dict(line.split("=", 1) for line in out.split()) == SYSCTL_BASELINE
    assert all(not k.startswith("net.") or sysctl.namespaced(k) for k in SYSCTL_BASELINE), "net.core.* is not per-namespace"


AUDIT = (TEMPLATE_DIR / "host" / "audit-docker.rules").read_text()
AUDIT_KEY = (Sha256File, (("path", "/etc/audit/rules.d/orderops-docker.rules"),))
AUDIT_CASES = {
    "container: skipped with the reason": dict(facts={ProcSysMode: "ro"}, noop="skipped inside a container"),
    "real host, up to date": dict(facts={ProcSysMode: "rw", AUDIT_KEY: hashlib.sha256(AUDIT.encode()).hexdigest()}, noop="up to date"),
    "real host, missing: install and load": dict(
        facts={ProcSysMode: "rw", AUDIT_KEY: None},
        commands=["mkdir -p /etc/audit/rules.d", "<upload /etc/audit/rules.d/orderops-docker.rules>",
                  "chmod 0640 /etc/audit/rules.d/orderops-docker.rules && augenrules --load"]),
}


@pytest.mark.parametrize("case", AUDIT_CASES.values(), ids=AUDIT_CASES.keys())
def test_audit_cases(case):
    check_case(audit.rules, {**case, "kwargs": dict(filename="orderops-docker.rules", content=AUDIT)})


def test_daemon_json_hardening(make_settings):
    from deploys.roles.docker_engine import daemon_json

    conf = json.loads(daemon_json(make_settings()))
    assert conf["live-restore"] is True and conf["icc"] is False and conf["no-new-privileges"] is True
    assert conf["userland-proxy"] is True
    assert json.loads(daemon_json(make_settings(docker_userland_proxy=False)))["userland-proxy"] is False


def test_compose_services_are_hardened_with_inventory_limits(make_settings):
    import yaml

    from deploys.roles.order_stack import compose_text

    settings = make_settings(service_limits={"redis": {"memory": "128m", "cpus": 0.25, "pids": 32}})
    services = yaml.safe_load(compose_text(settings))["services"]
    assert set(services) == {"postgres", "redis", "api", "nginx"}
    for name, svc in services.items():
        assert svc["security_opt"] == ["no-new-privileges:true"], name
        assert svc["cap_drop"] == ["ALL"] and svc["read_only"] is True and svc["tmpfs"], name
        assert "healthcheck" in svc, name
        assert ("ports" in svc) == (name == "nginx"), f"{name}: only nginx publishes host ports"
    assert (services["redis"]["mem_limit"], services["redis"]["cpus"], services["redis"]["pids_limit"]) == ("128m", 0.25, 32)
    assert services["postgres"]["mem_limit"] == "1g"  # default kept for services the inventory leaves out
    assert "cap_add" not in services["api"]


def test_bad_service_limit_names_the_field(make_settings):
    from inventories.schema import InventoryError

    with pytest.raises(InventoryError, match="service_limits"):
        make_settings(service_limits={"redis": {"memory": "lots", "cpus": 1, "pids": 32}})


def test_auto_upgrades_reboot_policy_is_inventory_data(make_settings):
    from deploys.roles.hardening import auto_upgrades_text
    from inventories.schema import InventoryError

    assert 'Automatic-Reboot "false"' in auto_upgrades_text(make_settings())
    text = auto_upgrades_text(make_settings(auto_reboot=True, auto_reboot_time="03:30"))
    assert 'Automatic-Reboot "true"' in text and 'Automatic-Reboot-Time "03:30"' in text
    with pytest.raises(InventoryError, match="auto_reboot_time"):
        make_settings(auto_reboot_time="25:00")


# ---- only the services the host needs: units.masked on an Ubuntu server's facts ----

from deploys.facts.units import UnitStates  # noqa: E402
from deploys.operations import units  # noqa: E402
from inventories.schema import UNNEEDED_SERVICES  # noqa: E402

#: ``systemctl show`` answers of a bare Ubuntu 24.04 server (snapd, ModemManager, udisks2 running;
#: avahi from a desktop package, enabled by socket; no cups, bluetooth or rpcbind)
RUNNING = {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"}
SOCKET_ONLY = {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "enabled"}
ABSENT = {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""}
MASKED = {"LoadState": "masked", "ActiveState": "inactive", "UnitFileState": "masked"}
MASKED_RUNNING = {"LoadState": "masked", "ActiveState": "active", "UnitFileState": "masked"}
UBUNTU = {
    "snapd.service": RUNNING, "snapd.socket": RUNNING, "ModemManager.service": RUNNING,
    "avahi-daemon.service": SOCKET_ONLY, "avahi-daemon.socket": RUNNING, "udisks2.service": RUNNING,
    "apport.service": {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"},
}
DEFAULT = list(UNNEEDED_SERVICES)


def _units(states: dict) -> dict:
    return {(UnitStates, (("units", tuple(DEFAULT)),)): {u: states.get(u, ABSENT) for u in DEFAULT}}


PRESENT_ON_UBUNTU = [u for u in DEFAULT if u in UBUNTU]
UNIT_CASES = {
    "Ubuntu server with snapd, ModemManager, avahi, udisks2, apport: disabled, stopped, masked": dict(
        facts=_units(UBUNTU), kwargs=dict(units=DEFAULT),
        commands=["systemctl disable --now -- " + " ".join(PRESENT_ON_UBUNTU), "systemctl mask -- " + " ".join(PRESENT_ON_UBUNTU)]),
    "second converge: all masked and stopped, the rest absent: noop": dict(
        facts=_units({u: MASKED for u in UBUNTU}), kwargs=dict(units=DEFAULT), noop="absent or masked and stopped"),
    "Debian minimal install (none present): noop": dict(
        facts=_units({}), kwargs=dict(units=DEFAULT), noop="absent or masked and stopped"),
    "masked by hand while running: stopped only": dict(
        facts=_units({"ModemManager.service": MASKED_RUNNING, "snapd.service": MASKED}), kwargs=dict(units=DEFAULT),
        commands=["systemctl stop -- ModemManager.service"]),
    "a unit missing from the output (no systemctl answer): treated as absent": dict(
        facts={(UnitStates, (("units", ("cups.service",)),)): {}}, kwargs=dict(units=["cups.service"]), noop="absent"),
    "empty list: noop without reading facts": dict(facts={}, kwargs=dict(units=[]), noop="absent"),
}


@pytest.mark.parametrize("case", UNIT_CASES.values(), ids=UNIT_CASES.keys())
def test_unneeded_units_cases(case):
    check_case(units.masked, case)


def test_unit_states_fact_parses_systemctl_show():
    out = ["##orderops-unit snapd.service", "LoadState=loaded", "ActiveState=active", "UnitFileState=enabled",
           "##orderops-unit cups.socket", "LoadState=not-found", "ActiveState=inactive", "UnitFileState="]
    assert UnitStates().process(out) == {"snapd.service": RUNNING, "cups.socket": ABSENT}
    assert "systemctl show --property=LoadState,ActiveState,UnitFileState -- 'a b.service'" in UnitStates().command(units=["a b.service"])


def test_disabled_services_default_and_refusals(make_settings):
    from inventories.schema import InventoryError

    assert make_settings().disabled_services == tuple(UNNEEDED_SERVICES)
    assert all(reason for reason in UNNEEDED_SERVICES.values())
    assert make_settings(disabled_services=["cups.service", "cups.service"]).disabled_services == ("cups.service",)
    for needed in ("ssh.service", "docker.socket", "containerd.service", "fail2ban.service", "ufw.service", "cron.service",
                   "unattended-upgrades.service", "systemd-journald.socket", "apt-daily.timer", "orderops-sysctl.service",
                   "orderops-runbook-daily.timer"):
        with pytest.raises(InventoryError, match="disabled_services"):
            make_settings(disabled_services=[needed])
    for bad in ("snapd", "multi-user.target", "x.service; reboot", "-x.service"):
        with pytest.raises(InventoryError, match="disabled_services"):
            make_settings(disabled_services=[bad])
