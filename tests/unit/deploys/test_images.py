"""Image transport helpers: pruning choice and archive caching."""

import json

import pytest

from deploys.facts.images import DockerImageIds, DockerRepositoryTags
from deploys.operations.images import tags_to_prune

ROWS = [
    {"tag": "0.4.0", "id": "sha256:4", "created": "2026-11-04"},
    {"tag": "0.3.0", "id": "sha256:3", "created": "2026-11-03"},
    {"tag": "0.2.0", "id": "sha256:2", "created": "2026-11-02"},
    {"tag": "0.1.0", "id": "sha256:1", "created": "2026-11-01"},
]


def test_prune_keeps_wanted_and_newest_others():
    assert tags_to_prune(ROWS, "0.4.0", keep=2) == ["0.1.0"]
    # after a rollback to 0.2.0, the newer 0.4.0/0.3.0 are the kept ones
    assert tags_to_prune(ROWS, "0.2.0", keep=2) == ["0.1.0"]
    assert tags_to_prune(ROWS, "0.4.0", keep=1) == ["0.2.0", "0.1.0"]
    assert tags_to_prune(ROWS[:1], "0.4.0", keep=2) == []


def test_image_id_fact_parsing():
    out = DockerImageIds().process(["a:1 sha256:abc", "b:2 -", ""])
    assert out == {"a:1": "sha256:abc", "b:2": None}
    cmd = DockerImageIds().command(refs=["a:1", "b:2"]).get_raw_value()
    assert "a:1" in cmd and "docker image inspect" in cmd


def _images_line(tag, image_id, created):
    # the fields of `docker images --format '{{json .}}'` (docker CLI 24-27 formatter, cli/command/formatter/image.go)
    return json.dumps({"Containers": "N/A", "CreatedAt": created, "CreatedSince": "2 weeks ago", "Digest": "<none>",
                       "ID": image_id, "Repository": "orderops/order-service", "SharedSize": "N/A", "Size": "258MB",
                       "Tag": tag, "UniqueSize": "N/A", "VirtualSize": "258MB"})


def test_repository_tags_fact_reads_json_and_skips_dangling():
    out = DockerRepositoryTags().process([_images_line("1.0", "sha256:a", "2026-11-01 10:00:00 +0000 UTC"),
                                          _images_line("<none>", "sha256:b", "2026-10-01 10:00:00 +0000 UTC"), ""])
    assert out == [{"tag": "1.0", "id": "sha256:a", "created": "2026-11-01 10:00:00 +0000 UTC"}]
    assert "{{json .}}" in DockerRepositoryTags().command(repository="a/b").get_raw_value()


def test_repository_tags_fact_refuses_a_line_it_cannot_read():
    with pytest.raises(ValueError, match="1.0 sha256:a"):
        DockerRepositoryTags().process(["1.0 sha256:a 2026-11-01"])


def test_archive_is_saved_once_and_old_ones_are_removed(tmp_path, monkeypatch):
    import os
    import time

    from deploys.operations.images import ARCHIVE_MAX_AGE, archive_for

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    # a stand-in docker CLI that records its arguments and writes the -o file
    (bin_dir / "docker").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n[ "$1" = save ] && echo tar > "$3"\n')
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    cache = tmp_path / "cache"
    cache.mkdir()
    old = cache / "images-old.tar"
    old.write_text("x")
    os.utime(old, (time.time() - ARCHIVE_MAX_AGE - 10,) * 2)

    first = archive_for({"b:1": "sha256:2", "a:1": "sha256:1"}, cache)
    again = archive_for({"a:1": "sha256:1", "b:1": "sha256:2"}, cache)
    other = archive_for({"a:1": "sha256:9"}, cache)
    assert first == again != other
    assert calls.read_text().splitlines()[0].endswith("a:1 b:1")
    assert len(calls.read_text().splitlines()) == 2  # the repeated set was not saved again
    assert not old.exists()


def test_archive_transport_plans_by_id_and_saves_only_when_executed(tmp_path, monkeypatch):
    """The operation body (pyinfra's planning pass, all of --dry) names the archive by key and writes
    nothing; the FunctionCommand it yields first makes exactly the archive the upload names."""
    import os
    from types import SimpleNamespace

    from pyinfra.api.command import FileUploadCommand, FunctionCommand
    from pyinfra.context import ctx_host

    from deploys.operations import images as image_ops
    from tests.unit.deploys.fake_host import FakeHost

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text('#!/bin/sh\n[ "$1" = save ] && echo tar > "$3"\n')
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    wanted = {"a:1": "sha256:1", "b:1": "sha256:2"}
    # the controller engine's answer (the docker SDK needs a live engine): the seam the op reads IDs through
    monkeypatch.setattr(image_ops, "controller_image_ids", lambda refs: {r: wanted[r] for r in refs})
    cache = tmp_path / "cache"
    host = FakeHost({DockerImageIds: {"a:1": "sha256:1", "b:1": "sha256:old"}})
    with ctx_host.use(host):
        commands = list(image_ops.present._inner(refs=["a:1", "b:1"], transport="archive", cache_dir=str(cache)))
    assert not cache.exists()  # planned: nothing written on the controller
    save, upload, load = commands
    assert isinstance(save, FunctionCommand) and isinstance(upload, FileUploadCommand)
    archive = image_ops.archive_path({"b:1": "sha256:2"}, cache)  # only the stale image
    assert upload.src == str(archive) and "docker load" in load.get_raw_value()

    logs = []
    fake = SimpleNamespace(log_styled=lambda message, **kw: logs.append(message))
    assert save.execute(None, fake, {}) is True
    assert archive.read_text() == "tar\n"
    (bin_dir / "docker").write_text('#!/bin/sh\necho "no space left" >&2; exit 1\n')
    archive.unlink()
    assert save.execute(None, fake, {}) is False and "no space left" in logs[-1]  # the host's op fails


def test_archive_transport_noop_when_ids_match(monkeypatch, tmp_path):
    from pyinfra.context import ctx_host

    from deploys.operations import images as image_ops
    from tests.unit.deploys.fake_host import FakeHost

    monkeypatch.setattr(image_ops, "controller_image_ids", lambda refs: {r: "sha256:1" for r in refs})
    host = FakeHost({DockerImageIds: {"a:1": "sha256:1"}})
    with ctx_host.use(host):
        assert list(image_ops.present._inner(refs=["a:1"], transport="archive", cache_dir=str(tmp_path / "c"))) == []
    assert host.noops == ["all image IDs match the controller's"] and not (tmp_path / "c").exists()
