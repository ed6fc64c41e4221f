"""Worked example of an AWS inventory (the ``aws`` environment): copy it, then replace the placeholders.

No SSH hosts: the settings describe one CloudFormation-managed environment (VPC, ALB, ECS Fargate,
RDS for PostgreSQL, ElastiCache for Redis, S3, CloudFront + WAF). Credentials come from the standard
boto3 chain (profile, environment, instance role); secrets are generated in AWS Secrets Manager by the
stack, never written here.

    orderops-aws -i inventories/aws_example.py plan
"""

aws = {
    "name": "orders",
    "region": "eu-central-1",
    "domain": "orders.example.com",
    "hosted_zone_id": "Z0EXAMPLE12345",
    "version": "0.1.0",
    "availability_zones": 2,
    "nat_gateways": "one",
    "log_retention_days": 30,
    "alarm_email": "ops@example.com",
    "api": {"cpu": 512, "memory": 1024, "desired_count": 2, "min_count": 2, "max_count": 6},
    "db": {"instance_class": "db.t4g.medium", "allocated_storage": 50, "multi_az": True},
    "cache": {"node_type": "cache.t4g.small", "replicas": 1},
}
