"""Getting the stack's images onto a host: the ``registry`` and ``archive`` transports.

* ``registry``: ``docker pull`` each reference the host lacks. References are immutable
  (version tags or digests), so "present" means "right".
* ``archive`` (air-gapped hosts): the images present on the controller are ``docker save``d into
  one archive (layers shared between images are stored once), uploaded and ``docker load``ed;
  skipped when the host already has every image ID the controller has. The plan judges by image
  IDs and names the archive by its key (:func:`archive_path`); the archive is written only when
  pyinfra executes (a ``FunctionCommand`` before the upload), so ``--dry`` writes nothing on the
  controller.

Old versions are pruned by :func:`prune`, which keeps the wanted tag plus the newest ``keep``
others so a rollback never needs a transfer.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand, operation
from pyinfra.api.command import FileUploadCommand, FunctionCommand

from deploys.contract.paths import UPLOAD_DIR, local_cache_dir
from deploys.facts.cache import cached_fact
from deploys.facts.images import DockerImageIds, DockerRepositoryTags

__all__ = ["present", "prune", "controller_image_ids", "archive_path", "archive_for", "tags_to_prune"]


def controller_image_ids(refs: Iterable[str]) -> dict[str, str]:
    """Image IDs of ``refs`` in the controller's Docker engine (docker SDK, ``DOCKER_HOST`` aware).

    Raises ``OperationError`` naming the first reference the controller does not have.
    """
    import docker  # imported lazily: only the archive transport needs a controller engine
    from docker.errors import DockerException, ImageNotFound

    try:
        client = docker.from_env()
    except DockerException as e:
        raise OperationError(f"archive transport needs a Docker engine on the controller: {e}") from None
    ids = {}
    try:
        for ref in refs:
            try:
                ids[ref] = client.images.get(ref).id
            except ImageNotFound:
                raise OperationError(
                    f"image {ref} is not present on the controller (build or pull it first)",
                ) from None
    finally:
        client.close()
    return ids


#: Hosts run in parallel (gevent greenlets; pyinfra patches threading): one ``docker save`` at a time.
_SAVE_LOCK = threading.Lock()
#: Archives unused for this long are deleted when a new one is made (seconds).
ARCHIVE_MAX_AGE = 3600


def archive_path(image_ids: Mapping[str, str], cache_dir: Path) -> Path:
    """Path of the ``docker save`` archive of ``image_ids`` (``{ref: id}``) in ``cache_dir``; touches nothing.

    The file name is a key of the refs and IDs (``images-<20 hex digits>.tar``), so an unchanged
    set is saved only once and shared by every host of a run.
    """
    key = hashlib.sha256("\n".join(f"{r} {i}" for r, i in sorted(image_ids.items())).encode()).hexdigest()[:20]
    return cache_dir / f"images-{key}.tar"


def archive_for(image_ids: Mapping[str, str], cache_dir: Path) -> Path:
    """The archive of :func:`archive_path`, made with ``docker save`` if missing (touched if present).

    Archives untouched for :data:`ARCHIVE_MAX_AGE` seconds are removed when a new one is made.
    Raises ``OperationError`` when ``docker save`` fails.
    """
    path = archive_path(image_ids, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _SAVE_LOCK:
        if path.exists():
            path.touch()
            return path
        for old in cache_dir.glob("images-*.tar"):
            if time.time() - old.stat().st_mtime > ARCHIVE_MAX_AGE:
                old.unlink(missing_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        proc = subprocess.run(  # docker SDK's save streams one image; the CLI shares layers across refs
            ["docker", "save", "-o", str(tmp), *sorted(image_ids)], capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise OperationError(f"docker save failed: {proc.stderr.strip()}")
        tmp.rename(path)
    return path


def _save_archive(state, host, image_ids: Mapping[str, str], cache_dir: Path) -> bool:
    """Execution-time callback (``FunctionCommand``) of :func:`present`: make the archive before its upload.

    Returns False (the operation fails on that host, with ``docker save``'s message) on failure.
    """
    try:
        archive_for(image_ids, cache_dir)
    except OperationError as e:
        host.log_styled(str(e), fg="red", log_func=logger.error)
        return False
    return True


@operation()
def present(
    refs: list[str],
    transport: str = "registry",
    cache_dir: str | None = None,
    upload_dir: str = UPLOAD_DIR,
):
    """
    Make image references present on the host with the right content.

    + refs: image references (immutable tags or digests)
    + transport: ``registry`` (``docker pull``) or ``archive`` (save on the controller, upload, load)
    + cache_dir: controller directory for archives (``archive`` only; default ``images/`` in
      :func:`deploys.contract.paths.local_cache_dir`)
    + upload_dir: host directory (0700, owned by the SSH user) the archive is uploaded to

    **Example:**

    .. code:: python

        images.present(refs=["orderops/order-service:0.1.0"], transport="archive")
    """
    if transport not in ("registry", "archive"):
        raise OperationError(f"unknown image transport {transport!r} (registry|archive)")
    refs = sorted(set(refs))
    on_host = cached_fact(host, DockerImageIds, refs=refs)

    if transport == "registry":
        missing = [ref for ref in refs if not on_host.get(ref)]
        if not missing:
            host.noop("all images present")
            return
        for ref in missing:
            yield StringCommand("docker", "pull", "--quiet", QuoteString(ref))
        return

    wanted = controller_image_ids(refs)
    stale = {ref: image_id for ref, image_id in wanted.items() if on_host.get(ref) != image_id}
    if not stale:
        host.noop("all image IDs match the controller's")
        return
    archives = Path(cache_dir) if cache_dir else local_cache_dir() / "images"
    archive = archive_path(stale, archives)  # named by key: nothing is saved while pyinfra plans
    remote = f"{upload_dir.rstrip('/')}/{archive.name}"
    yield FunctionCommand(_save_archive, (stale, archives), {})
    yield FileUploadCommand(str(archive), remote, remote_temp_filename=f"{remote}.part")
    yield StringCommand("docker", "load", "--quiet", "--input", QuoteString(remote), "&&", "rm", "-f", QuoteString(remote))


def tags_to_prune(tags: list[dict[str, str]], wanted_tag: str, keep: int) -> list[str]:
    """Tags to remove: all but ``wanted_tag`` and the newest ``keep`` others.

    + tags: :class:`~deploys.facts.images.DockerRepositoryTags` rows, newest first
    """
    others = [row["tag"] for row in tags if row["tag"] != wanted_tag]
    return others[keep:]


@operation()
def prune(repository: str, wanted_tag: str, keep: int = 2):
    """
    Remove old tags of a repository, keeping the wanted one and ``keep`` previous versions.

    + repository: repository without tag, e.g. ``orderops/order-service``
    + wanted_tag: the tag in use now (never removed)
    + keep: how many other (newest) tags to keep for rollbacks

    Image layers still used by a container are never removed (``docker rmi`` without ``-f``).
    """
    tags = host.get_fact(DockerRepositoryTags, repository=repository)
    remove = tags_to_prune(tags, wanted_tag, keep)
    if not remove:
        host.noop(f"{repository}: nothing to prune")
        return
    yield StringCommand("docker", "rmi", *[QuoteString(f"{repository}:{tag}") for tag in remove])
