"""Settings of a sandbox backend and its warm pool, passed in explicitly (the service nests them in its settings).

Per-run limits (time, memory, output) travel with each ``Job`` in ``Limits``; this holds what belongs to the
pool and to the sandbox instances (containers / bwrap processes) as a whole. It is a pydantic model so that the
service's one settings model can nest it: every field here is an ``RLVR_SANDBOX_*`` variable and an
``rlvr serve --sandbox-*`` flag, with the description below as its help.

Slot uids: with uid separation every slot gets two host uids of its own (its judge harness and its candidate
programs), never shared with another live slot of any backend in this process. They come from one block of
``uid_block_size`` uids starting at ``uid_base + block * uid_block_size``; see ``sandboxes._uids`` for how a
process claims a block so that two services on one host never share one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SandboxConfig", "cores"]


def cores() -> int:
    """The CPUs available to this process, the default of every per-core setting: the CPUs it may run on, capped
    by its cgroup's CPU quota (a container's or a pod's CPU limit, which affinity does not show)."""
    available = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    return max(1, min(available, math.ceil(quota)) if quota is not None else available)


_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
_CFS_DIRS = (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpu,cpuacct"))  # cgroup v1


def cgroup_cpu_quota(cpu_max: Path = _CPU_MAX, cfs_dirs: tuple[Path, ...] = _CFS_DIRS) -> float | None:
    """CPUs' worth of time this cgroup may use (quota / period), or None when unlimited or unknown."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for directory in cfs_dirs:
        try:
            quota_us = int((directory / "cpu.cfs_quota_us").read_text())
            period_us = int((directory / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


class SandboxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    pool_size: int = Field(
        default_factory=cores, ge=1, le=256, description="Warm sandboxes, each running one job at a time."
    )
    max_jobs_per_slot: int = Field(default=256, ge=1, description="Jobs a sandbox runs before it is recycled.")
    queue_limit: int = Field(
        default=4096, ge=0, description="Code jobs that may wait for a sandbox; a batch beyond it gets a 429."
    )
    retry_after_s: float = Field(default=1.0, gt=0, description="`Retry-After` seconds of an overloaded answer.")
    deadline_slack_s: float = Field(
        default=10.0, gt=0, description="Host-side slack on a job's deadline (compile + run time-outs + overhead)."
    )
    per_run_overhead_s: float = Field(
        default=0.25, ge=0, description="Host-side allowance per run for spawn, kill and clean-up."
    )
    start_timeout_s: float = Field(default=60.0, gt=0, description="Seconds a fresh sandbox has to answer its ping.")
    max_result_mb: int = Field(
        default=64, ge=1, le=1024, description="One job's outputs together; its remaining tests are not run past it."
    )
    compile_cache_mb: int = Field(
        default=256,
        ge=0,
        description="Compiled programs kept by a hash of their source, so one sent again (one request per test) is "
        "not compiled again; 0 disables.",
    )
    compile_memory_mb: int = Field(default=1024, ge=64, description="Address-space cap of a compiler.")
    work_tmpfs_mb: int = Field(default=512, ge=16, description="Size of the tmpfs holding work dirs and /tmp.")
    uid: int = Field(
        default=65534, ge=1, description="The one uid of a sandbox without uid separation (unprivileged bubblewrap)."
    )
    gid: int = Field(default=65534, ge=1, description="The gid of harnesses and candidate programs.")
    uid_base: int = Field(
        default=1_000_000_000, ge=1, description="First host uid of the slot uid blocks (above /etc/subuid ranges)."
    )
    uid_block_size: int = Field(
        default=4096, ge=4, description="Uids one service process may use: two per live slot, over all its sandboxes."
    )
    uid_block: int | None = Field(
        default=None, ge=0, description="Pin this service's uid block (unique per service); unset: claim a free one."
    )
    cgroup_parent: str | None = Field(
        default=None, description="bubblewrap: a delegated cgroup v2 dir for slot cgroups; unset: our own."
    )
    container_memory_mb: int = Field(
        default=2048, ge=64, description="Memory cap of one sandbox (cgroup, no swap on top)."
    )
    container_pids: int = Field(default=256, ge=16, description="Processes and threads of one sandbox (cgroup).")
    image: str = Field(default="rlvr-runtime:latest", description="docker: the runtime image.")
    container_cpus: float = Field(default=1.0, gt=0, description="docker: CPUs of one container.")
    docker_base_url: str | None = Field(
        default=None, description="docker: the engine's URL; unset: `DOCKER_HOST` or the default socket."
    )
    bwrap_path: str = Field(default="bwrap", description="bubblewrap: the `bwrap` executable.")
    python_path: str = Field(
        default="/usr/bin/python3", description="bubblewrap: the interpreter that runs the resident runner."
    )

    @property
    def result_line_bytes(self) -> int:
        """The longest result line the host reads from a runner; a longer one is the runner's failure.

        The runner encodes outputs in base64 (4/3 of the ``max_result_mb`` budget) inside a JSON line, plus
        room for the rest of the line; the host never buffers more than this per runner.
        """
        return (self.max_result_mb << 20) * 4 // 3 + (1 << 20)
