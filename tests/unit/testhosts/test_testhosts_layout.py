"""Layouts -> groups, port allocation, docker run arguments (no docker needed)."""

import pytest

from testhosts.hosts import HostsError, layout_groups, plan_hosts, ports_for, run_kwargs


def test_single_layout():
    assert layout_groups(1, "single") == [["app", "controller"]]
    assert layout_groups(3, "single") == [["app", "controller"], ["app"], ["app"]]


def test_split_layout():
    assert layout_groups(2, "split") == [["controller"], ["app"]]
    assert layout_groups(4, "split") == [["controller"], ["app"], ["app"], ["app"]]
    assert layout_groups(3, "monitoring") == [["controller"], ["app"], ["monitoring"]]
    assert layout_groups(4, "monitoring") == [["controller"], ["app"], ["app"], ["monitoring"]]
    with pytest.raises(HostsError, match="at least 3"):
        layout_groups(2, "monitoring")
    with pytest.raises(HostsError, match="at least 2"):
        layout_groups(1, "split")


def test_bad_layouts():
    with pytest.raises(HostsError, match="unknown layout"):
        layout_groups(2, "mesh")
    with pytest.raises(HostsError):
        layout_groups(0, "single")
    with pytest.raises(HostsError):
        layout_groups(500, "single")


def test_ports():
    assert ports_for(1) == (2201, 8081, 8441)
    assert ports_for(10) == (2210, 8090, 8450)
    assert ports_for(1, port_offset=100) == (2301, 8181, 8541)


def test_plan_hosts_names_ports_unique():
    plans = plan_hosts(10, "split")
    assert [p.name for p in plans] == [f"orderops-{i}" for i in range(1, 11)]
    all_ports = [x for p in plans for x in (p.ssh_port, p.http_port, p.https_port)]
    assert len(all_ports) == len(set(all_ports))
    assert plans[0].groups == ("controller",)
    assert plans[0].volume == "orderops-1-docker"
    assert plan_hosts(1, prefix="it")[0].name == "it-1"
    with pytest.raises(HostsError, match="overlap"):
        plan_hosts(10, port_offset=355)
    with pytest.raises(HostsError, match="prefix"):
        plan_hosts(1, prefix="bad name")


def test_run_kwargs_dind_flag_set_never_privileged():
    kw = run_kwargs(plan_hosts(1)[0], "orderops-local/target:bookworm-0123456789ab", "/state")
    assert kw["cgroupns"] == "private"
    assert "/sys/fs/cgroup" in kw["tmpfs"] and "/run" in kw["tmpfs"] and "/run/lock" in kw["tmpfs"]
    assert sorted(kw["cap_add"]) == ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]
    assert kw["security_opt"] == ["seccomp=unconfined"]
    assert "privileged" not in kw
    # the machine's cgroup tree is never bound into a host
    assert all(not str(src).startswith("/sys") for src in kw["volumes"])
    assert kw["volumes"] == {"orderops-1-docker": {"bind": "/var/lib/docker", "mode": "rw"}}
    assert kw["ports"] == {"22/tcp": ("127.0.0.1", 2201), "80/tcp": ("127.0.0.1", 8081),
                           "443/tcp": ("127.0.0.1", 8441)}
    assert kw["labels"]["orderops.testhost"] == "/state"
    assert kw["restart_policy"] == {"Name": "unless-stopped"}  # a reboot inside brings the host back


def test_ipv6_subnet_is_a_ula_per_prefix():
    import ipaddress

    from testhosts.hosts import ipv6_subnet, network_name, run_kwargs, plan_hosts

    a, b = ipaddress.ip_network(ipv6_subnet("oh")), ipaddress.ip_network(ipv6_subnet("orderops"))
    assert a.prefixlen == 64 and a.subnet_of(ipaddress.ip_network("fd00::/8")) and a != b
    plan = plan_hosts(1, "single", "oh")[0]
    assert run_kwargs(plan, "img", "lbl", network_name("oh"))["network"] == "oh-net"
