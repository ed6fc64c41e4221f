"""Config files render into what their consumers accept: templates (StrictUndefined) for config
languages, yaml.safe_dump / json.dumps for data files."""

import json

import jinja2
import pytest
import yaml

from deploys.roles.docker_engine import daemon_json
from deploys.roles.order_stack import compose_text, env_text, nginx_text
from templates import render
from tests.unit.conftest import STRONG_SECRETS


def test_missing_variable_raises():
    with pytest.raises(jinja2.UndefinedError):
        render("nginx/orderops.conf.j2", domain="x.example.com")


def test_daemon_json_log_rotation(make_settings):
    text = daemon_json(make_settings(docker_log_max_size="25m", docker_log_max_file=7))
    data = json.loads(text)
    assert text.endswith("}\n")
    assert data["log-driver"] == "json-file"
    assert data["log-opts"] == {"max-size": "25m", "max-file": "7"}


def test_compose_file_shape(make_settings):
    s = make_settings()
    doc = yaml.safe_load(compose_text(s))
    services = doc["services"]
    assert set(services) == {"api", "postgres", "redis", "nginx"}
    assert doc["name"] == "orderops"
    # only nginx publishes ports
    assert [name for name, svc in services.items() if "ports" in svc] == ["nginx"]
    assert services["nginx"]["ports"] == ["80:80", "443:443"]
    for name, svc in services.items():
        assert svc["restart"] == "unless-stopped", name
        assert "healthcheck" in svc, name
        assert "env_file" not in svc, name  # docker/compose#14001
    assert services["api"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["nginx"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert "127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])  # TCP probe
    assert services["api"]["image"] == s.images.order_service
    assert doc["networks"]["backend"]["internal"] is True
    assert set(doc["volumes"]) == {"pgdata", "redisdata", "attachments"}


def test_compose_file_holds_no_secret_values(make_settings):
    text = compose_text(make_settings())
    for value in STRONG_SECRETS.values():
        assert value not in text
    assert "${POSTGRES_PASSWORD:?" in text and "${REDIS_PASSWORD:?" in text


def test_env_file_quotes_secrets(make_settings):
    text = env_text(make_settings())
    assert f"POSTGRES_PASSWORD='{STRONG_SECRETS['postgres_password']}'" in text
    assert f"REDIS_PASSWORD='{STRONG_SECRETS['redis_password']}'" in text


def test_nginx_vhost(make_settings):
    text = nginx_text(make_settings(nginx_client_max_body_size="2m"))
    assert "client_max_body_size 2m;" in text
    assert "return 301 https://$host$request_uri;" in text
    assert "proxy_set_header X-Real-IP         $remote_addr;" in text
    assert "proxy_set_header X-Request-ID      $orderops_request_id;" in text
    assert "server_name orders.example.com;" in text
    assert "location ^~ /metrics { return 404; }" in text
    # a client-sent X-Forwarded-For is overwritten, never appended to
    assert "proxy_set_header X-Forwarded-For   $remote_addr;" in text
    assert "$proxy_add_x_forwarded_for" not in text


def test_compose_values_that_need_quoting_survive_yaml(make_settings):
    """yaml.safe_dump quotes what would change type ("80:80" is a base-60 int in YAML 1.1, "5432" an int)."""
    doc = yaml.safe_load(compose_text(make_settings(service_workers=4)))
    assert doc["services"]["api"]["environment"]["POSTGRES_PORT"] == "5432"
    assert doc["services"]["api"]["environment"]["WORKERS"] == "4"
    assert doc["services"]["nginx"]["ports"] == ["80:80", "443:443"]
    assert doc["services"]["redis"]["command"][-1].endswith('--requirepass "$$REDIS_PASSWORD"')


def test_nginx_serves_the_front_end_release(make_settings):
    conf = nginx_text(make_settings())
    doc = yaml.safe_load(compose_text(make_settings()))
    assert "./web:/srv/web:ro" in doc["services"]["nginx"]["volumes"]
    assert "root /srv/web/current/site;" in conf
    assert "include /srv/web/current/csp*.conf;" in conf  # a glob: no release yet is no config error
    html = conf.split("location / {\n        try_files", 1)[1].split("}", 1)[0]
    assert 'Cache-Control "no-cache"' in html and "Strict-Transport-Security" in html
    assets = conf.split("location ^~ /_next/static/ {", 1)[1].split("}", 1)[0]
    assert "immutable" in assets and "@previous_release" in assets
    api = conf.split("location /api/ {", 1)[1].split("}", 1)[0]
    assert "proxy_pass $orderops_api;" in api
