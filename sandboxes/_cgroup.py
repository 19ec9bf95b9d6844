"""A cgroup per sandbox slot: one memory cap (no swap) and one pids cap over everything the slot runs.

The runner's rlimits bound each process; only a cgroup bounds their sum, including memory that outlives a
process (SysV shared memory, tmpfs pages), so a slot cannot take memory from the slots beside it or the service.
Docker makes one per container; the bubblewrap backend makes its own here:

- cgroup v2: a child of ``cgroup_parent`` (else of the service's own cgroup) with ``memory.max``,
  ``memory.swap.max = 0`` and ``pids.max``. The parent must have (or be able to enable) the memory and pids
  controllers in its ``cgroup.subtree_control``: true of a delegated subtree (systemd ``Delegate=yes``, a
  container's own cgroup namespace with a leaf for the service), not of a cgroup that holds processes itself.
- cgroup v1 (and hybrid hosts whose v2 tree has no memory controller): a child of the service's own cgroup in
  the memory hierarchy (``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes`` where swap is accounted)
  and in the pids hierarchy (``pids.max``) when it is mounted. Writing there needs root.

``find_cgroup_tree`` checks all that once (it makes and removes a probe cgroup) and raises
``CgroupUnavailable`` with the reason otherwise. Slot cgroups are named ``rlvr-<pid>-<token>-<n>``; the ones
of dead processes are removed when a tree is found.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupLimits", "CgroupTree", "CgroupUnavailable", "SlotCgroup", "find_cgroup_tree"]

PREFIX = "rlvr-"
REMOVE_POLL_S = 0.05
STALE_AFTER_S = 60.0
V2_CONTROLLERS = ("memory", "pids")


class CgroupUnavailable(Exception):
    """No slot cgroup can be made here; the message says why."""


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    pids: int


@dataclass(frozen=True)
class SlotCgroup:
    """One slot's cgroup: a dir per hierarchy (one on v2; memory and pids on v1)."""

    dirs: tuple[Path, ...]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """Where a process writes its pid to join the slot."""
        return tuple(str(path / "cgroup.procs") for path in self.dirs)

    async def remove(self, timeout_s: float = 5.0) -> bool:
        """Remove the dirs once their processes are gone (a dying pid namespace takes a moment)."""
        for path in self.dirs:  # v2 (5.14+): kill what is left at once
            with contextlib.suppress(OSError):
                if (path / "cgroup.kill").exists():
                    (path / "cgroup.kill").write_text("1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not _rmdir_all(self.dirs):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(REMOVE_POLL_S)
        return True


class CgroupTree:
    """Where slot cgroups are made: one parent dir (v2) or one per hierarchy (v1: memory, then pids)."""

    def __init__(self, version: str, parents: tuple[Path, ...]) -> None:
        self.version = version  # "v2" | "v1"
        self.parents = parents
        self._token = secrets.token_hex(3)  # two trees of one process must not make the same names
        self._count = 0

    def create(self, limits: CgroupLimits) -> SlotCgroup:
        """A new slot cgroup with ``limits`` set; OSError (and nothing left behind) when that fails."""
        self._count += 1
        name = f"{PREFIX}{os.getpid()}-{self._token}-{self._count}"
        made: list[Path] = []
        try:
            for parent in self.parents:
                path = parent / name
                path.mkdir(mode=0o755)
                made.append(path)
                _set_limits(path, limits)
        except OSError:
            for path in made:
                _rmdir(path)
            raise
        return SlotCgroup(tuple(made))

    def remove_stale(self) -> int:
        """Remove slot cgroups of processes that are gone; how many were removed."""
        return sum(_rmdir(path) for parent in self.parents for path in parent.glob(f"{PREFIX}*") if _stale(path))


def _set_limits(path: Path, limits: CgroupLimits) -> None:
    memory = str(limits.memory_bytes)
    settings = [
        ("memory.max", memory),  # v2
        ("memory.swap.max", "0"),
        ("memory.limit_in_bytes", memory),  # v1: before memsw, which may never be below it
        ("memory.memsw.limit_in_bytes", memory),
        ("pids.max", str(limits.pids)),
    ]
    for name, value in settings:
        if (path / name).exists():
            (path / name).write_text(value)


def _rmdir_all(paths: tuple[Path, ...]) -> bool:
    removed = [_rmdir(path) for path in paths]  # every one, not up to the first failure
    return all(removed)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _stale(path: Path) -> bool:
    """Made by a process that is gone (and not just now: a service in another pid namespace may be about to
    move a process into a dir it just made)."""
    pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid() or Path(f"/proc/{pid}").exists():
        return False
    try:
        return time.time() - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


# --- finding the tree


@dataclass(frozen=True)
class _Mount:
    point: Path
    root: str  # the mount's root inside the hierarchy ("/" unless a sub-tree was mounted)
    fstype: str
    options: frozenset[str]


def _mounts(mountinfo: str) -> Iterator[_Mount]:
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, extra = fields.split(), tail.split()
        if len(parts) >= 5 and len(extra) >= 3 and extra[0] in ("cgroup", "cgroup2"):
            point = parts[4].replace("\\040", " ")
            yield _Mount(Path(point), parts[3], extra[0], frozenset(extra[2].split(",")))


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """The process's cgroup per controller ("" for the v2 tree) from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _inside(mount: _Mount, path: str) -> Path:
    if mount.root != "/" and path.startswith(mount.root):
        path = path[len(mount.root) :]
    return mount.point / path.lstrip("/")


def _v2_parent(mounts: list[_Mount], own: dict[str, str], parent: str | None) -> Path:
    v2 = next((mount for mount in mounts if mount.fstype == "cgroup2"), None)
    if parent is not None:
        path = Path(parent)
    elif v2 is not None and "" in own:
        path = _inside(v2, own[""])
    else:
        raise CgroupUnavailable("no cgroup v2 tree")
    try:
        available = (path / "cgroup.controllers").read_text().split()
        enabled = (path / "cgroup.subtree_control").read_text().split()
    except OSError as exc:
        raise CgroupUnavailable(f"{path} is not a cgroup v2 dir: {exc}") from exc
    if "memory" not in available:
        raise CgroupUnavailable(f"the memory controller is not available in {path}")
    missing = [name for name in V2_CONTROLLERS if name in available and name not in enabled]
    if missing:
        try:
            (path / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in missing))
        except OSError as exc:
            raise CgroupUnavailable(f"cannot enable {', '.join(missing)} below {path}: {exc}") from exc
    return path


def _v1_parents(mounts: list[_Mount], own: dict[str, str]) -> tuple[Path, ...]:
    parents = []
    for controller in ("memory", "pids"):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is not None and controller in own:
            parents.append(_inside(mount, own[controller]))
        elif controller == "memory":
            raise CgroupUnavailable("no cgroup v1 memory hierarchy")
    return tuple(parents)


def _probe(tree: CgroupTree) -> None:
    try:
        probe = tree.create(CgroupLimits(memory_bytes=64 << 20, pids=16))
    except OSError as exc:
        raise CgroupUnavailable(f"cannot make a {tree.version} cgroup below {tree.parents[0]}: {exc}") from exc
    for path in probe.dirs:
        _rmdir(path)


def find_cgroup_tree(parent: str | None = None) -> CgroupTree:
    """Where this process can make slot cgroups (checked by making one); CgroupUnavailable otherwise."""
    try:
        mounts = list(_mounts(Path("/proc/self/mountinfo").read_text()))
        own = _own_paths(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read this process's cgroups: {exc}") from exc
    try:
        tree = CgroupTree("v2", (_v2_parent(mounts, own, parent),))
    except CgroupUnavailable as v2_failure:
        if parent is not None:
            raise
        try:
            tree = CgroupTree("v1", _v1_parents(mounts, own))
        except CgroupUnavailable as v1_failure:
            raise CgroupUnavailable(f"{v2_failure}; {v1_failure}") from v1_failure
    _probe(tree)
    tree.remove_stale()
    return tree
