"""The provisioned Grafana dashboards, as data: ``{uid: (title, [(panel title, PromQL or LogQL, unit)])}``.

:func:`dashboard_json` turns one entry into Grafana dashboard JSON (schemaVersion 39, timeseries
panels, two per row). The role writes them to ``config/grafana/dashboards/<uid>.json``.
"""

from __future__ import annotations

import json

__all__ = ["DASHBOARDS", "dashboard_json"]

_RATE = "sum by (route) (rate(orderops_http_requests_total[5m]))"
DASHBOARDS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "orderops-red": ("Order service (RED)", [
        ("Request rate by route", _RATE, "reqps"),
        ("5xx ratio by route", 'sum by (route) (rate(orderops_http_requests_total{status=~"5.."}[5m])) / ' + _RATE, "percentunit"),
        ("p95 duration by route", "histogram_quantile(0.95, sum by (route, le) (rate(orderops_http_request_duration_seconds_bucket[5m])))", "s"),
        ("p50 duration by route", "histogram_quantile(0.5, sum by (route, le) (rate(orderops_http_request_duration_seconds_bucket[5m])))", "s"),
    ]),
    "orderops-host": ("Host (USE)", [
        ("CPU utilisation", '1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "percentunit"),
        ("Load per CPU (saturation)", "node_load5 / count by (host) (node_cpu_seconds_total{mode=\"idle\"})", "short"),
        ("Memory used", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "percentunit"),
        ("Disk used", '1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes', "percentunit"),
        ("Inodes used", '1 - node_filesystem_files_free{fstype!~"tmpfs|overlay"} / node_filesystem_files', "percentunit"),
        ("Network errors", "rate(node_network_receive_errs_total[5m]) + rate(node_network_transmit_errs_total[5m])", "short"),
    ]),
    "orderops-containers": ("Containers", [
        ("CPU by container", 'sum by (name) (rate(container_cpu_usage_seconds_total{name!=""}[5m]))', "short"),
        ("Memory by container", 'container_memory_working_set_bytes{name!=""}', "bytes"),
        ("Restarts (15 min)", 'changes(container_start_time_seconds{name!=""}[15m])', "short"),
        ("Network received", 'sum by (name) (rate(container_network_receive_bytes_total{name!=""}[5m]))', "Bps"),
    ]),
    "orderops-postgres": ("PostgreSQL", [
        ("Connections by state", "sum by (state) (pg_stat_activity_count)", "short"),
        ("Connections of max", "sum(pg_stat_activity_count) / max(pg_settings_max_connections)", "percentunit"),
        ("Transactions", "sum(rate(pg_stat_database_xact_commit[5m]))", "short"),
        ("Up", "pg_up", "short"),
    ]),
    "orderops-redis": ("Redis", [
        ("Memory used of maxmemory", "redis_memory_used_bytes / redis_memory_max_bytes", "percentunit"),
        ("Evicted keys", "rate(redis_evicted_keys_total[5m])", "short"),
        ("Commands", "rate(redis_commands_processed_total[5m])", "short"),
        ("Clients", "redis_connected_clients", "short"),
    ]),
    "orderops-nginx": ("nginx", [
        ("Requests", "rate(nginx_http_requests_total[5m])", "reqps"),
        ("Active connections", "nginx_connections_active", "short"),
        ("Up", "nginx_up", "short"),
    ]),
    "orderops-certificates": ("Certificates", [
        ("Days until expiry", "(probe_ssl_earliest_cert_expiry - time()) / 86400", "d"),
        ("HTTPS readiness probe", "probe_success", "short"),
        ("Probe duration", "probe_duration_seconds", "s"),
    ]),
    "orderops-runbooks": ("Runbook outcomes", [
        ("Last run succeeded", "orderops_runbook_last_run_success", "short"),
        ("Hours since last run", "(time() - orderops_runbook_last_run_timestamp_seconds) / 3600", "h"),
        ("Duration of last run", "orderops_runbook_last_run_duration_seconds", "s"),
        ("Failed results of last run", "orderops_runbook_last_run_failed_results", "short"),
    ]),
    "orderops-backups": ("Backups", [
        ("Hours since last successful backup", "(time() - orderops_backup_last_success_timestamp_seconds) / 3600", "h"),
    ]),
}


def dashboard_json(uid: str) -> str:
    """Grafana dashboard JSON of ``DASHBOARDS[uid]`` (Prometheus datasource uid ``prometheus``)."""
    title, panels = DASHBOARDS[uid]
    out = []
    for i, (panel_title, expr, unit) in enumerate(panels):
        out.append({
            "id": i + 1, "type": "timeseries", "title": panel_title,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": "prometheus"}}],
        })
    doc = {"uid": uid, "title": title, "tags": ["orderops"], "schemaVersion": 39, "version": 1,
           "editable": False, "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "panels": out}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
