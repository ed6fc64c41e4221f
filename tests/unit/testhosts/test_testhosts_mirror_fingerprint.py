"""Mirror discovery from apt sources; cgroup fingerprint parsing and diff; small image helpers."""

import pytest

from testhosts import apt, fingerprint
from testhosts.images import BuildError, extra_ca_enabled, service_version

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main
"""


def write_sources(tmp_path, files: dict[str, str]):
    d = tmp_path / "apt" / "sources.list.d"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return tmp_path / "apt"


def test_deb822_mirrors(tmp_path):
    etc = write_sources(tmp_path, {
        "debian.sources": DEB822,
        "nodesource.sources": "Types: deb\nURIs: https://nodes.example/node_20.x\nSuites: nodistro\nComponents: main\n",
        "cloud.list.disabled": "deb https://cloud.example/apt cloud-sdk-bookworm main\n",
    })
    m = apt.debian_mirrors(environ={}, etc_apt=etc)
    assert m == apt.Mirrors("http://mirror.example/debian", "http://mirror.example/debian-security")


def test_one_line_sources_and_env_override(tmp_path):
    etc = write_sources(tmp_path, {"x.list": "deb [arch=amd64] https://cloud.example/apt cloud-sdk-bookworm main\n"})
    (etc / "sources.list").write_text("# comment\ndeb http://m.example/debian bookworm main contrib\n")
    assert apt.debian_mirrors(environ={}, etc_apt=etc) == apt.Mirrors("http://m.example/debian",
                                                                       "http://m.example/debian-security")
    m = apt.debian_mirrors(environ={"ORDEROPS_DEBIAN_MIRROR": "http://o.example/debian/"}, etc_apt=etc)
    assert m == apt.Mirrors("http://o.example/debian", "http://o.example/debian-security")


def test_no_debian_source_is_a_clear_error(tmp_path):
    etc = write_sources(tmp_path, {"n.sources": "Types: deb\nURIs: https://n.example\nSuites: nodistro\n"})
    with pytest.raises(apt.MirrorError, match="ORDEROPS_DEBIAN_MIRROR"):
        apt.debian_mirrors(environ={}, etc_apt=etc)


def test_isolated_apt_options_never_point_at_host_state(tmp_path):
    opts = " ".join(apt.apt_isolated_options(tmp_path))
    assert "Dir::State::status=/dev/null" in opts and "Dir::Etc::SourceParts=/dev/null" in opts
    assert f"Dir::State::Lists={tmp_path}/lists" in opts and f"Dir::Cache={tmp_path}/cache" in opts
    assert "Suites: trixie" in apt.trixie_sources("http://m.example/debian")


MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_fingerprint_parse_and_diff(tmp_path):
    mounts = fingerprint.parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 3 and all(m.startswith("/sys/fs/cgroup") for m in mounts)
    # mount IDs differ, content equal -> same
    renumbered = MOUNTINFO.replace("32 31", "99 31")
    assert fingerprint.parse_mountinfo(renumbered) == mounts
    a = fingerprint.Fingerprint(mounts, ["cpu/", "unified/"])
    damaged = MOUNTINFO.replace("31 23 0:28 / /sys/fs/cgroup rw,relatime", "31 23 0:28 / /sys/fs/cgroup ro,relatime")
    damaged += "50 31 0:40 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
    b = fingerprint.Fingerprint(fingerprint.parse_mountinfo(damaged), ["cpu/", "hugetlb/", "unified/"])
    changes = fingerprint.diff(a, b)
    assert any(c.startswith("+ mount /sys/fs/cgroup/hugetlb") for c in changes)
    assert any(c.startswith("+ entry hugetlb/") for c in changes)
    assert any("ro" in c and c.startswith("+ mount /sys/fs/cgroup tmpfs") for c in changes)
    assert fingerprint.diff(a, a) == [] and a.digest != b.digest


def test_fingerprint_baseline(tmp_path, monkeypatch):
    path = tmp_path / "fp.json"
    a = fingerprint.Fingerprint(["m1"], ["x/"])
    assert fingerprint.check_against_baseline(path, a) == []  # saves the baseline
    assert fingerprint.load(path) == a
    b = fingerprint.Fingerprint(["m1", "m2"], ["x/"])
    monkeypatch.delenv("ORDEROPS_CGROUP_STRICT", raising=False)
    assert fingerprint.check_against_baseline(path, b) == ["+ mount m2"]
    monkeypatch.setenv("ORDEROPS_CGROUP_STRICT", "1")
    with pytest.raises(fingerprint.CgroupChanged):
        fingerprint.check_against_baseline(path, b)


def test_fingerprint_of_this_machine_is_readable():
    fp = fingerprint.take()
    assert isinstance(fp.digest, str) and len(fp.digest) == 16


def test_extra_ca_switch(tmp_path):
    assert extra_ca_enabled({}, tmp_path) is False
    (tmp_path / "corp.crt").write_text("x")
    assert extra_ca_enabled({}, tmp_path) is True
    assert extra_ca_enabled({"ORDEROPS_EXTRA_CA": "0"}, tmp_path) is False
    with pytest.raises(BuildError):
        extra_ca_enabled({"ORDEROPS_EXTRA_CA": "1"}, tmp_path / "none")


def test_service_version(tmp_path):
    init = tmp_path / "__init__.py"
    init.write_text('"""doc"""\n__version__ = "1.2.3"\n')
    assert service_version(init) == "1.2.3"
    init.write_text("x = 1\n")
    with pytest.raises(BuildError, match="no __version__"):
        service_version(init)
    init.write_text('__version__ = "bad version"\n')
    with pytest.raises(BuildError):
        service_version(init)


def test_missing_order_service_files_is_a_clear_error(tmp_path, monkeypatch):
    from testhosts import images
    from testhosts.state import StatePaths

    (tmp_path / "__init__.py").write_text('__version__ = "0.1.0"\n')
    monkeypatch.setattr(images, "SERVICE_DIR", tmp_path)
    builder = images.Builder(StatePaths(root=tmp_path / "st", cache=tmp_path / "st" / "cache"), client=object())
    with pytest.raises(images.MissingServiceError, match=r"missing .*Dockerfile.*requirements\.txt.*--skip-service"):
        builder.ensure_order_service("orderops-local/python:3.11-0123456789ab")
