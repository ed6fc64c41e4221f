"""The AWS layout, driven by boto3: CloudFormation change sets, ECS releases, the environment lock.

Arrows: ``deploys.aws`` reads ``inventories.aws_settings``, ``templates.aws`` and ``deploys.backup_tool``
(the restore of ``import_backup``); runbooks read it.

    session.py     boto3 clients for one environment (local-endpoint guard, one error mapping)
    errors.py      AwsError hierarchy
    stack.py       plan / apply a stack through a change set, events on failure
    lock.py        the environment lock (a DynamoDB item written with a condition; deploys/contract/aws_lock.py)
    release.py     image push, migration task, task definition revision, service update, rollback
    destroy.py     final snapshot, then the stacks deleted (buckets, ECR, snapshots kept)
    import_backup.py  a single-host backup (orderops-backup) restored into RDS with the backup tooling
    cli.py         ``orderops-aws plan|apply|release|rollback|status|destroy|import-backup``
"""
