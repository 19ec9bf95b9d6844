"""Where the bubblewrap backend makes a slot's cgroup, read from this process's mounts and cgroups: cgroup v1 (per
controller hierarchy), v2 (one tree, controllers enabled for children) and the reasons it gives up. The real
cgroups (caps set, processes inside, removed at close) are checked in test_bubblewrap.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes._cgroup import CgroupUnavailable, SlotCgroup, _mounts, _own_paths, _v1_parents, _v2_parent

HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HOST_CGROUPS = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n0::/\n"
SUBTREE_MOUNTS = "35 31 0:32 /docker/ctr /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
CONTAINER_CGROUPS = "4:memory:/docker/ctr/service\n"


@pytest.mark.parametrize(
    ("mountinfo", "proc_cgroup", "expected"),
    [
        pytest.param(
            HYBRID_MOUNTS,
            HOST_CGROUPS,
            ("/sys/fs/cgroup/memory/process_api/abc", "/sys/fs/cgroup/pids"),
            id="memory_and_pids_below_our_own_cgroups",
        ),
        pytest.param(
            SUBTREE_MOUNTS,
            CONTAINER_CGROUPS,
            ("/sys/fs/cgroup/memory/service",),
            id="a_mounted_subtree_and_no_pids_hierarchy",
        ),
    ],
)
def test_v1_slot_cgroups_go_below_the_process_own_cgroup(
    mountinfo: str, proc_cgroup: str, expected: tuple[str, ...]
) -> None:
    parents = _v1_parents(list(_mounts(mountinfo)), _own_paths(proc_cgroup))
    assert parents == tuple(Path(path) for path in expected)


def test_v1_without_a_memory_hierarchy_gives_up() -> None:
    mounts = list(_mounts("39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"))
    with pytest.raises(CgroupUnavailable, match="memory"):
        _v1_parents(mounts, _own_paths("8:pids:/\n"))


def _v2_dir(tmp_path: Path, controllers: str, enabled: str) -> Path:
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    (tmp_path / "cgroup.subtree_control").write_text(enabled + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("controllers", "enabled", "outcome"),
    [
        pytest.param("cpu memory pids", "memory pids", "ok", id="delegated_with_both_enabled"),
        pytest.param("memory pids", "", "+memory +pids", id="enables_what_is_missing"),
        pytest.param("cpu pids", "pids", "memory controller is not available", id="no_memory_controller"),
    ],
)
def test_v2_uses_a_delegated_parent_when_it_has_the_controllers(
    tmp_path: Path, controllers: str, enabled: str, outcome: str
) -> None:
    parent = _v2_dir(tmp_path, controllers, enabled)
    if outcome.startswith(("ok", "+")):
        assert _v2_parent([], {}, str(parent)) == parent
        if outcome != "ok":
            assert (parent / "cgroup.subtree_control").read_text() == outcome
    else:
        with pytest.raises(CgroupUnavailable, match=outcome):
            _v2_parent([], {}, str(parent))


async def test_removing_a_slot_cgroup_waits_for_it_to_empty_and_gives_up_in_time(tmp_path: Path) -> None:
    empty, busy = tmp_path / "empty", tmp_path / "busy"
    empty.mkdir()
    busy.mkdir()
    (busy / "still-here").touch()  # rmdir fails, as on a cgroup with processes
    assert await SlotCgroup((empty,)).remove(timeout_s=1.0) is True
    assert not empty.exists()
    assert await SlotCgroup((busy,)).remove(timeout_s=0.2) is False
