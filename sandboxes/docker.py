"""The docker backend: a warm pool of locked-down containers, each with one resident runner.

Each slot of the pool (``SlotPool``) is a container from the runtime image (``sandboxes/images/build.sh``) with
no network, a read-only root, size-capped tmpfs mounts for work dirs and /tmp, its own IPC namespace with small
SysV / POSIX IPC limits (``IPC_SYSCTLS``; an mqueue file system on /dev/mqueue, which Docker mounts),
no-new-privileges, the default seccomp profile, and pids / memory (no swap) / CPU caps. The runner script is
bind-mounted read-only and is the container's command and PID 1 (no docker-init: as PID 1 it reaps orphans and
no signal from inside reaches it); it starts as uid 0 of the container holding only ``RUNNER_CAPABILITIES`` and
runs judge harnesses and candidate programs as two host uids of the slot's own (``sandboxes._uids``: never
shared by two live slots of this process, of either backend), without capabilities. Jobs go to its stdin and
results come back on its stdout, both over the container's attach socket (stdout and stderr arrive multiplexed
in 8-byte-header frames, since there is no TTY); a result line longer than ``config.result_line_bytes`` is the
runner's failure, never a bigger buffer. The docker SDK is blocking: its calls run in a dedicated thread pool.

Containers carry ``rlvr.sandbox=1`` and ``rlvr.owner`` labels; orphans of a dead owner are reaped at start and
periodically (``sandboxes._reaper``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import resource
import secrets
import shlex
import socket
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors

from sandboxes._pool import SlotPool
from sandboxes._reaper import CONFLICT, OWNER_LABEL, SANDBOX_LABEL, current_owner, reap_orphans
from sandboxes._uids import SlotUids, slot_uid_pool
from sandboxes.base import Job, JobResult, SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.languages import LANGUAGES, available_languages

__all__ = ["INSTANCE_LABEL", "DockerSandbox", "connect_engine"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

RUNNER_PATH = Path(__file__).with_name("runner.py")
RUNNER_IN_CONTAINER = "/opt/rlvr/runner.py"
WORK_DIR = "/work"
DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
REAP_INTERVAL_S = 60.0
INSTANCE_LABEL = "rlvr.instance"
RUNNER_CAPABILITIES = ("SETUID", "SETGID", "CHOWN", "FOWNER", "DAC_OVERRIDE", "KILL")
IPC_SHM_BYTES = 64 << 20  # all SysV shared memory of one container together (and the largest segment)
# Namespaced IPC limits (the container has its own IPC namespace): what a program pins in shared memory or
# message queues stays small beside the container's memory cap until the runner removes it after the job, and a
# segment with no process attached is destroyed at once (shm_rmid_forced).
IPC_SYSCTLS = {
    "kernel.shmmax": str(IPC_SHM_BYTES),
    "kernel.shmall": str(IPC_SHM_BYTES // resource.getpagesize()),  # in pages
    "kernel.shmmni": "64",
    "kernel.shm_rmid_forced": "1",
    "kernel.msgmax": "8192",
    "kernel.msgmnb": "16384",
    "kernel.msgmni": "32",
    "fs.mqueue.queues_max": "16",
    "fs.mqueue.msg_max": "10",
    "fs.mqueue.msgsize_max": "8192",
}
_FRAME_HEADER = struct.Struct(">BxxxL")  # stream (0 stdin, 1 stdout, 2 stderr), 3 pad bytes, payload size
_STDOUT, _STDERR = 1, 2
_STDERR_TAIL_BYTES = 4096


class _AttachChannel:
    """One resident runner, spoken to over its container's attach socket."""

    def __init__(
        self,
        container_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_destroy: Callable[[], Awaitable[None]],
        line_limit: int,
    ) -> None:
        self.container_id = container_id
        self._reader = reader
        self._writer = writer
        self._line_limit = line_limit
        self._on_destroy = on_destroy
        self._stdout = bytearray()
        self._stderr_tail = b""
        self._destroyed = False

    async def write_line(self, data: bytes) -> None:
        try:
            self._writer.write(data if data.endswith(b"\n") else data + b"\n")
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise EOFError(f"the runner's stdin is closed: {exc}") from exc

    async def read_line(self) -> bytes:
        searched = 0
        while (end := self._stdout.find(b"\n", searched)) < 0:
            if len(self._stdout) > self._line_limit:
                raise EOFError(f"oversized result line: the runner sent more than {self._line_limit} bytes")
            searched = len(self._stdout)
            stream, payload = await self._read_frame()
            if stream == _STDOUT:
                self._stdout += payload
            elif stream == _STDERR:
                self._stderr_tail = (self._stderr_tail + payload)[-_STDERR_TAIL_BYTES:]
        line = bytes(self._stdout[: end + 1])
        del self._stdout[: end + 1]
        return line

    async def _read_frame(self) -> tuple[int, bytes]:
        try:
            stream, size = _FRAME_HEADER.unpack(await self._reader.readexactly(_FRAME_HEADER.size))
            if size > self._line_limit:  # the engine sends small frames; a huge one is not read into memory
                raise EOFError(f"oversized result line: a frame of {size} bytes")
            return stream, await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            stderr = self._stderr_tail.decode(errors="replace").strip()
            raise EOFError(f"the runner in container {self.container_id[:12]} is gone; stderr: {stderr!r}") from exc

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        await self._on_destroy()


def connect_engine(base_url: str | None = None) -> Any:
    """A Docker SDK client that answered a ping; SandboxUnavailable (and no leaked socket) otherwise."""
    url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL
    if url.startswith("unix://"):
        # checked first: the SDK leaks its socket when it cannot connect at all
        _probe_unix_socket(url.removeprefix("unix://"), DockerSandbox.name)
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(f"no Docker engine configured: {exc}", backend=DockerSandbox.name) from exc
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        client.close()
        raise SandboxUnavailable(f"no Docker engine reachable: {exc}", backend=DockerSandbox.name) from exc
    return client


def _probe_unix_socket(path: str, backend: str) -> None:
    if not os.path.exists(path):
        raise SandboxUnavailable(f"no Docker engine reachable: {path} does not exist", backend=backend)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            raise SandboxUnavailable(f"no Docker engine answers on {path}: {exc}", backend=backend) from exc


class DockerSandbox:
    """Runs jobs in a warm pool of containers; see the module docstring for the lock-down."""

    name = "docker"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._owner = current_owner().label()
        self._executor = ThreadPoolExecutor(max_workers=self.config.pool_size + 2, thread_name_prefix="rlvr-docker")
        self._client: Any = None
        self._pool: SlotPool | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._names = itertools.count()
        self._instance = secrets.token_hex(3)  # several sandboxes in one process must not share container names
        self._reaped = 0

    async def start(self) -> None:
        """Connect, check the image, reap orphans and start the pool; SandboxUnavailable when it cannot run here."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        if not RUNNER_PATH.is_file():
            raise SandboxUnavailable(f"the runner script {RUNNER_PATH} is missing", backend=self.name)
        self._client = await self._call(self._connect)
        await self._call(self._check_image)
        self._reaped += await self._call(reap_orphans, self._client)
        languages = await self._call(self._probe_languages)
        self._pool = SlotPool(self.name, self._start_channel, self.config, languages=languages)
        await self._pool.start()
        self._reaper = asyncio.create_task(self._reap_periodically())

    async def run(self, job: Job) -> JobResult:
        if self._pool is None:
            raise SandboxError("the docker sandbox is not started", backend=self.name)
        return await self._pool.run(job)

    async def close(self) -> None:
        """Stop every container this sandbox started (idle or busy); idempotent."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        # let launches that a cancelled recycle left running finish (and undo themselves) before the sweep
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        if self._client is not None:
            await asyncio.to_thread(self._remove_own_containers)
            await asyncio.to_thread(self._client.close)
            self._client = None

    def stats(self) -> dict[str, Any]:
        pool_stats = self._pool.stats() if self._pool is not None else {"backend": self.name}
        return {
            **pool_stats,
            "image": self.config.image,
            "owner": self._owner,
            "instance": self._instance,
            "orphans_reaped": self._reaped,
            "separation": "uid",
        }

    @property
    def size(self) -> int:
        return self.config.pool_size

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the runtime image has toolchains for (empty before start)."""
        return (self._pool.languages or ()) if self._pool is not None else ()

    # --- blocking docker SDK calls, run in the executor's threads

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def _connect(self) -> Any:
        return connect_engine(self.config.docker_base_url)

    def _check_image(self) -> None:
        try:
            self._client.images.get(self.config.image)
        except docker.errors.ImageNotFound as exc:
            message = f"the runtime image {self.config.image} is missing: build it with sandboxes/images/build.sh"
            raise SandboxUnavailable(message, backend=self.name) from exc

    def _probe_languages(self) -> tuple[str, ...]:
        """Ask the image which toolchains it holds, so that a missing one is an UnknownLanguage, not a CE."""
        tools = sorted({tool for spec in LANGUAGES.values() for tool in spec.tools()})
        script = f'for t in {shlex.join(tools)}; do command -v "$t" >/dev/null && echo "$t"; done; true'
        found = self._client.containers.run(
            self.config.image, ["sh", "-c", script], remove=True, network_mode="none", user="65534:65534"
        )
        return available_languages(set(found.decode().split()).__contains__)

    def _create_container(self, uids: SlotUids) -> str:
        container = self._client.containers.create(self.config.image, **self._container_options(uids))
        return str(container.id)

    def runner_command(self, uids: SlotUids) -> list[str]:
        """The container's command: the resident runner as PID 1, told which uids the slot's processes get."""
        return [
            *("python3", "-I", "-S", RUNNER_IN_CONTAINER, "--work-base", WORK_DIR, "--kill-strays"),
            *("--scratch", "/tmp", "--scratch", "/dev/shm"),  # emptied after every job
            *("--harness-uid", str(uids.harness), "--candidate-uid", str(uids.candidate)),
            *("--gid", str(self.config.gid)),
        ]

    def _container_options(self, uids: SlotUids) -> dict[str, Any]:
        config = self.config
        memory = f"{config.container_memory_mb}m"
        tmpfs_options = f"rw,exec,nosuid,nodev,mode=1777,size={config.work_tmpfs_mb}m"
        return {
            # the runner is PID 1 (no --init): it reaps orphans, and `kill -9 -1` from a program cannot reach it
            "command": self.runner_command(uids),
            "name": f"rlvr-sandbox-{self._owner.replace('/', '-')}-{self._instance}-{next(self._names)}",
            "labels": {SANDBOX_LABEL: "1", OWNER_LABEL: self._owner, INSTANCE_LABEL: self._instance},
            "stdin_open": True,
            "tty": False,
            "user": "0:0",  # the runner switches each process to the slot's harness or candidate uid
            "working_dir": WORK_DIR,
            "environment": {"HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp"},
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {WORK_DIR: tmpfs_options, "/tmp": tmpfs_options},
            "volumes": {str(RUNNER_PATH): {"bind": RUNNER_IN_CONTAINER, "mode": "ro"}},
            "cap_drop": ["ALL"],
            "cap_add": list(RUNNER_CAPABILITIES),
            "security_opt": ["no-new-privileges"],
            "ipc_mode": "private",
            "sysctls": IPC_SYSCTLS,
            "pids_limit": config.container_pids,
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(config.container_cpus * 1e9),
            "log_config": {"type": "none", "config": {}},
        }

    def _attach(self, container_id: str) -> socket.socket:
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        sdk_socket = self._client.api.attach_socket(container_id, params=params)
        raw: socket.socket = getattr(sdk_socket, "_sock", sdk_socket)
        # our own descriptor, so that dropping the SDK's response objects cannot close the stream under us
        duplicate = raw.dup()
        raw.close()
        sdk_socket.close()
        return duplicate

    def _start_container(self, container_id: str) -> None:
        self._client.api.start(container_id)

    def _remove_container(self, container_id: str) -> None:
        try:
            self._client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != CONFLICT:  # a conflict: its removal is already in progress
                raise

    def _remove_own_containers(self) -> None:
        # this instance's only: several sandboxes in one process share the owner label
        filters = {"label": [f"{OWNER_LABEL}={self._owner}", f"{INSTANCE_LABEL}={self._instance}"]}
        for container in self._client.containers.list(all=True, filters=filters):
            self._remove_container(container.id)

    # --- pool plumbing

    async def _start_channel(self) -> _AttachChannel:
        uid_pool = slot_uid_pool(self.config)
        uids = uid_pool.take()
        launch = self._executor.submit(self._launch, uids)
        try:
            container_id, sock = await asyncio.wrap_future(launch)
        except asyncio.CancelledError:
            # the thread may still finish: undo what it made, and only then lend the uids again
            launch.add_done_callback(functools.partial(self._undo_launch, release=lambda: uid_pool.give_back(uids)))
            raise
        except (docker.errors.DockerException, OSError) as exc:
            uid_pool.give_back(uids)
            raise SandboxError(f"could not start a sandbox container: {exc}", backend=self.name) from exc

        async def on_destroy() -> None:
            try:
                await self._call(self._remove_container, container_id)
            except (docker.errors.DockerException, OSError) as exc:  # the reaper gets it later
                logger.warning("docker: could not remove container %s: %s", container_id[:12], exc)
            uid_pool.give_back(uids)

        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        except BaseException:
            sock.close()
            await asyncio.shield(on_destroy())
            raise
        return _AttachChannel(container_id, reader, writer, on_destroy, self.config.result_line_bytes)

    def _launch(self, uids: SlotUids) -> tuple[str, socket.socket]:
        """Create, attach to and start one container (attached first, so no output can be missed)."""
        container_id = self._create_container(uids)
        try:
            sock = self._attach(container_id)
        except BaseException:
            self._remove_container(container_id)
            raise
        try:
            self._start_container(container_id)
        except BaseException:
            sock.close()
            self._remove_container(container_id)
            raise
        return container_id, sock

    def _undo_launch(self, launch: Future[tuple[str, socket.socket]], release: Callable[[], None]) -> None:
        try:
            if launch.cancelled() or launch.exception() is not None:
                return
            container_id, sock = launch.result()
            sock.close()
            self._remove_container(container_id)
        finally:
            release()

    async def _reap_periodically(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            with contextlib.suppress(docker.errors.DockerException, OSError):
                self._reaped += await self._call(reap_orphans, self._client)
