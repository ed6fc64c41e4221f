"""AWS inventory of the local test endpoint (moto's server, started by the tests).

``ORDEROPS_AWS_ENDPOINT`` is the server's loopback URL and ``ORDEROPS_AWS_REGISTRY`` the local
registry stand-in (Debian's ``docker-registry``) images are pushed to, ``ORDEROPS_AWS_ZONE`` the Route 53
zone the tests create first, since moto serves the ECR API
but not the registry protocol. The settings validator refuses any endpoint that is not loopback.
"""

import os as _os

aws = {
    "name": "orderops-t",
    "region": "eu-west-1",
    # never None: an empty ORDEROPS_AWS_ENDPOINT must not turn this inventory into one for AWS itself
    "endpoint_url": _os.environ.get("ORDEROPS_AWS_ENDPOINT") or "http://127.0.0.1:5000",
    "registry_url": _os.environ.get("ORDEROPS_AWS_REGISTRY") or None,
    "domain": "orders.example.com",
    # The tests create the zone in moto first (its id is random) and export it here.
    "hosted_zone_id": _os.environ.get("ORDEROPS_AWS_ZONE", "Z0EXAMPLE12345"),
    "version": _os.environ.get("ORDEROPS_AWS_VERSION", "0.1.0"),
    "poll_seconds": 0.2,  # test speed: moto answers at once
    # No ALB exists locally: the tests serve /api/ready on loopback (a stand-in) and export its URL.
    "ready_url": _os.environ.get("ORDEROPS_AWS_READY_URL") or None,
    "api": {"cpu": 256, "memory": 512, "desired_count": 1, "min_count": 1, "max_count": 2},
    "db": {"instance_class": "db.t4g.micro", "allocated_storage": 20, "max_allocated_storage": 20,
           "multi_az": False, "backup_retention_days": 1, "manual_snapshots_keep": 2},
    "cache": {"replicas": 0},
}
