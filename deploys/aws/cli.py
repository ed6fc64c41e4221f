"""``orderops-aws``: plan, apply, release, roll back and inspect an AWS environment.

    orderops-aws -i inventories/aws_example.py plan
    orderops-aws -i INVENTORY apply [--yes]
    orderops-aws -i INVENTORY release VERSION --image LOCAL_IMAGE [--yes]
    orderops-aws -i INVENTORY rollback [--yes]
    orderops-aws -i INVENTORY status
    orderops-aws -i INVENTORY unlock --yes      # break the environment lock of a run that is gone
    orderops-aws -i INVENTORY destroy --yes     # final DB snapshot first; buckets, ECR, snapshots kept
    orderops-aws -i INVENTORY import-backup BACKUP --identity KEY [--database NAME] [--via HOST:PORT]
                 [--pg-bin DIR] [--json] (--check | --yes)  # a single-host backup into RDS (deploys/aws/import_backup.py)

``-i`` may also follow the command (``orderops-aws plan -i FILE``).

Exit status: 0 done (or nothing to do), 1 a step failed (message on stderr, stack events included),
2 bad input (inventory or arguments; nothing was called), 3 not approved, 130 interrupted (Ctrl-C).
Without ``--yes`` a change is applied only after a ``y`` on an interactive terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from deploys.aws.errors import NotApproved, one_line
from deploys.aws.session import AwsSession
from inventories.aws_settings import load_aws_inventory
from inventories.schema import InventoryError

__all__ = ["main"]


def _approver(yes: bool):
    def approve(text: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            print("orderops-aws: not a terminal and no --yes (pass --yes to approve)", file=sys.stderr)
            return False
        return input("apply these changes? [y/N] ").strip().lower() == "y"
    return approve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orderops-aws", description=__doc__.splitlines()[0])
    p.add_argument("-i", "--inventory", help="AWS inventory file (defines `aws`); before or after the command")
    # The same option after the command (``orderops-aws plan -i FILE``); SUPPRESS keeps the first one's value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-i", "--inventory", default=argparse.SUPPRESS, help="AWS inventory file")
    sub = p.add_subparsers(dest="command", required=True)

    def add_parser(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    add_parser("plan", help="show what apply would change (change sets), change nothing")
    a = add_parser("apply", help="create/update certificates and stacks through change sets")
    a.add_argument("--yes", action="store_true", help="apply without asking")
    r = add_parser("release", help="push an image, migrate, update the service, verify")
    r.add_argument("version")
    r.add_argument("--image", required=True, help="local image to push (e.g. orderops/order-service:dev)")
    r.add_argument("--yes", action="store_true")
    b = add_parser("rollback", help="put the previous recorded release back in service")
    b.add_argument("--yes", action="store_true")
    add_parser("status", help="recorded release and service state")
    u = add_parser("unlock", help="break the environment lock of a run that is gone (needs --yes)")
    u.add_argument("--yes", action="store_true", help="required: the lock is deleted whoever holds it")
    d = add_parser("destroy", help="delete the stacks after a final database snapshot (needs --yes)")
    d.add_argument("--yes", action="store_true", help="required: there is no prompt for this")
    m = add_parser("import-backup", help="restore a single-host backup (orderops-backup) into the RDS database")
    m.add_argument("backup", help="backup directory <id>/ with manifest.json, or a directory of backups (newest valid)")
    m.add_argument("--identity", required=True, help="age private key file on this machine (streamed, never written)")
    m.add_argument("--database", help="import into this fresh database instead of the app's (must not exist)")
    m.add_argument("--via", help="HOST:PORT to connect to instead of the endpoint (a tunnel's local end)")
    m.add_argument("--pg-bin", help="directory of pg_restore/psql (default: PATH)")
    m.add_argument("--json", action="store_true", help="print the report as JSON")
    mode = m.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify and say what it would do; write nothing")
    mode.add_argument("--yes", action="store_true", help="write without asking")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status documented in the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.inventory:
        parser.error("the following arguments are required: -i/--inventory")
    try:
        settings = load_aws_inventory(args.inventory)
    except (InventoryError, FileNotFoundError) as exc:
        print(f"orderops: {exc}", file=sys.stderr)
        return 2
    if args.command == "import-backup":
        return _import_backup(AwsSession(settings), args)
    aws = AwsSession(settings)
    from deploys.aws import environment, release

    verify = release.https_ready(settings.readiness_url)
    try:
        if args.command == "plan":
            print(environment.plan_environment(aws).render())
        elif args.command == "apply":
            environment.apply_environment(aws, _approver(args.yes))
        elif args.command == "release":
            if not _approver(args.yes)(f"release {args.version}"):
                return 3
            pusher = release.DockerPusher(None if settings.registry_url else release.ecr_login(aws))
            release.release(aws, args.version, args.image, pusher, verify)
        elif args.command == "rollback":
            if not _approver(args.yes)("rollback"):
                return 3
            release.rollback(aws, verify)
        elif args.command == "destroy":
            if not args.yes:
                print("orderops-aws: destroy needs --yes (a final snapshot is kept)", file=sys.stderr)
                return 3
            from deploys.aws.destroy import destroy_environment

            snapshot = destroy_environment(aws)
            print(f"destroyed {settings.name}; final snapshot: {snapshot or 'none (no main stack)'}")
        elif args.command == "unlock":
            if not args.yes:
                print("orderops-aws: unlock needs --yes (only when the holder's run is gone)", file=sys.stderr)
                return 3
            from deploys.aws.lock import break_lock

            holder = break_lock(aws)
            print(f"unlocked {settings.name}; removed holder: {holder}" if holder
                  else f"{settings.name} was not locked")
        elif args.command == "status":
            record = release.read_record(aws)
            print(f"recorded release: {record.version} ({record.task_definition})" if record
                  else "recorded release: none")
    except NotApproved as exc:
        print(f"orderops-aws: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # the lock was released and pending change sets deleted on the way out
        print("orderops-aws: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one mapping point: known failures are one line, a bug keeps its traceback
        message = one_line(exc, settings.endpoint_url)
        if message is None:
            raise
        print(f"orderops-aws: {message}", file=sys.stderr)
        return 1
    return 0


def _import_backup(aws: AwsSession, args: argparse.Namespace) -> int:
    from deploys.aws.import_backup import NotApproved, import_backup, params_from

    try:
        params = params_from(backup=args.backup, identity=args.identity, database=args.database, via=args.via,
                             pg_bin=args.pg_bin)
    except ValueError as exc:
        print(f"orderops-aws: import-backup: {exc}", file=sys.stderr)
        return 2
    log = (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        report = import_backup(aws, params, check=args.check, approve=_approver(args.yes), log=log)
    except NotApproved as exc:
        print(f"orderops-aws: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - mapped as in main()
        message = one_line(exc, aws.settings.endpoint_url)
        if message is None:
            raise
        print(f"orderops-aws: import-backup: {message}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), sort_keys=True) if args.json else report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
