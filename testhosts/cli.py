"""``python -m testhosts``: build the images, start/stop/inspect the local test hosts.

    python -m testhosts images [--skip-service] [--json]
    python -m testhosts up -n 3 [--layout single|split|monitoring]
    python -m testhosts status [--check]
    python -m testhosts down
    python -m testhosts secrets
    python -m testhosts fingerprint [--reset]

State dir: ``.orderops/`` (``ORDEROPS_STATE_DIR``); see :mod:`testhosts.state`.
"""

from __future__ import annotations

import json
import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from . import fingerprint as fp
from .hosts import LAYOUTS, Hosts, HostsError, plan_hosts
from .images import Builder, BuildError, BuildResult, MissingServiceError
from .secrets import ensure_backup_key, ensure_local_secrets
from .state import StateError, StatePaths, ensure_ssh_key, load_images, save_images

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="orderops local test hosts: images without a registry, N systemd+sshd hosts.")
# wide enough for image refs when the output is not a terminal (logs, CI)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
out = Console(width=None if sys.stdout.isatty() else 140)


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.0f} MB"


def _results_table(results: list[BuildResult], total: float) -> Table:
    t = Table(title=f"images ({total:.1f} s)")
    for col in ("step", "action", "seconds", "size", "ref"):
        t.add_column(col, justify="right" if col in ("seconds", "size") else "left")
    for r in results:
        t.add_row(r.name, r.action, f"{r.seconds:.1f}", _size(r.size), r.ref)
    return t


def _fail(exc: Exception, code: int = 1) -> None:
    err.print(f"[red]error:[/] {exc}")
    raise typer.Exit(code)


@app.command()
def images(
    skip_service: bool = typer.Option(False, "--skip-service",
                                      help="do not build the order-service image (images.json gets null)"),
    as_json: bool = typer.Option(False, "--json", help="print the per-step results as JSON on stdout"),
) -> None:
    """Build (or find) every image, fetch the compose .deb, write images.json."""
    paths = StatePaths.from_env()
    builder = Builder(paths, err)
    started = time.monotonic()
    code = 0
    try:
        with builder.lock():
            builder.build_all(skip_service=skip_service)
    except MissingServiceError as exc:
        err.print(f"[red]error:[/] {exc}")
        code = 2
    except (BuildError, StateError, RuntimeError) as exc:
        _fail(exc)
    total = time.monotonic() - started
    if as_json:
        out.print_json(json.dumps({"seconds": round(total, 1), "results": [r.as_dict() for r in builder.results],
                                   "images_json": str(paths.images_json)}))
    else:
        err.print(_results_table(builder.results, total))
        err.print(f"wrote {paths.images_json}")
    raise typer.Exit(code)


@app.command()
def up(
    n: int = typer.Option(1, "-n", "--hosts", min=1, help="number of hosts"),
    layout: str = typer.Option("single", "--layout", help=f"group layout: {' | '.join(LAYOUTS)}"),
    prefix: str = typer.Option("orderops", "--prefix", envvar="ORDEROPS_HOST_PREFIX",
                               help="host/container name prefix (hosts are <prefix>-1..N)"),
    port_offset: int = typer.Option(0, "--port-offset", envvar="ORDEROPS_PORT_OFFSET",
                                    help="added to every port (ssh 2200+i, http 8080+i, https 8440+i)"),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for ssh + systemd per host"),
) -> None:
    """Start N fresh test hosts (removing earlier ones of this state dir) and write hosts.json."""
    paths = StatePaths.from_env()
    started = time.monotonic()
    try:
        plan_hosts(n, layout, prefix, port_offset)  # validate before building anything
        ensure_ssh_key(paths)
        ensure_local_secrets(paths)
        ensure_backup_key(paths)
        builder = Builder(paths, err)
        with builder.lock():
            image = builder.ensure_target()
            deb = builder.ensure_compose_deb()
        if paths.images_json.exists():  # keep images.json's target in step with the running hosts
            try:
                current = load_images(paths)
                if current.target != image:
                    save_images(paths, current.model_copy(update={"target": image}))
            except StateError:
                pass
        hosts = Hosts(paths, err, builder.client)
        hosts.up(n, layout, image, deb, prefix=prefix, port_offset=port_offset, timeout=timeout)
    except (HostsError, BuildError, StateError, fp.CgroupChanged) as exc:
        _fail(exc)
    err.print(hosts.status_table())
    err.print(f"wrote {paths.hosts_json} in {time.monotonic() - started:.1f} s")


@app.command()
def down() -> None:
    """Remove this state dir's test hosts and their docker volumes; delete hosts.json."""
    paths = StatePaths.from_env()
    try:
        removed = Hosts(paths, err).down()
    except (HostsError, BuildError, fp.CgroupChanged) as exc:
        _fail(exc)
    err.print(f"removed: {', '.join(removed) if removed else 'nothing'}")


@app.command()
def status(check: bool = typer.Option(False, "--check", help="ask each host's systemd over SSH")) -> None:
    """Show the test hosts of this state dir."""
    paths = StatePaths.from_env()
    try:
        out.print(Hosts(paths, err).status_table(check=check))
    except (StateError, BuildError) as exc:
        _fail(exc)


@app.command()
def prune(dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be removed")) -> None:
    """Remove harness images that images.json and the containers no longer use (old content tags)."""
    paths = StatePaths.from_env()
    try:
        keep = {v for v in load_images(paths).model_dump().values() if v}
    except StateError as exc:
        _fail(exc)
    builder = Builder(paths, err)
    removed = builder.prune(keep, dry_run=dry_run)  # the base stays: it is the target's parent
    verb = "would remove" if dry_run else "removed"
    err.print(f"{verb}: {', '.join(removed) if removed else 'nothing'}")


@app.command()
def secrets() -> None:
    """Generate the local secrets file if missing (values are never printed)."""
    out.print(str(ensure_local_secrets(StatePaths.from_env())))


@app.command()
def fingerprint(reset: bool = typer.Option(False, "--reset", help="save the current state as the baseline")) -> None:
    """Show the host's cgroup fingerprint and its difference to the saved baseline."""
    paths = StatePaths.from_env()
    current = fp.take()
    if reset:
        fp.save(paths.fingerprint_json, current)
        err.print(f"baseline saved: {paths.fingerprint_json} ({current.digest})")
        return
    baseline = fp.load(paths.fingerprint_json)
    out.print(f"current {current.digest}: {len(current.mounts)} mounts, {len(current.listing)} entries")
    if baseline is None:
        out.print("no baseline yet (the first `up` saves one)")
        return
    changes = fp.diff(baseline, current)
    out.print(f"baseline {baseline.digest}: " + ("no change" if not changes else "CHANGED"))
    for line in changes:
        out.print(f"  {line}")
    if changes:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
