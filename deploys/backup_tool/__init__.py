"""``orderops_backup``: the backup program that runs on the database host.

This package is uploaded as is by ``deploys/roles/backups.py`` to
``/opt/orderops-backup/lib/orderops_backup/`` and run by ``orderops-backup.service`` (started by
``orderops-backup.timer``, or ``orderops-backup now``). It uses the standard library only, plus
``boto3`` (Debian's ``python3-boto3``) for the offsite copy, and the host tools ``age`` and
``zstd``; PostgreSQL's client tools run inside the database container, so the client version is
the server's. Python 3.10+ (Ubuntu 22.04's is the oldest supported).

=================  ============================================================
module             holds
=================  ============================================================
``config``         the JSON configuration the role writes (schema in its docstring)
``manifest``       the per-backup manifest (documented schema) and the validity states
``retention``      which backups to keep (7 daily / 4 weekly / 6 monthly), pure
``pipeline``       the dump -> check -> compress -> encrypt -> file pipe
``database``       commands run next to PostgreSQL (snapshot session, counts)
``offsite``        the S3 copy (boto3): upload, verify, retention, aborting uploads
``metrics``        node-exporter textfile metrics
``restore``        decrypt + restore into a fresh database, swap, scratch restores
``cli``            ``python3 -m orderops_backup {run,now,list,verify,prune,...}``
=================  ============================================================
"""
