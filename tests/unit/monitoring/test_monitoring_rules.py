"""Alert rules, Prometheus and Alertmanager configuration checked by the real promtool and amtool
(Debian's packages, tests/support/prom_tools.py)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prom_tools import tool

TEST_FILE = Path(__file__).resolve().parents[3] / "templates" / "monitoring" / "rules.test.yml"
ALERTS = {"HostDown", "TargetDown", "Watchdog", "OrderServiceErrorRatio", "OrderServiceLatencyP95", "DiskWillFill",
          "InodesWillRunOut", "CertificateExpiresSoon", "RunbookFailed", "RunbookNotRun", "BackupTooOld",
          "ContainerRestarting", "PostgresConnectionsNearMax", "RedisMemoryNearMax"}


def run(*args, cwd=None):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def test_promtool_rule_tests_pass(rendered, tmp_path):
    rules = rendered() / "prometheus" / "rules" / "orderops.yml"
    shutil.copy(TEST_FILE, rules.parent / "rules.test.yml")
    (rules.parent / "rules.yml").write_text(rules.read_text())
    result = run(tool("promtool"), "test", "rules", "rules.test.yml", cwd=rules.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_rule_has_a_firing_and_a_quiet_case(rendered):
    """Each alert is tested; each test group either has an empty expectation or a host that must not fire."""
    rules = yaml.safe_load((rendered() / "prometheus" / "rules" / "orderops.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names == ALERTS
    tests = yaml.safe_load(TEST_FILE.read_text())["tests"]
    firing = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert firing == ALERTS
    for t in tests:
        for case in t["alert_rule_test"]:
            if case["alertname"] == "Watchdog":
                continue
            quiet = not case["exp_alerts"] or len(t["input_series"]) > len(case["exp_alerts"]) * 1
            assert quiet, case


def test_rule_tests_can_fail(rendered):
    """The same tests against rules with a wrong threshold fail (the tests are not vacuous)."""
    directory = rendered() / "prometheus" / "rules"
    text = (directory / "orderops.yml").read_text().replace("< 1209600", "< 86400")  # 14 d -> 1 d
    (directory / "rules.yml").write_text(text)
    shutil.copy(TEST_FILE, directory / "rules.test.yml")
    result = run(tool("promtool"), "test", "rules", "rules.test.yml", cwd=directory)
    assert result.returncode != 0
    assert "CertificateExpiresSoon" in result.stdout + result.stderr


def test_rules_follow_inventory_thresholds(monitoring_settings, rendered):
    s = monitoring_settings(alert_for_s=42, thresholds={"cert_days": 21})
    text = (rendered(s) / "prometheus" / "rules" / "orderops.yml").read_text()
    assert "for: 42s" in text and f"< {21 * 86400}" in text


def test_promtool_check_config_and_rules(rendered):
    root = rendered()
    result = run(tool("promtool"), "check", "config", "--syntax-only", root / "prometheus" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(tool("promtool"), "check", "rules", root / "prometheus" / "rules" / "orderops.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(rendered):
    path = rendered() / "prometheus" / "rules" / "orderops.yml"
    path.write_text(path.read_text().replace("expr: up{job=\"node\"} == 0", "expr: up{job=\"node\" == 0"))
    result = run(tool("promtool"), "check", "rules", path)
    assert result.returncode != 0


def test_prometheus_scrape_jobs_and_retention(monitoring_settings, rendered):
    from deploys.roles.monitoring import compose_text

    s = monitoring_settings(retention_time="30d", retention_size="20GB", scrape_interval_s=7)
    cfg = yaml.safe_load((rendered(s) / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert {"order-service", "node", "cadvisor", "postgres", "redis", "nginx", "blackbox-https"} <= set(jobs)
    assert jobs["order-service"]["static_configs"][0]["targets"] == ["api:8000"]
    assert all(j["static_configs"][0]["labels"]["host"] == "app-1" for j in jobs.values())
    assert cfg["global"]["scrape_interval"] == "7s"
    command = yaml.safe_load(compose_text(s))["services"]["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=30d" in command and "--storage.tsdb.retention.size=20GB" in command


@pytest.mark.parametrize("smtp,webhook", [(True, True), (True, False), (False, True)])
def test_amtool_accepts_every_receiver_combination(monitoring_settings, rendered, smtp, webhook):
    from tests.unit.monitoring.conftest import SMTP

    s = monitoring_settings(smtp=SMTP if smtp else None, webhook_url="https://h.example.com/a" if webhook else None)
    result = run(tool("amtool"), "check-config", rendered(s) / "alertmanager" / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routing_grouping_inhibition(rendered):
    cfg = yaml.safe_load((rendered() / "alertmanager" / "alertmanager.yml").read_text())
    route = cfg["route"]
    assert route["group_by"] == ["alertname", "host"] and route["repeat_interval"] == "14400s"
    by_match = {r["matchers"][0]: r["receiver"] for r in route["routes"]}
    assert by_match['severity="critical"'] == "critical" and by_match['severity="warning"'] == "webhook"
    critical = next(r for r in cfg["receivers"] if r["name"] == "critical")
    assert critical["email_configs"][0]["to"] == "ops@example.com" and critical["webhook_configs"]
    host_down = cfg["inhibit_rules"][0]
    assert host_down["source_matchers"] == ['alertname="HostDown"'] and host_down["equal"] == ["host"]


def test_amtool_rejects_an_undefined_receiver(rendered):
    path = rendered() / "alertmanager" / "alertmanager.yml"
    path.write_text(path.read_text().replace("receiver: critical", "receiver: nobody-here"))
    result = run(tool("amtool"), "check-config", path)
    assert result.returncode != 0
    assert "nobody-here" in result.stdout + result.stderr
