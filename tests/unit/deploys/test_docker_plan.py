"""The docker role's package/source decision on fake distribution facts (Ubuntu can't be built here)."""

import pytest

from deploys.roles.docker_engine import UnsupportedDistribution, docker_plan


def fact(distro_id, codename):
    return {"name": distro_id.capitalize(), "release_meta": {"ID": distro_id, "VERSION_CODENAME": codename}}


@pytest.mark.parametrize(("distro", "codename"), [("ubuntu", "jammy"), ("ubuntu", "noble"), ("debian", "bookworm")])
def test_docker_apt_repository_in_production(make_settings, distro, codename):
    plan = docker_plan(fact(distro, codename), make_settings())
    assert plan.packages == ["docker-ce", "docker-ce-cli", "containerd.io", "docker-compose-plugin"]
    assert plan.apt_repo == (
        f"deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        f"https://download.docker.com/linux/{distro} {codename} stable"
    )
    assert plan.key_url == f"https://download.docker.com/linux/{distro}/gpg"
    assert plan.compose_deb is None


def test_debian_test_host_uses_docker_io_and_a_compose_deb(make_settings, tmp_path):
    deb = tmp_path / "docker-compose_2.26.1-4_amd64.deb"
    s = make_settings(docker_source="distro", compose_source="deb-file", compose_deb=str(deb))
    plan = docker_plan(fact("debian", "bookworm"), s)
    assert plan.packages == ["docker.io", "iptables"]
    assert plan.apt_repo is None
    assert plan.compose_deb == deb


def test_trixie_needs_docker_cli_and_has_compose(make_settings):
    plan = docker_plan(fact("debian", "trixie"), make_settings(docker_source="distro", compose_source="distro"))
    assert plan.packages == ["docker.io", "iptables", "docker-cli", "docker-compose"]


@pytest.mark.parametrize(("distro", "codename"), [("ubuntu", "focal"), ("centos", "9"), ("debian", "bullseye")])
def test_unsupported_distributions_are_refused(make_settings, distro, codename):
    with pytest.raises(UnsupportedDistribution, match="unsupported distribution"):
        docker_plan(fact(distro, codename), make_settings())


@pytest.mark.parametrize(("distro", "codename"), [("debian", "bookworm"), ("ubuntu", "jammy")])
def test_no_compose_v2_in_old_distro_archives(make_settings, distro, codename):
    with pytest.raises(UnsupportedDistribution, match="no Compose v2 package"):
        docker_plan(fact(distro, codename), make_settings(docker_source="distro", compose_source="distro"))
