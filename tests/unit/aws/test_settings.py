"""The ``aws`` environment's settings: bad input is one error naming the field, before any AWS call."""

from __future__ import annotations

import pytest

from inventories.aws_settings import AwsSettings, load_aws_inventory, validate_aws
from inventories.schema import InventoryError

GOOD = {"name": "orders", "region": "eu-central-1", "domain": "orders.example.com",
        "hosted_zone_id": "Z0EXAMPLE12345", "version": "0.1.0"}


def test_example_inventory_validates():
    settings = load_aws_inventory("inventories/aws_example.py")
    assert isinstance(settings, AwsSettings)
    assert settings.endpoint_url is None  # the example talks to AWS itself
    assert settings.stack_name == "orders-main"


@pytest.mark.parametrize(("change", "field"), [
    ({"name": "Orders"}, "aws.name"),
    ({"region": "mars-1"}, "aws.region"),
    ({"region": "eu-moon-9"}, "aws.region"),  # the pattern's shape, but no such region
    ({"db": {"snapshot_copy_region": "us-moon-1"}}, "aws.db.snapshot_copy_region"),
    ({"endpoint_url": "https://cloudformation.eu-central-1.amazonaws.com"}, "aws.endpoint_url"),
    ({"endpoint_url": "http://10.0.0.5:5000"}, "aws.endpoint_url"),
    ({"endpoint_url": "http://user:s3cret-in-url@127.0.0.1:5000"}, "aws.endpoint_url"),
    ({"vpc_cidr": "10.0.0.0/8"}, "aws.vpc_cidr"),
    ({"api": {"cpu": 300}}, "aws.api.cpu"),
    ({"api": {"cpu": 256, "memory": 4096}}, "aws.api.memory"),
    ({"api": {"desired_count": 9, "max_count": 6}}, "aws.api.desired_count"),
    ({"db": {"allocated_storage": 100, "max_allocated_storage": 50}}, "aws.db.max_allocated_storage"),
    ({"db": {"backup_retention_days": 0}}, "aws.db.backup_retention_days"),
    ({"log_retention_days": 8}, "aws.log_retention_days"),
    ({"nat": "one"}, "aws.nat"),
])
def test_bad_value_names_the_field(change, field):
    with pytest.raises(InventoryError) as err:
        validate_aws({**GOOD, **change})
    assert err.value.field == field, str(err.value)
    assert str(err.value).startswith(f"inventory error: {field}: ")


def test_an_endpoint_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(InventoryError) as err:
        validate_aws({**GOOD, "endpoint_url": "http://user:s3cret-in-url@127.0.0.1:5000"})
    assert "s3cret-in-url" not in str(err.value) and "user or password" in str(err.value)


def test_the_local_inventory_never_falls_back_to_aws_itself(monkeypatch):
    import importlib

    import inventories.aws_local as local

    monkeypatch.setenv("ORDEROPS_AWS_ENDPOINT", "")
    assert importlib.reload(local).aws["endpoint_url"] == "http://127.0.0.1:5000"
    monkeypatch.delenv("ORDEROPS_AWS_ENDPOINT")
    importlib.reload(local)


def test_missing_aws_dict(tmp_path):
    inv = tmp_path / "inv.py"
    inv.write_text("app = []\n")
    with pytest.raises(InventoryError, match="defines no 'aws' settings dict"):
        load_aws_inventory(inv)


def test_loopback_endpoint_accepted():
    assert validate_aws({**GOOD, "endpoint_url": "http://127.0.0.1:5000"}).endpoint_url


def test_known_regions_are_accepted():
    for region in ("eu-central-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"):
        assert validate_aws({**GOOD, "region": region}).region == region
