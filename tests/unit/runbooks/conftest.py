"""Fixtures for engine tests: hosts with fake settings, a fake executor, a runs directory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runbooks.core.types import HostTarget
from runbooks.executors.fake import FakeExecutor
from deploys.contract.compose import COMPOSE_PROJECT
from deploys.contract.paths import STACK_DIR

SECRETS = ["s3cr3t-postgres-value-0123456789", "s3cr3t-redis-value-abcdefghijkl", "k3y-secret-key-zyxwvutsrqpon", "adm1n-pass-qwertyuiopasdfgh"]


def make_host(name: str, groups=("app",)) -> HostTarget:
    settings = SimpleNamespace(
        secrets=SimpleNamespace(values=lambda: list(SECRETS)), lock_ttl=600, groups=tuple(groups),
        compose_project=COMPOSE_PROJECT, stack_dir=STACK_DIR, domain="order.test",
        images=SimpleNamespace(order_service="orderops/order-service:1.0"), image_transport="archive",
    )
    return HostTarget(name=name, data={"ssh_hostname": "127.0.0.1", "ssh_port": 22}, settings=settings, groups=tuple(groups))


@pytest.fixture
def hosts():
    return [make_host("h1"), make_host("h2"), make_host("h3")]


@pytest.fixture
def fake():
    return FakeExecutor()


@pytest.fixture
def executors(fake):
    return {"remote": fake, "pyinfra": fake, "local": fake}
