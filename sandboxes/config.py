"""Settings of a sandbox backend and its warm pool, passed in explicitly (the service maps its settings here).

Per-run limits (time, memory, output) travel with each ``Job`` in ``Limits``; this holds what belongs to the
pool and to the sandbox instances (containers / bwrap processes) as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxConfig"]


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    pool_size: int = 4  # warm sandbox instances, each with one resident runner: jobs run in parallel up to this
    max_jobs_per_slot: int = 256  # recycle an instance after this many jobs
    queue_limit: int = 1024  # jobs waiting for a free slot beyond this -> SandboxOverloaded
    retry_after_s: float = 1.0  # suggested back-off carried by SandboxOverloaded
    deadline_slack_s: float = 10.0  # host-side deadline = compile + sum(run timeouts) + per-run overhead + this
    per_run_overhead_s: float = 0.25  # host-side allowance per run for spawn, kill and cleanup
    start_timeout_s: float = 60.0  # a fresh instance must answer its first ping within this
    max_result_mb: int = 256  # one job's result line; the runner stops running a job's tests past this
    compile_memory_mb: int = 1024  # address-space cap of a compiler (plus the language's compile headroom)
    work_tmpfs_mb: int = 512  # size of the tmpfs holding work dirs (and /tmp) in each instance
    sandbox_uid: int = 65534  # uid/gid the programs run as (nobody)
    sandbox_gid: int = 65534
    # docker
    image: str = "rlvr-runtime:latest"
    container_memory_mb: int = 2048  # cgroup memory cap of a container (memswap = the same: no swap)
    container_cpus: float = 1.0
    container_pids: int = 256
    docker_base_url: str | None = None  # None: DOCKER_HOST or the default socket
    # bubblewrap
    bwrap_path: str = "bwrap"
    python_path: str = "/usr/bin/python3"  # the interpreter that runs the resident runner inside the sandbox
