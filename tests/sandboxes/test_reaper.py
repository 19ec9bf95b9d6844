"""Owners of sandbox containers (``sandboxes._reaper``): their labels, old and new, and whether they still run,
for a service on a host and for one in a container of the engine. The engine is a stand-in here; test_docker.py
has the same with a real one."""

from __future__ import annotations

import os
import socket
from typing import Any

import docker.errors
import pytest

from sandboxes._reaper import Owner, container_candidates, current_owner, own_container, owner_alive

ID = "a1b2c3d4e5f6" + "0" * 52
OTHER_ID = "f" * 64


@pytest.mark.parametrize(
    ("label", "parsed"),
    [
        pytest.param("vm/123/456", Owner("vm", 123, 456), id="host_label"),
        pytest.param("a.b.example/1/2", Owner("a.b.example", 1, 2), id="host_label_with_dots"),
        pytest.param(f"container:{ID}/7/8", Owner("", 7, 8, container=ID), id="container_label"),
        pytest.param("container:a1b2c3d4e5f6/7/8", Owner("", 7, 8, container="a1b2c3d4e5f6"), id="short_id"),
        pytest.param("container:not-an-id/7/8", None, id="container_label_without_an_id"),
        pytest.param("garbage", None, id="garbage"),
        pytest.param("vm/123", None, id="no_start_ticks"),
        pytest.param("vm/x/456", None, id="pid_not_a_number"),
        pytest.param("", None, id="empty"),
    ],
)
def test_an_owner_label_parses_old_and_new(label: str, parsed: Owner | None) -> None:
    assert Owner.parse(label) == parsed
    if parsed is not None:
        assert parsed.label() == label


@pytest.mark.parametrize(
    ("owner", "slug"),
    [
        pytest.param(Owner("vm", 1, 2), "vm-1-2", id="host"),
        pytest.param(Owner("h", 1, 2, container=ID), "ca1b2c3d4e5f6-1-2", id="container"),
        pytest.param(Owner("we:ird/host", 1, 2), "we-ird-host-1-2", id="odd_hostname"),
    ],
)
def test_an_owner_fits_in_a_container_name(owner: Owner, slug: str) -> None:
    assert owner.slug() == slug


class FakeEngine:
    """client.api.inspect_container over a table of containers (id -> running), or an engine that is down."""

    def __init__(self, containers: dict[str, bool], down: bool = False) -> None:
        self.api = self
        self._containers = containers
        self._down = down

    def inspect_container(self, name: str) -> dict[str, Any]:
        if self._down:
            raise docker.errors.DockerException("connection refused")
        for container, running in self._containers.items():
            if container.startswith(name):
                return {"Id": container, "State": {"Running": running}, "Config": {"Hostname": name[:12]}}
        raise docker.errors.NotFound("no such container")


ME = current_owner()
ALIVE_HERE = (ME.pid, ME.start_ticks)
HOST = socket.gethostname()


@pytest.mark.parametrize(
    ("owner", "here", "engine", "alive"),
    [
        pytest.param(Owner(HOST, *ALIVE_HERE), ME, None, True, id="host_owner_running_here"),
        pytest.param(Owner(HOST, ME.pid, ME.start_ticks + 1), ME, None, False, id="host_owner_pid_recycled"),
        pytest.param(Owner(HOST, -1, 1), ME, None, False, id="host_owner_gone"),
        pytest.param(Owner("elsewhere", -1, 1), ME, None, True, id="host_owner_elsewhere_cannot_be_checked"),
        # a container with the host's hostname (network_mode: host) has a pid namespace of its own
        pytest.param(Owner(HOST, -1, 1), Owner(HOST, 1, 1, ID), None, True, id="host_owner_seen_from_a_container"),
        pytest.param(Owner("", *ALIVE_HERE, ID), Owner(HOST, 1, 1, ID), None, True, id="our_container_running"),
        pytest.param(Owner("", -1, 1, ID), Owner(HOST, 1, 1, ID), None, False, id="our_container_process_gone"),
        pytest.param(Owner("", 1, 1, OTHER_ID), ME, FakeEngine({OTHER_ID: True}), True, id="other_container_runs"),
        pytest.param(Owner("", 1, 1, OTHER_ID), ME, FakeEngine({OTHER_ID: False}), False, id="other_container_stopped"),
        pytest.param(Owner("", 1, 1, OTHER_ID), ME, FakeEngine({}), False, id="other_container_removed"),
        pytest.param(Owner("", 1, 1, OTHER_ID), ME, FakeEngine({}, down=True), True, id="engine_down_cannot_tell"),
        pytest.param(Owner("", 1, 1, OTHER_ID), ME, None, True, id="no_engine_cannot_tell"),
        pytest.param(Owner("", 1, 1, OTHER_ID), Owner(HOST, 1, 1, ID), FakeEngine({}), False, id="from_a_container"),
    ],
)
def test_whether_an_owner_still_runs(owner: Owner, here: Owner, engine: FakeEngine | None, alive: bool) -> None:
    assert owner_alive(owner, here, engine) is alive


DOCKER_MOUNTINFO = f"""\
1 0 0:1 / / rw - overlay overlay rw
2 1 0:2 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw
3 1 0:2 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw
"""
# a host sees every container's shm mount from the engine's dir: none of them is this process's container
HOST_MOUNTINFO = f"""\
1 0 0:1 / / rw - ext4 /dev/sda1 rw
9 1 0:9 / /var/lib/docker/containers/{OTHER_ID}/mounts/shm rw - tmpfs shm rw
"""
DIND_MOUNTINFO = f"4 1 0:3 /containers/{ID}/hosts /etc/hosts rw - ext4 /dev/sdb rw\n"  # a separate data root


@pytest.mark.parametrize(
    ("mountinfo", "cgroup", "hostname", "found"),
    [
        pytest.param(DOCKER_MOUNTINFO, "0::/\n", "web-1", [ID], id="docker_bind_mounts"),
        pytest.param(DIND_MOUNTINFO, "0::/\n", "web-1", [ID], id="docker_data_root_of_its_own"),
        pytest.param(HOST_MOUNTINFO, "0::/user.slice\n", "vm", [], id="a_host"),
        pytest.param("", f"12:memory:/docker/{ID}\n", "web-1", [ID], id="cgroup_v1"),
        pytest.param("", f"1:name=systemd:/system.slice/docker-{ID}.scope\n", "x", [ID], id="cgroup_systemd"),
        pytest.param("", "0::/\n", ID[:12], [ID[:12]], id="default_hostname"),
        pytest.param(DOCKER_MOUNTINFO, "0::/\n", ID[:12], [ID, ID[:12]], id="mounts_first"),
    ],
)
def test_container_candidates(mountinfo: str, cgroup: str, hostname: str, found: list[str]) -> None:
    assert container_candidates(mountinfo, cgroup, hostname) == found


@pytest.mark.parametrize(
    ("candidates", "engine", "found"),
    [
        pytest.param([ID[:12]], FakeEngine({ID: True}), ID, id="running_with_our_hostname"),
        pytest.param([ID[:12]], FakeEngine({ID: False}), None, id="not_running"),
        pytest.param([ID[:12]], FakeEngine({}), None, id="unknown_to_this_engine"),
        pytest.param([ID[:12]], FakeEngine({ID: True}, down=True), None, id="engine_down"),
    ],
)
def test_own_container_is_one_the_engine_runs_with_our_hostname(
    candidates: list[str], engine: FakeEngine, found: str | None
) -> None:
    assert own_container(engine, candidates, ID[:12]) == found


def test_a_process_on_this_host_is_a_host_owner() -> None:
    assert (ME.host, ME.pid, ME.container) == (HOST, os.getpid(), None)
