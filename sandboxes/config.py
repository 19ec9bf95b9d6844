"""Settings of a sandbox backend and its warm pool, passed in explicitly (the service maps its settings here).

Per-run limits (time, memory, output) travel with each ``Job`` in ``Limits``; this holds what belongs to the
pool and to the sandbox instances (containers / bwrap processes) as a whole.

Slot uids: with uid separation every slot gets two host uids of its own (its judge harness and its candidate
programs), never shared with another live slot of any backend in this process. They come from one block of
``uid_block_size`` uids starting at ``uid_base + block * uid_block_size``; see ``sandboxes._uids`` for how a
process claims a block so that two services on one host never share one.
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
    max_result_mb: int = 64  # one job's outputs together; the runner stops running a job's tests past this
    compile_memory_mb: int = 1024  # address-space cap of a compiler (plus the language's compile headroom)
    work_tmpfs_mb: int = 512  # size of the tmpfs holding work dirs (and /tmp) in each instance
    sandbox_uid: int = 65534  # the one uid of an instance without uid separation (unprivileged bubblewrap)
    sandbox_gid: int = 65534  # the gid of harnesses and candidates (--gid of the runner)
    uid_base: int = 1_000_000_000  # first host uid of slot uid blocks (above the usual /etc/subuid ranges)
    uid_block_size: int = 4096  # uids one service process may use: two per live slot, over all its sandboxes
    uid_block: int | None = None  # None: claim a free block on this host; an int pins it (unique per service)
    cgroup_parent: str | None = None  # bubblewrap: a delegated cgroup v2 dir for slot cgroups; None: our own
    # the whole instance (container; bubblewrap: the slot's cgroup)
    container_memory_mb: int = 2048  # cgroup memory cap of one instance (no swap on top)
    container_pids: int = 256  # cgroup cap on the processes and threads of one instance
    # docker
    image: str = "rlvr-runtime:latest"
    container_cpus: float = 1.0
    docker_base_url: str | None = None  # None: DOCKER_HOST or the default socket
    # bubblewrap
    bwrap_path: str = "bwrap"
    python_path: str = "/usr/bin/python3"  # the interpreter that runs the resident runner inside the sandbox

    @property
    def result_line_bytes(self) -> int:
        """The longest result line the host reads from a runner; a longer one is the runner's failure.

        The runner encodes outputs in base64 (4/3 of the ``max_result_mb`` budget) inside a JSON line, plus
        room for the rest of the line; the host never buffers more than this per runner.
        """
        return (self.max_result_mb << 20) * 4 // 3 + (1 << 20)
