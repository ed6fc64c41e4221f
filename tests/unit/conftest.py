"""Shared unit-test fixtures: validated settings built from plain host data."""

import json
import os

import pytest

from inventories.schema import SECRET_NAMES, build_settings

#: Strong by the shared policy (order_service/core/secret_policy.py): no weak word, >= 24 chars.
STRONG_SECRETS = {name: f"{name[:3]}-Zq7x0123456789abcdefghijklmnop" for name in SECRET_NAMES}


@pytest.fixture
def make_settings(tmp_path):
    """``make_settings(**host_data_overrides) -> HostSettings`` for a production-like host."""

    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps(STRONG_SECRETS))
    os.chmod(secrets, 0o600)

    def make(groups=("app",), **overrides):
        data = {
            "environment": "production",
            "domain": "orders.example.com",
            "secrets_file": str(secrets),
            "images": {
                "order_service": "registry.example.com/orderops/order-service:0.1.0",
                "postgres": "postgres:15.10",
                "redis": "redis:7.2.6",
                "nginx": "nginx:1.26.2",
            },
            **overrides,
        }
        return build_settings("app-1", data, groups)

    return make
