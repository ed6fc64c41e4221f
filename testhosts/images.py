"""Local images, built from Debian's archive on this machine; nothing is pulled from a registry.

Chain (each step is skipped when its result already exists)::

    debootstrap --variant=minbase bookworm  -> cache/rootfs-bookworm
    docker import                           -> orderops-local/debian:bookworm
    images/base     (squashed, full sources, extra CA switch)   -> orderops-local/base:bookworm-<h>
    images/target   (systemd + sshd + deploy user + harness key) -> orderops-local/target:bookworm-<h>
    images/postgres, images/redis, images/nginx (official-image contracts)
                                            -> orderops-local/{postgres:15,redis:7,nginx:1.22}-<h>
    images/python   (order service BASE_IMAGE, no extra CA)      -> orderops-local/python:3.11-<h>
    order_service/Dockerfile + wheelhouse   -> orderops/order-service:<version>-<h>
    trixie docker-compose .deb              -> cache/debs/ (separate apt lists)

``<h>`` is the first 12 hex digits of a sha256 over the staged build context, the build args and the
parent image ID (:mod:`testhosts.hashing`). A tag that exists is never rebuilt, so tags are
immutable and a second run with nothing changed only hashes the contexts (seconds). All builds use
the legacy builder (``DOCKER_BUILDKIT=0``): this Engine (20.10) has no buildx.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound
from rich.console import Console

from . import apt, hashing
from .state import REPO_ROOT, SUITE, ImagesState, StatePaths, ensure_ssh_key, save_images

IMAGES_DIR = REPO_ROOT / "images"
SERVICE_DIR = REPO_ROOT / "order_service"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")

ROOTFS_REF = f"orderops-local/debian:{SUITE}"
# role -> (repository, tag prefix); the tag is "<prefix>-<hash12>"
LOCAL_IMAGES = {
    "base": ("orderops-local/base", SUITE),
    "target": ("orderops-local/target", SUITE),
    "postgres": ("orderops-local/postgres", "15"),
    "redis": ("orderops-local/redis", "7"),
    "nginx": ("orderops-local/nginx", "1.22"),
    "python": ("orderops-local/python", "3.11"),
    # monitoring (deploys/roles/monitoring.py): real programs from Debian packages ...
    "monitoring-prometheus": ("orderops-local/prometheus", "2.42"),
    "monitoring-alertmanager": ("orderops-local/alertmanager", "0.25"),
    "monitoring-exporters": ("orderops-local/exporters", SUITE),
    # ... and stand-ins where no package is reachable (images/monitoring-standins/README.md)
    "monitoring-grafana": ("orderops-local/grafana-standin", "11"),
    "monitoring-loki": ("orderops-local/loki-standin", "3"),
    "monitoring-alloy": ("orderops-local/alloy-standin", "1"),
    "monitoring-cadvisor": ("orderops-local/cadvisor-standin", "0.49"),
    # test-only: the live monitoring test's webhook receiver + SMTP sink (images/alert-sink)
    "alert-sink": ("orderops-local/alert-sink", SUITE),
    # test-only helper containers the tests start next to the hosts
    "pebble": ("orderops-local/pebble", "2.4"),
}
#: monitoring image role (inventory ``monitoring_images`` key) -> LOCAL_IMAGES name
MONITORING_IMAGES = {
    "prometheus": "monitoring-prometheus",
    "alertmanager": "monitoring-alertmanager",
    "node_exporter": "monitoring-exporters",
    "postgres_exporter": "monitoring-exporters",
    "redis_exporter": "monitoring-exporters",
    "nginx_exporter": "monitoring-exporters",
    "blackbox_exporter": "monitoring-exporters",
    "grafana": "monitoring-grafana",
    "loki": "monitoring-loki",
    "alloy": "monitoring-alloy",
    "cadvisor": "monitoring-cadvisor",
}
STANDINS_DIR = IMAGES_DIR / "monitoring-standins"
SERVICE_REPO = "orderops/order-service"
# `web` is the front end (order_service/web, node_modules included): shipped as its own artifact
# (tools/build_web.py), never part of the API image or its hash.
SERVICE_EXCLUDE = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "web")


class BuildError(RuntimeError):
    pass


class MissingServiceError(BuildError):
    """order_service/Dockerfile or requirements.txt does not exist (yet)."""


@dataclass
class BuildResult:
    name: str
    ref: str
    action: str  # built | cached | imported | downloaded
    seconds: float
    size: int | None = None  # bytes (image size, or file size for the .deb)

    def as_dict(self) -> dict:
        return asdict(self)


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any connection problem gets the same advice
        raise BuildError(f"cannot reach the Docker daemon ({exc}); is dockerd running?") from exc


def image_tag(prefix: str, digest: str) -> str:
    return f"{prefix}-{hashing.short(digest)}"


def extra_ca_enabled(environ: dict[str, str] | None = None, ca_dir: Path = HOST_CA_DIR) -> bool:
    """The extra-CA switch: ``ORDEROPS_EXTRA_CA`` = auto (default: on iff the host has certs) | 1 | 0."""
    env = os.environ if environ is None else environ
    value = env.get("ORDEROPS_EXTRA_CA", "auto").strip().lower()
    if value in {"0", "off", "no", "false"}:
        return False
    has_certs = any(ca_dir.glob("*.crt")) if ca_dir.is_dir() else False
    if value in {"1", "on", "yes", "true"} and not has_certs:
        raise BuildError(f"ORDEROPS_EXTRA_CA is on but {ca_dir} has no *.crt files")
    return has_certs


def service_version(init_py: Path) -> str:
    """``__version__`` of order_service/__init__.py, read without importing the package."""
    tree = ast.parse(init_py.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", value):
                return value
            raise BuildError(f"__version__ in {init_py} is not a valid tag part: {value!r}")
    raise BuildError(f"{init_py} defines no __version__")


def _copy_tree(src: Path, dst: Path, exclude: tuple[str, ...] = ()) -> None:
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(*exclude, "*.pyc"))


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.name.startswith("."):
            continue
        try:
            os.link(f, dst / f.name)
        except OSError:
            shutil.copy2(f, dst / f.name)


class Builder:
    """Builds (or finds) the harness images. One instance per CLI run."""

    def __init__(self, paths: StatePaths, console: Console | None = None,
                 client: docker.DockerClient | None = None) -> None:
        self.paths = paths
        self.console = console or Console(stderr=True)
        self._client = client
        self._mirrors: apt.Mirrors | None = None
        self.results: list[BuildResult] = []
        self._refs: dict[str, str] = {}

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock on the cache: two harness runs (e.g. two state dirs sharing one cache)
        never stage or build at the same time."""
        self.paths.cache.mkdir(parents=True, exist_ok=True)
        with open(self.paths.cache / ".build.lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with self.console.status("waiting for another harness build to finish ..."):
                    fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def mirrors(self) -> apt.Mirrors:
        if self._mirrors is None:
            self._mirrors = apt.debian_mirrors()
        return self._mirrors

    def image_id(self, ref: str) -> str | None:
        try:
            return self.client.images.get(ref).id
        except ImageNotFound:
            return None

    def image_size(self, ref: str) -> int | None:
        try:
            return int(self.client.images.get(ref).attrs.get("Size") or 0)
        except ImageNotFound:
            return None

    def _record(self, name: str, ref: str, action: str, started: float, size: int | None = None) -> BuildResult:
        if size is None and action != "downloaded":
            size = self.image_size(ref)
        res = BuildResult(name, ref, action, round(time.monotonic() - started, 1), size)
        self.results.append(res)
        self._refs[name] = ref
        style = "dim" if action == "cached" else "green"
        self.console.print(f"  {name:<14} [{style}]{action:<10}[/] {ref}  ({res.seconds:.1f} s)", highlight=False)
        return res

    def _run_logged(self, cmd: list[str], log_name: str, status: str, *, env: dict | None = None,
                    cwd: Path | None = None, stdin=None, progress: Callable[[str], str | None] | None = None) -> None:
        """Run a command, streaming its output into cache/logs/<log_name>.log; on failure show the tail."""
        self.paths.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.paths.logs_dir / f"{log_name}.log"
        tail: list[str] = []
        with open(log_path, "w") as log, self.console.status(status) as spinner:
            log.write(f"$ {' '.join(cmd)}\n")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=stdin,
                                    env=env, cwd=cwd, text=True, errors="replace", bufsize=1)
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip("\n"))
                del tail[:-40]
                if progress and (msg := progress(line)):
                    spinner.update(f"{status} {msg}")
            rc = proc.wait()
        if rc != 0:
            raise BuildError(f"{status.strip('. ')} failed (rc {rc}); log: {log_path}\n" + "\n".join(tail))

    def docker_build(self, name: str, ref: str, context: Path, digest: str,
                     build_args: dict[str, str], dockerfile: str | None = None) -> None:
        cmd = ["docker", "build", "--force-rm",
               "--label", f"orderops.image={name}", "--label", f"orderops.context-hash={digest}"]
        for k, v in build_args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        if dockerfile:
            cmd += ["-f", str(context / dockerfile)]
        cmd += ["-t", ref, str(context)]
        env = dict(os.environ, DOCKER_BUILDKIT="0")

        def progress(line: str) -> str | None:
            m = re.match(r"Step (\d+/\d+) : (.{0,60})", line)
            return f"[dim]step {m.group(1)}: {m.group(2)}[/]" if m else None

        self._run_logged(cmd, name, f"building {name} ...", env=env, progress=progress)

    def _stage(self, name: str, src: Path) -> Path:
        stage = self.paths.contexts_dir / name
        if stage.exists():
            shutil.rmtree(stage)
        stage.parent.mkdir(parents=True, exist_ok=True)
        _copy_tree(src, stage)
        return stage

    def _ensure_local(self, name: str, build_args: dict[str, str], parent_ref: str,
                      add_files: Callable[[Path], None] | None = None) -> str:
        """Stage images/<name>/, hash it with the parent image ID, build unless the tag exists."""
        started = time.monotonic()
        repo, prefix = LOCAL_IMAGES[name]
        parent_id = self.image_id(parent_ref)
        if parent_id is None:
            raise BuildError(f"parent image {parent_ref} of {name} is missing")
        stage = self._stage(name, IMAGES_DIR / name)
        if add_files:
            add_files(stage)
        digest = hashing.hash_tree(stage, extra={
            "name": name, "parent_id": parent_id,
            "build_args": json.dumps(build_args, sort_keys=True),
            "salt": os.environ.get("ORDEROPS_IMAGE_SALT", ""),
        })
        ref = f"{repo}:{image_tag(prefix, digest)}"
        if self.image_id(ref):
            return self._record(name, ref, "cached", started).ref
        self.docker_build(name, ref, stage, digest, build_args)
        return self._record(name, ref, "built", started).ref

    # ------------------------------------------------------------------ steps
    def ensure_rootfs_image(self) -> str:
        started = time.monotonic()
        if self.image_id(ROOTFS_REF):
            return self._record("debian", ROOTFS_REF, "cached", started).ref
        rootfs = self.paths.rootfs_dir(SUITE)
        marker = rootfs / ".orderops-complete"
        if not marker.exists():
            if shutil.which("debootstrap") is None:
                raise BuildError("debootstrap is not installed (apt-get install debootstrap)")
            if os.geteuid() != 0:
                raise BuildError("debootstrap needs root; run the harness as root")
            tmp = rootfs.with_name(rootfs.name + ".tmp")
            for d in (tmp, rootfs):
                if d.exists():
                    shutil.rmtree(d)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            self._run_logged(
                ["debootstrap", "--variant=minbase", SUITE, str(tmp), self.mirrors.archive],
                "debootstrap", f"debootstrap {SUITE} from {self.mirrors.archive} ...",
                progress=lambda line: f"[dim]{line.strip()[:70]}[/]" if line.startswith("I:") else None,
            )
            # the squashed base fetches fresh lists anyway: drop downloaded .debs and lists
            for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"):
                for f in tmp.glob(pattern):
                    f.unlink()
            (tmp / ".orderops-complete").unlink(missing_ok=True)
            tmp.rename(rootfs)
            marker.write_text(f"debootstrap --variant=minbase {SUITE} {self.mirrors.archive}\n")
        tar = subprocess.Popen(["tar", "--numeric-owner", "--exclude=./.orderops-complete",
                                "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            self._run_logged(["docker", "import", "-c", "LABEL orderops.image=debian", "-", ROOTFS_REF],
                             "import", f"docker import {ROOTFS_REF} ...", stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            if tar.wait() != 0:
                raise BuildError(f"tar of {rootfs} failed")
        return self._record("debian", ROOTFS_REF, "imported", started).ref

    def ensure_base(self) -> str:
        if "base" in self._refs:
            return self._refs["base"]
        rootfs_ref = self.ensure_rootfs_image()
        with_ca = extra_ca_enabled()

        def add_ca(stage: Path) -> None:
            ca = stage / "extra-ca"
            ca.mkdir(exist_ok=True)
            names = []
            if with_ca:
                for crt in sorted(HOST_CA_DIR.glob("*.crt")):
                    shutil.copyfile(crt, ca / crt.name)
                    names.append(crt.name)
            (ca / "README.orderops").write_text(
                "Extra CA certificates copied from this machine's /usr/local/share/ca-certificates "
                "(ORDEROPS_EXTRA_CA=auto|1|0).\n" + "".join(f"{n}\n" for n in names))

        args = {"ROOTFS_IMAGE": rootfs_ref, "SUITE": SUITE,
                "MIRROR": self.mirrors.archive, "SECURITY_MIRROR": self.mirrors.security}
        return self._ensure_local("base", args, rootfs_ref, add_ca)

    def ensure_target(self) -> str:
        if "target" in self._refs:
            return self._refs["target"]
        base = self.ensure_base()
        ensure_ssh_key(self.paths)

        def add_key(stage: Path) -> None:
            dst = stage / "authorized_keys"
            dst.write_text(self.paths.ssh_pub.read_text())
            os.chmod(dst, 0o600)

        return self._ensure_local("target", {"BASE_IMAGE": base}, base, add_key)

    def ensure_standins(self) -> dict[str, str]:
        base = self.ensure_base()
        return {name: self._ensure_local(name, {"BASE_IMAGE": base}, base)
                for name in ("postgres", "redis", "nginx", "python")}

    def ensure_monitoring(self) -> dict[str, str]:
        """The monitoring images: ``{monitoring role: ref}`` (keys of :data:`MONITORING_IMAGES`).

        Stand-in contexts get the shared ``standins`` package copied in (part of their hash).
        """
        base = self.ensure_base()

        def add_standins(stage: Path) -> None:
            _copy_tree(STANDINS_DIR / "standins", stage / "standins", SERVICE_EXCLUDE)

        built: dict[str, str] = {}
        for name in dict.fromkeys(MONITORING_IMAGES.values()):
            extra = add_standins if name in ("monitoring-grafana", "monitoring-loki", "monitoring-alloy",
                                             "monitoring-cadvisor") else None
            built[name] = self._ensure_local(name, {"BASE_IMAGE": base}, base, extra)
        return {role: built[name] for role, name in MONITORING_IMAGES.items()}

    def ensure_pebble(self) -> str:
        """The test ACME server's image (images/pebble: Debian's pebble; tests/support/pebble.py)."""
        base = self.ensure_base()
        return self._ensure_local("pebble", {"BASE_IMAGE": base}, base)

    def ensure_compose_deb(self) -> Path:
        started = time.monotonic()
        existing = apt.find_compose_deb(self.paths.debs_dir)
        if existing:
            self._record("compose-deb", str(existing), "cached", started, existing.stat().st_size)
            return existing
        self.paths.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.paths.logs_dir / "compose-deb.log", "w") as log, \
                self.console.status("downloading trixie's docker-compose .deb ..."):
            deb = apt.download_compose_deb(self.paths.apt_trixie_dir, self.paths.debs_dir,
                                           self.mirrors.archive, log=log)
        self._record("compose-deb", str(deb), "downloaded", started, deb.stat().st_size)
        return deb

    # ------------------------------------------------------------------ order service
    def wheelhouse(self, requirements: Path) -> Path:
        """``pip wheel -r requirements`` on this machine, cached by the requirements' content."""
        started = time.monotonic()
        key = hashing.short(hashing.hash_bytes(
            requirements.read_bytes(), f"{sys.version_info[0]}.{sys.version_info[1]}", sys.platform))
        dest = self.paths.wheelhouse_root / key
        if (dest / ".complete").exists():
            self._record("wheelhouse", str(dest), "cached", started, 0)
            return dest
        tmp = dest.with_name(dest.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        venv_pip = REPO_ROOT / ".venv" / "bin" / "pip"
        pip = [str(venv_pip)] if venv_pip.exists() else [sys.executable, "-m", "pip"]
        self._run_logged([*pip, "wheel", "--disable-pip-version-check", "-r", str(requirements),
                          "-w", str(tmp)], "wheelhouse", "pip wheel (order service requirements) ...",
                         cwd=REPO_ROOT)
        (tmp / ".complete").write_text(requirements.read_text())
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        self._record("wheelhouse", str(dest), "built", started, 0)
        return dest

    def ensure_order_service(self, python_ref: str) -> str:
        dockerfile = SERVICE_DIR / "Dockerfile"
        requirements = SERVICE_DIR / "requirements.txt"
        init_py = SERVICE_DIR / "__init__.py"
        missing = [p for p in (dockerfile, requirements, init_py) if not p.exists()]
        if missing:
            shown = [str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p) for p in missing]
            raise MissingServiceError(
                "cannot build the order-service image: missing " + ", ".join(shown)
                + " (the order service provides them; use `images --skip-service` meanwhile)")
        version = service_version(init_py)
        wheels = self.wheelhouse(requirements)
        started = time.monotonic()
        stage = self.paths.contexts_dir / "order-service"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        _copy_tree(SERVICE_DIR, stage / "order_service", SERVICE_EXCLUDE)
        _link_or_copy_tree(wheels, stage / "wheelhouse")
        parent_id = self.image_id(python_ref)
        args = {"BASE_IMAGE": python_ref}
        digest = hashing.hash_tree(stage, extra={
            "name": "order-service", "parent_id": parent_id or "",
            "build_args": json.dumps(args, sort_keys=True), "dockerfile": "order_service/Dockerfile",
        })
        ref = f"{SERVICE_REPO}:{version}-{hashing.short(digest)}"
        if self.image_id(ref):
            return self._record("order_service", ref, "cached", started).ref
        self.docker_build("order_service", ref, stage, digest, args, dockerfile="order_service/Dockerfile")
        return self._record("order_service", ref, "built", started).ref

    # ------------------------------------------------------------------ clean-up
    def prune(self, keep_refs: set[str], dry_run: bool = False) -> list[str]:
        """Remove harness images (label ``orderops.image``) that nothing needs any more.

        Kept: ``keep_refs`` and their ancestors, the imported rootfs, and every image a container
        (running or not) uses. Returns what was (or would be) removed.
        """
        from docker.errors import APIError

        keep_ids: set[str] = set()
        for ref in keep_refs | {ROOTFS_REF}:
            try:
                img = self.client.images.get(ref)
            except ImageNotFound:
                continue
            keep_ids.add(img.id)
            keep_ids.update(h["Id"] for h in img.history() if h.get("Id", "").startswith("sha256:"))
        keep_ids.update(c.attrs.get("Image", "") for c in self.client.containers.list(all=True))
        removed = []
        for img in self.client.images.list(filters={"label": "orderops.image"}):
            if img.id in keep_ids:
                continue
            names = img.tags or [img.id]
            for name in names:
                try:
                    if not dry_run:
                        self.client.images.remove(name, noprune=False)
                    removed.append(name)
                except APIError as exc:  # e.g. a parent of something else: leave it
                    self.console.print(f"  [dim]kept {name}: {exc.explanation or exc}[/]")
        return removed

    # ------------------------------------------------------------------ everything
    def build_all(self, skip_service: bool = False) -> ImagesState:
        """Build or find every image, fetch the compose .deb, write images.json."""
        target = self.ensure_target()
        standins = self.ensure_standins()
        monitoring = self.ensure_monitoring()
        pebble = self.ensure_pebble()
        self.ensure_compose_deb()
        service_ref: str | None = None
        error: MissingServiceError | None = None
        if not skip_service:
            try:
                service_ref = self.ensure_order_service(standins["python"])
            except MissingServiceError as exc:
                error = exc
        base = self.ensure_base()
        alert_sink = self._ensure_local("alert-sink", {"BASE_IMAGE": base}, base)
        state = ImagesState(target=target, order_service=service_ref, monitoring=monitoring, alert_sink=alert_sink, pebble=pebble,
                            **standins)
        save_images(self.paths, state)
        if error:
            raise error
        return state
