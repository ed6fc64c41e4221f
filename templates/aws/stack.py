"""CloudFormation templates of the AWS layout, built as data from validated :class:`AwsSettings`.

A template is a JSON document, so it is built as a Python dict and serialised with ``json.dumps``
(one mechanism per file format: no text templating of a data format). Two stacks:

- ``edge`` (always ``us-east-1``, where CloudFront reads it): the WAF web ACL (managed rule groups +
  a rate-based rule).
- ``main`` (the settings' region): VPC over 2-3 AZs, public/private subnets, NAT, security groups,
  ALB (HTTPS only, health check ``/api/ready``), ECS cluster + Fargate API service with auto scaling
  on CPU and request count, a one-off migration task definition, RDS for PostgreSQL (Multi-AZ,
  encrypted, automated backups, force SSL), ElastiCache Redis (auth token, TLS), S3 buckets
  (attachments, static front end; public access blocked, SSE, versioning, lifecycle), CloudFront
  in front of S3 (origin access control) and the ALB (``/api/*``), log groups with retention,
  alarms to an SNS topic, least-privilege IAM roles, secrets in Secrets Manager referenced by the
  task definitions (never plain environment variables or template parameters).

The ACM certificates (the ALB's in the region, CloudFront's in us-east-1) are requested and
DNS-validated through the ACM and Route 53 APIs by ``deploys/aws/certificates.py`` and passed in as
parameters: a certificate outlives any stack that uses it, and is reused by name.

Resource types and properties follow the CloudFormation resource reference
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html);
``tests/unit/aws/test_template.py`` checks both templates whole with cfn-lint.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from deploys.contract.services import DB_NAME, DB_PORT, DB_USER, REDIS_PORT
from inventories.aws_settings import AwsSettings

__all__ = ["main_template", "edge_template", "to_json", "CONTAINER_PORT", "SECRET_ENV", "COMMANDS"]

#: Port the order service listens on inside its task (the image's uvicorn port).
CONTAINER_PORT = 8000

#: Service environment variable -> secret logical id (resolved by ECS from Secrets Manager).
SECRET_ENV = {
    "POSTGRES_PASSWORD": "DbSecret",
    "REDIS_PASSWORD": "CacheSecret",
    "SECRET_KEY": "AppSecretKey",
    "ADMIN_PASSWORD": "AdminSecret",
}

# AWS managed policies / managed rule groups referenced by name (AWS documentation).
_EXEC_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
_WAF_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                    "AWSManagedRulesAmazonIpReputationList")
# CloudFront managed cache/origin-request policies (IDs published by AWS).
_CACHE_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
_CACHE_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
_ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _att(name: str, attr: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attr]}


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _tags(settings: AwsSettings, name: str) -> list[dict[str, str]]:
    return [{"Key": "Name", "Value": f"{settings.name}-{name}"},
            {"Key": "orderops:environment", "Value": settings.name}]


def _subnets(settings: AwsSettings) -> tuple[list[str], list[str]]:
    """(public, private) CIDRs: the VPC block cut into 8 equal parts, public first."""
    net = ipaddress.ip_network(settings.vpc_cidr)
    parts = list(net.subnets(prefixlen_diff=3))
    n = settings.availability_zones
    return [str(p) for p in parts[:n]], [str(p) for p in parts[4:4 + n]]


def _network(settings: AwsSettings) -> dict[str, Any]:
    res: dict[str, Any] = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {
            "CidrBlock": settings.vpc_cidr, "EnableDnsHostnames": True, "EnableDnsSupport": True,
            "Tags": _tags(settings, "vpc")}},
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway",
                            "Properties": {"Tags": _tags(settings, "igw")}},
        "GatewayAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
            "VpcId": _ref("Vpc"), "InternetGatewayId": _ref("InternetGateway")}},
        "PublicRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {
            "VpcId": _ref("Vpc"), "Tags": _tags(settings, "public")}},
        "PublicDefaultRoute": {"Type": "AWS::EC2::Route", "DependsOn": "GatewayAttachment",
                               "Properties": {"RouteTableId": _ref("PublicRouteTable"),
                                              "DestinationCidrBlock": "0.0.0.0/0",
                                              "GatewayId": _ref("InternetGateway")}},
    }
    public, private = _subnets(settings)
    nats = settings.availability_zones if settings.nat_gateways == "per_az" else 1
    for i, (pub, priv) in enumerate(zip(public, private, strict=True)):
        az = {"Fn::Select": [i, {"Fn::GetAZs": ""}]}
        res[f"PublicSubnet{i}"] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": _ref("Vpc"), "CidrBlock": pub, "AvailabilityZone": az,
            "MapPublicIpOnLaunch": False, "Tags": _tags(settings, f"public-{i}")}}
        res[f"PrivateSubnet{i}"] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": _ref("Vpc"), "CidrBlock": priv, "AvailabilityZone": az,
            "MapPublicIpOnLaunch": False, "Tags": _tags(settings, f"private-{i}")}}
        res[f"PublicSubnet{i}Routes"] = {"Type": "AWS::EC2::SubnetRouteTableAssociation",
                                         "Properties": {"SubnetId": _ref(f"PublicSubnet{i}"),
                                                        "RouteTableId": _ref("PublicRouteTable")}}
        if i < nats:
            res[f"NatIp{i}"] = {"Type": "AWS::EC2::EIP", "DependsOn": "GatewayAttachment",
                                "Properties": {"Domain": "vpc", "Tags": _tags(settings, f"nat-{i}")}}
            res[f"Nat{i}"] = {"Type": "AWS::EC2::NatGateway", "Properties": {
                "AllocationId": _att(f"NatIp{i}", "AllocationId"), "SubnetId": _ref(f"PublicSubnet{i}"),
                "Tags": _tags(settings, f"nat-{i}")}}
        res[f"PrivateRouteTable{i}"] = {"Type": "AWS::EC2::RouteTable", "Properties": {
            "VpcId": _ref("Vpc"), "Tags": _tags(settings, f"private-{i}")}}
        res[f"PrivateDefaultRoute{i}"] = {"Type": "AWS::EC2::Route", "Properties": {
            "RouteTableId": _ref(f"PrivateRouteTable{i}"), "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": _ref(f"Nat{i if i < nats else 0}")}}
        res[f"PrivateSubnet{i}Routes"] = {"Type": "AWS::EC2::SubnetRouteTableAssociation",
                                          "Properties": {"SubnetId": _ref(f"PrivateSubnet{i}"),
                                                         "RouteTableId": _ref(f"PrivateRouteTable{i}")}}
    return res


def _security_groups(settings: AwsSettings) -> dict[str, Any]:
    def group(name: str, desc: str, ingress: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": desc, "VpcId": _ref("Vpc"), "SecurityGroupIngress": ingress,
            "Tags": _tags(settings, name)}}

    def from_group(port: int, source: str, desc: str) -> dict[str, Any]:
        return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "SourceSecurityGroupId": _ref(source), "Description": desc}

    return {
        "AlbSecurityGroup": group("alb", "ALB: HTTPS from anywhere, nothing else", [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
             "Description": "HTTPS"}]),
        "TaskSecurityGroup": group("tasks", "API tasks: only from the ALB", [
            from_group(CONTAINER_PORT, "AlbSecurityGroup", "ALB to the API")]),
        "DbSecurityGroup": group("db", "RDS: only from the API tasks", [
            from_group(DB_PORT, "TaskSecurityGroup", "API tasks to PostgreSQL")]),
        "CacheSecurityGroup": group("cache", "ElastiCache: only from the API tasks", [
            from_group(REDIS_PORT, "TaskSecurityGroup", "API tasks to Redis")]),
    }


def _secrets(settings: AwsSettings) -> dict[str, Any]:
    # The ElastiCache auth token allows printable ASCII except / " @ (ElastiCache AUTH docs);
    # the same exclusions keep every generated secret safe in a connection URL.
    def secret(name: str, desc: str, length: int = 40) -> dict[str, Any]:
        return {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "Name": f"{settings.name}/{name}", "Description": desc,
            "GenerateSecretString": {"PasswordLength": length, "ExcludeCharacters": "/\"@'\\`$ "}}}

    return {
        "DbSecret": secret("postgres-password", "RDS master password (the service's DB user)"),
        "CacheSecret": secret("redis-auth-token", "ElastiCache AUTH token"),
        "AppSecretKey": secret("secret-key", "JWT signing key of the order service", 64),
        "AdminSecret": secret("admin-password", "Password of the seeded admin user"),
    }


def _storage(settings: AwsSettings) -> dict[str, Any]:
    def bucket(name: str, noncurrent_days: int) -> dict[str, Any]:
        return {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True, "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                    "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {"Rules": [
                        {"Id": "noncurrent-versions", "Status": "Enabled",
                         "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days}},
                        {"Id": "incomplete-uploads", "Status": "Enabled",
                         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]},
                    "Tags": _tags(settings, name)}}

    return {
        "AttachmentsBucket": bucket("attachments", 90),
        "WebBucket": bucket("web", 30),
        "WebBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": _ref("WebBucket"),
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "CloudFrontReadsThroughOAC", "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": _sub("${WebBucket.Arn}/*"),
                "Condition": {"StringEquals": {"AWS:SourceArn": _sub(
                    "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}")}},
            }]}}},
    }


def _database(settings: AwsSettings) -> dict[str, Any]:
    db = settings.db
    private = [_ref(f"PrivateSubnet{i}") for i in range(settings.availability_zones)]
    major = db.engine_version.split(".")[0]
    return {
        "DbSubnetGroup": {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {
            "DBSubnetGroupDescription": "private subnets", "SubnetIds": private,
            "Tags": _tags(settings, "db")}},
        "DbParameterGroup": {"Type": "AWS::RDS::DBParameterGroup", "Properties": {
            "Description": "orderops PostgreSQL: TLS required",
            "Family": f"postgres{major}",
            "Parameters": {"rds.force_ssl": "1", "log_min_duration_statement": "500"},
            "Tags": _tags(settings, "db")}},
        "Database": {"Type": "AWS::RDS::DBInstance",
                     "DeletionPolicy": "Snapshot", "UpdateReplacePolicy": "Snapshot",
                     "Properties": {
                         "Engine": "postgres", "EngineVersion": db.engine_version,
                         "DBInstanceClass": db.instance_class,
                         "AllocatedStorage": str(db.allocated_storage),
                         "MaxAllocatedStorage": db.max_allocated_storage,
                         "StorageType": "gp3", "StorageEncrypted": True,
                         "MultiAZ": db.multi_az,
                         "BackupRetentionPeriod": db.backup_retention_days,
                         "DeletionProtection": True, "CopyTagsToSnapshot": True,
                         "PubliclyAccessible": False,
                         "DBName": DB_NAME, "MasterUsername": DB_USER,
                         "MasterUserPassword": _sub("{{resolve:secretsmanager:${DbSecret}}}"),
                         "DBSubnetGroupName": _ref("DbSubnetGroup"),
                         "DBParameterGroupName": _ref("DbParameterGroup"),
                         "VPCSecurityGroups": [_ref("DbSecurityGroup")],
                         "EnablePerformanceInsights": True,
                         "AutoMinorVersionUpgrade": True,
                         "Tags": _tags(settings, "db")}},
    }


def _cache(settings: AwsSettings) -> dict[str, Any]:
    cache = settings.cache
    private = [_ref(f"PrivateSubnet{i}") for i in range(settings.availability_zones)]
    failover = cache.replicas > 0
    return {
        "CacheSubnetGroup": {"Type": "AWS::ElastiCache::SubnetGroup", "Properties": {
            "Description": "private subnets", "SubnetIds": private}},
        "Cache": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
            "ReplicationGroupId": settings.cache_group_id,
            "ReplicationGroupDescription": f"{settings.name} Redis",
            "Engine": "redis", "EngineVersion": cache.engine_version,
            "CacheNodeType": cache.node_type, "NumCacheClusters": cache.replicas + 1,
            "AutomaticFailoverEnabled": failover, "MultiAZEnabled": failover,
            "TransitEncryptionEnabled": True, "AtRestEncryptionEnabled": True,
            "AuthToken": _sub("{{resolve:secretsmanager:${CacheSecret}}}"),
            "CacheSubnetGroupName": _ref("CacheSubnetGroup"),
            "SecurityGroupIds": [_ref("CacheSecurityGroup")],
            "Tags": _tags(settings, "cache")}},
    }


def _iam(settings: AwsSettings) -> dict[str, Any]:
    assume = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    return {
        # Pulls images, writes logs, reads exactly the stack's secrets (into the container env).
        "TaskExecutionRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": assume, "ManagedPolicyArns": [_EXEC_POLICY],
            "Policies": [{"PolicyName": "read-stack-secrets", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                    "Resource": [_ref(s) for s in SECRET_ENV.values()]}]}}]}},
        # What the service itself may do: its attachments bucket, nothing else.
        "TaskRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": assume,
            "Policies": [{"PolicyName": "attachments", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                     "Resource": _sub("${AttachmentsBucket.Arn}/*")},
                    {"Effect": "Allow", "Action": "s3:ListBucket",
                     "Resource": _att("AttachmentsBucket", "Arn")}]}}]}},
    }


_HEALTH_PROBE = ("import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
                 f"'http://127.0.0.1:{CONTAINER_PORT}/api/health', timeout=4).status == 200 else 1)")

#: Commands of the two task definitions: the API serves without migrating (the one-off ``migrate``
#: task of each release migrates once, before the new revision takes traffic).
COMMANDS = {"api": ["python", "-m", "order_service", "serve", "--skip-migrations"],
            "migrate": ["python", "-m", "order_service", "migrate"]}


def _container(settings: AwsSettings, name: str, command: list[str]) -> dict[str, Any]:
    env = {
        "ENVIRONMENT": "production", "WORKERS": str(settings.api.workers),
        "POSTGRES_HOST": _att("Database", "Endpoint.Address"), "POSTGRES_PORT": str(DB_PORT),
        "POSTGRES_USER": DB_USER, "POSTGRES_DB": DB_NAME, "POSTGRES_SSLMODE": "require",
        "REDIS_HOST": _att("Cache", "PrimaryEndPoint.Address"), "REDIS_PORT": str(REDIS_PORT), "REDIS_TLS": "true",
        "S3_BUCKET": _ref("AttachmentsBucket"), "S3_REGION": settings.region,
        "ADMIN_EMAIL": f"admin@{settings.domain}",
        "FORWARDED_ALLOW_IPS": settings.vpc_cidr,
    }
    spec: dict[str, Any] = {
        "Name": name, "Image": _ref("ImageUri"), "Essential": True,
        "Memory": settings.api.memory,  # hard limit = the task's size (one container per task)
        "Environment": [{"Name": k, "Value": v} for k, v in env.items()],
        "Secrets": [{"Name": k, "ValueFrom": _ref(v)} for k, v in SECRET_ENV.items()],
        "ReadonlyRootFilesystem": True, "User": "10001",
        "LinuxParameters": {"InitProcessEnabled": True, "Capabilities": {"Drop": ["ALL"]}},
        "LogConfiguration": {"LogDriver": "awslogs", "Options": {
            "awslogs-group": _ref("ApiLogGroup"), "awslogs-region": settings.region,
            "awslogs-stream-prefix": name}},
    }
    spec["Command"] = command
    if name == "api":
        spec["PortMappings"] = [{"ContainerPort": CONTAINER_PORT, "Protocol": "tcp"}]
        # The image's own HEALTHCHECK probe (order_service/Dockerfile), as ECS ignores the image's.
        spec["HealthCheck"] = {"Command": ["CMD", "python", "-c", _HEALTH_PROBE],
                               "Interval": 15, "Timeout": 5, "Retries": 3, "StartPeriod": 30}
    return spec


def _compute(settings: AwsSettings) -> dict[str, Any]:
    api = settings.api
    public = [_ref(f"PublicSubnet{i}") for i in range(settings.availability_zones)]
    private = [_ref(f"PrivateSubnet{i}") for i in range(settings.availability_zones)]

    def task(name: str) -> dict[str, Any]:
        return {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": f"{settings.name}-{name}", "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc", "Cpu": str(api.cpu), "Memory": str(api.memory),
            "ExecutionRoleArn": _att("TaskExecutionRole", "Arn"), "TaskRoleArn": _att("TaskRole", "Arn"),
            "RuntimePlatform": {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "X86_64"},
            "ContainerDefinitions": [_container(settings, name, COMMANDS[name])]}}

    res: dict[str, Any] = {
        "ApiLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": f"/{settings.name}/api", "RetentionInDays": settings.log_retention_days}},
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {
            "ClusterName": settings.cluster_name,
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}},
        "ApiTaskDefinition": task("api"),
        "MigrateTaskDefinition": task("migrate"),
        "LoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Type": "application", "Scheme": "internet-facing", "Subnets": public,
            "SecurityGroups": [_ref("AlbSecurityGroup")],
            "LoadBalancerAttributes": [
                {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
                {"Key": "idle_timeout.timeout_seconds", "Value": "60"}]}},
        "ApiTargetGroup": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "VpcId": _ref("Vpc"), "TargetType": "ip", "Protocol": "HTTP", "Port": CONTAINER_PORT,
            "HealthCheckPath": "/api/ready", "HealthCheckIntervalSeconds": 15,
            "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 3, "Matcher": {"HttpCode": "200"},
            "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]}},
        "HttpsListener": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": _ref("LoadBalancer"), "Port": 443, "Protocol": "HTTPS",
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "Certificates": [{"CertificateArn": _ref("AlbCertificateArn")}],
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": _ref("ApiTargetGroup")}]}},
        "ApiService": {"Type": "AWS::ECS::Service", "DependsOn": "HttpsListener", "Properties": {
            "ServiceName": settings.api_service_name, "Cluster": _ref("Cluster"),
            "LaunchType": "FARGATE", "DesiredCount": api.desired_count,
            "TaskDefinition": _ref("ApiTaskDefinition"),
            "DeploymentConfiguration": {
                "MinimumHealthyPercent": 100, "MaximumPercent": 200,
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}},
            "HealthCheckGracePeriodSeconds": 60,
            "NetworkConfiguration": {"AwsvpcConfiguration": {
                "AssignPublicIp": "DISABLED", "Subnets": private,
                "SecurityGroups": [_ref("TaskSecurityGroup")]}},
            "LoadBalancers": [{"ContainerName": "api", "ContainerPort": CONTAINER_PORT,
                               "TargetGroupArn": _ref("ApiTargetGroup")}]}},
        "ApiScalableTarget": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
            "ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": _sub("service/${Cluster}/${ApiService.Name}"),
            "MinCapacity": api.min_count, "MaxCapacity": api.max_count}},
        "ApiCpuScaling": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
            "PolicyName": "cpu", "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": _ref("ApiScalableTarget"),
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": api.target_cpu_percent,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}}},
        "ApiRequestScaling": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
            "PolicyName": "requests", "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": _ref("ApiScalableTarget"),
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": api.requests_per_target,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ALBRequestCountPerTarget",
                    "ResourceLabel": _sub("${LoadBalancer.LoadBalancerFullName}/"
                                          "${ApiTargetGroup.TargetGroupFullName}")}}}},
    }
    return res


def _edge_distribution(settings: AwsSettings) -> dict[str, Any]:
    return {
        "WebOriginAccessControl": {"Type": "AWS::CloudFront::OriginAccessControl", "Properties": {
            "OriginAccessControlConfig": {
                "Name": f"{settings.name}-web", "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always", "SigningProtocol": "sigv4"}}},
        "Distribution": {"Type": "AWS::CloudFront::Distribution", "Properties": {
            "DistributionConfig": {
                "Enabled": True, "Aliases": [settings.domain], "HttpVersion": "http2and3",
                "DefaultRootObject": "index.html", "PriceClass": "PriceClass_100",
                "WebACLId": _ref("WebAclArn"),
                "ViewerCertificate": {"AcmCertificateArn": _ref("EdgeCertificateArn"),
                                      "SslSupportMethod": "sni-only",
                                      "MinimumProtocolVersion": "TLSv1.2_2021"},
                "Origins": [
                    {"Id": "web", "DomainName": _att("WebBucket", "RegionalDomainName"),
                     "OriginAccessControlId": _att("WebOriginAccessControl", "Id"),
                     "S3OriginConfig": {"OriginAccessIdentity": ""}},
                    {"Id": "api", "DomainName": _att("LoadBalancer", "DNSName"),
                     "CustomOriginConfig": {"OriginProtocolPolicy": "https-only",
                                            "OriginSSLProtocols": ["TLSv1.2"]}}],
                "DefaultCacheBehavior": {"TargetOriginId": "web", "ViewerProtocolPolicy": "redirect-to-https",
                                         "CachePolicyId": _CACHE_OPTIMIZED, "Compress": True},
                "CacheBehaviors": [{"PathPattern": "/api/*", "TargetOriginId": "api",
                                    "ViewerProtocolPolicy": "https-only",
                                    "AllowedMethods": ["GET", "HEAD", "OPTIONS", "PUT", "PATCH",
                                                       "POST", "DELETE"],
                                    "CachePolicyId": _CACHE_DISABLED,
                                    "OriginRequestPolicyId": _ALL_VIEWER_EXCEPT_HOST}]}}},
        "DnsRecord": {"Type": "AWS::Route53::RecordSet", "Properties": {
            "HostedZoneId": settings.hosted_zone_id, "Name": settings.domain, "Type": "A",
            "AliasTarget": {"DNSName": _att("Distribution", "DomainName"),
                            # The fixed hosted zone of every CloudFront distribution (Route 53 docs).
                            "HostedZoneId": "Z2FDTNDATAQYW2"}}},
    }


def _alarms(settings: AwsSettings) -> dict[str, Any]:
    def alarm(name: str, namespace: str, metric: str, dims: list[dict[str, Any]], stat: str,
              op: str, threshold: float, desc: str, periods: int = 3) -> dict[str, Any]:
        return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmName": f"{settings.name}-{name}", "AlarmDescription": desc,
            "Namespace": namespace, "MetricName": metric, "Dimensions": dims, "Statistic": stat,
            "Period": 60, "EvaluationPeriods": periods, "Threshold": threshold,
            "ComparisonOperator": op, "TreatMissingData": "notBreaching",
            "AlarmActions": [_ref("AlarmTopic")], "OKActions": [_ref("AlarmTopic")]}}

    lb = [{"Name": "LoadBalancer", "Value": _att("LoadBalancer", "LoadBalancerFullName")}]
    svc = [{"Name": "ClusterName", "Value": _ref("Cluster")},
           {"Name": "ServiceName", "Value": _att("ApiService", "Name")}]
    db = [{"Name": "DBInstanceIdentifier", "Value": _ref("Database")}]
    res: dict[str, Any] = {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"{settings.name}-alarms"}},
        "Alarm5xx": alarm("api-5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", lb, "Sum",
                          "GreaterThanThreshold", 10, "API answers 5xx"),
        "AlarmLatency": alarm("api-latency", "AWS/ApplicationELB", "TargetResponseTime", lb, "Average",
                              "GreaterThanThreshold", 1.0, "API average latency above 1 s"),
        "AlarmApiCpu": alarm("api-cpu", "AWS/ECS", "CPUUtilization", svc, "Average",
                             "GreaterThanThreshold", 85, "API CPU high despite scaling"),
        "AlarmDbStorage": alarm("db-free-storage", "AWS/RDS", "FreeStorageSpace", db, "Minimum",
                                "LessThanThreshold", settings.db.allocated_storage * 0.1 * 1024**3,
                                "RDS free storage below 10 % of the allocation"),
        "AlarmDbCpu": alarm("db-cpu", "AWS/RDS", "CPUUtilization", db, "Average",
                            "GreaterThanThreshold", 80, "RDS CPU high"),
        "AlarmCacheMemory": alarm("cache-memory", "AWS/ElastiCache", "DatabaseMemoryUsagePercentage",
                                  [{"Name": "ReplicationGroupId", "Value": _ref("Cache")}], "Maximum",
                                  "GreaterThanThreshold", 85, "Redis memory near its limit"),
    }
    if settings.alarm_email:
        res["AlarmTopic"]["Properties"]["Subscription"] = [
            {"Protocol": "email", "Endpoint": settings.alarm_email}]
    return res


def main_template(settings: AwsSettings) -> dict[str, Any]:
    """The regional stack as a CloudFormation template dict.

    Parameters: ``ImageUri`` (the API image, set per release), ``AlbCertificateArn`` and
    ``EdgeCertificateArn`` (ACM, see the module docstring), ``WebAclArn`` (output of
    :func:`edge_template`'s stack). Outputs: cluster, service, task
    definition ARNs, ALB DNS name, distribution id/domain, buckets, database endpoint.
    """
    resources: dict[str, Any] = {}
    for part in (_network, _security_groups, _secrets, _storage, _database, _cache, _iam, _compute,
                 _edge_distribution, _alarms):
        resources.update(part(settings))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"orderops {settings.name}: order service on ECS Fargate, RDS, ElastiCache, S3",
        "Parameters": {
            "ImageUri": {"Type": "String", "Description": "order-service image (registry/repo:tag)"},
            "AlbCertificateArn": {"Type": "String", "Description": "regional ACM certificate for the ALB"},
            "EdgeCertificateArn": {"Type": "String", "Description": "us-east-1 ACM certificate for CloudFront"},
            "WebAclArn": {"Type": "String", "Description": "us-east-1 WAF web ACL for CloudFront"},
        },
        "Resources": resources,
        "Outputs": {
            "ClusterName": {"Value": _ref("Cluster")},
            "ApiServiceName": {"Value": _att("ApiService", "Name")},
            "ApiTaskDefinition": {"Value": _ref("ApiTaskDefinition")},
            "MigrateTaskDefinition": {"Value": _ref("MigrateTaskDefinition")},
            "PrivateSubnets": {"Value": {"Fn::Join": [",", [
                _ref(f"PrivateSubnet{i}") for i in range(settings.availability_zones)]]}},
            "TaskSecurityGroup": {"Value": _ref("TaskSecurityGroup")},
            "LoadBalancerDns": {"Value": _att("LoadBalancer", "DNSName")},
            "DistributionDomain": {"Value": _att("Distribution", "DomainName")},
            "AttachmentsBucket": {"Value": _ref("AttachmentsBucket")},
            "WebBucket": {"Value": _ref("WebBucket")},
            "DatabaseId": {"Value": _ref("Database")},
        },
    }


def edge_template(settings: AwsSettings) -> dict[str, Any]:
    """The us-east-1 stack: the WAF web ACL CloudFront uses (managed rule groups + a rate rule)."""
    managed = [
        {"Name": group, "Priority": i, "OverrideAction": {"None": {}},
         "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group}},
         "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                              "MetricName": group}}
        for i, group in enumerate(_WAF_RULE_GROUPS)]
    rate = {"Name": "rate-per-ip", "Priority": len(managed), "Action": {"Block": {}},
            "Statement": {"RateBasedStatement": {"Limit": settings.waf_rate_limit, "AggregateKeyType": "IP"}},
            "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                 "MetricName": "rate-per-ip"}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"orderops {settings.name}: CloudFront certificate and WAF (us-east-1)",
        "Resources": {
            "WebAcl": {"Type": "AWS::WAFv2::WebACL", "Properties": {
                "Name": f"{settings.name}-edge", "Scope": "CLOUDFRONT", "DefaultAction": {"Allow": {}},
                "Rules": [*managed, rate],
                "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                     "MetricName": f"{settings.name}-edge"}}},
        },
        "Outputs": {
            "WebAclArn": {"Value": _att("WebAcl", "Arn")},
        },
    }


def to_json(template: dict[str, Any]) -> str:
    """Serialise a template deterministically (sorted keys), so equal settings give equal bodies."""
    return json.dumps(template, indent=1, sort_keys=True)
