"""The docker backend: a warm pool of locked-down containers, each with one resident runner.

Each slot of the pool (``SlotPool``) is a container from the runtime image (``sandboxes/images/build.sh``) with
no network, a read-only root, size-capped tmpfs mounts for work dirs and /tmp, its own IPC namespace with small
SysV / POSIX IPC limits (``IPC_SYSCTLS``; an mqueue file system on /dev/mqueue, which Docker mounts),
no-new-privileges, the default seccomp profile, and pids / memory (no swap) / CPU caps. The runner's source is
the container's command (``python3 -I -S -c <source>``: nothing of the service's file system is mounted, so a
service that itself runs in a container needs no host path), and it is PID 1 (no docker-init: as PID 1 it reaps
orphans and no signal from inside reaches it); it starts as uid 0 of the container holding only
``RUNNER_CAPABILITIES`` and runs judge harnesses and candidate programs as two host uids of the slot's own
(``sandboxes._uids``: never shared by two live slots of this process, of either backend, nor with a slot of
another service on the host or the engine), without capabilities. Jobs go to its stdin and
results come back on its stdout, both over the container's attach socket (stdout and stderr arrive multiplexed
in 8-byte-header frames, since there is no TTY); a result line longer than ``config.result_line_bytes`` is the
runner's failure, never a bigger buffer. The docker SDK is blocking: its calls run in a dedicated thread pool.

Containers carry ``rlvr.sandbox=1`` and ``rlvr.owner`` labels (the owner names this process, or its container
when it runs in one of the engine); orphans of a dead owner are reaped at start and periodically
(``sandboxes._reaper``). The slot uid block is claimed on the engine too (``sandboxes._claims``), so services in
containers that share the engine but no lock dir never share a uid.

A restarted engine (dockerd) kills every container: a job whose runner went away is diagnosed with the engine
(unreachable, its container gone, or killed by a signal from outside rather than the memory cap) and fails with
``SandboxLost``, never as the program's fault; an idle slot whose stream ended is replaced before it gets a job;
and the pool keeps starting slots until the engine answers again (``sandboxes._pool``). The SDK's connection pool
drops connections the old engine closed, so the client needs no reconnect. ``stop_signal`` is SIGKILL: the
runner ignores every signal it can, so a SIGTERM would only make the engine wait before it kills.
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
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors

from sandboxes._claims import EngineClaims
from sandboxes._pool import SlotPool
from sandboxes._reaper import (
    OWNER_LABEL,
    SANDBOX_LABEL,
    current_owner,
    detect_owner,
    reap_orphans,
    remove_container,
)
from sandboxes._uids import SlotUids, UidPool, release_uid_block, renew_uid_block, slot_uid_pool
from sandboxes.base import Job, JobResult, SandboxError, SandboxLost, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.languages import LANGUAGES, available_languages

__all__ = ["INSTANCE_LABEL", "MAX_ARG_BYTES", "DockerSandbox", "connect_engine", "runner_source"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

RUNNER_PATH = Path(__file__).with_name("runner.py")
# Linux's MAX_ARG_STRLEN (32 pages of 4 KiB, the NUL included): the longest single argument execve takes. The
# runner's source is one argument of the container's command, on whatever kernel runs the engine.
MAX_ARG_BYTES = 32 * 4096
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
GONE_SETTLE_S = 2.0  # how long a runner's end may take to show in its container's state
KILLED_FROM_OUTSIDE = frozenset({128 + 9, 128 + 15})  # SIGKILL, SIGTERM: nothing inside can send them to PID 1


def runner_source(path: Path = RUNNER_PATH) -> str:
    """The runner's source, which travels as the container's command; SandboxUnavailable when it cannot."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SandboxUnavailable(f"the runner script {path} is missing: {exc}", backend=DockerSandbox.name) from exc
    size = len(source.encode("utf-8")) + 1
    if size > MAX_ARG_BYTES:
        raise SandboxUnavailable(
            f"the runner script {path} is {size} bytes: it is passed as one argument of the container's command, "
            f"and Linux takes at most {MAX_ARG_BYTES} bytes in one; make it smaller",
            backend=DockerSandbox.name,
        )
    return source


class _AttachChannel:
    """One resident runner, spoken to over its container's attach socket."""

    def __init__(
        self,
        container_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_destroy: Callable[[], Awaitable[None]],
        line_limit: int,
        why_gone: Callable[[], Awaitable[str | None]],
    ) -> None:
        self.container_id = container_id
        self._reader = reader
        self._writer = writer
        self._line_limit = line_limit
        self._on_destroy = on_destroy
        self._why_gone = why_gone  # the engine's doing (a reason), or None: the runner's own end
        self._stdout = bytearray()
        self._stderr_tail = b""
        self._destroyed = False

    def alive(self) -> bool:
        return not self._destroyed and not self._reader.at_eof()

    async def write_line(self, data: bytes) -> None:
        try:
            self._writer.write(data if data.endswith(b"\n") else data + b"\n")
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise await self._gone(f"the runner's stdin is closed: {exc}") from exc

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
            if size <= self._line_limit:  # the engine sends small frames; a huge one is not read into memory
                return stream, await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            stderr = self._stderr_tail.decode(errors="replace").strip()
            raise await self._gone(f"the runner is gone; stderr: {stderr!r}") from exc
        raise EOFError(f"oversized result line: a frame of {size} bytes")

    async def _gone(self, what: str) -> Exception:
        """The error for a runner whose stream ended: SandboxLost when the engine took it away."""
        reason = await self._why_gone()
        where = f"container {self.container_id[:12]}"
        if reason is not None:
            return SandboxLost(f"{where} was lost: {reason}", backend=DockerSandbox.name)
        return EOFError(f"{what} ({where})")

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
    path = _engine_socket(base_url)
    if path is not None:
        # checked first: the SDK leaks its socket when it cannot connect at all
        _probe_unix_socket(path, DockerSandbox.name)
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


def _engine_socket(base_url: str | None) -> str | None:
    """The engine's unix socket, when it is reached through one."""
    url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL
    return url.removeprefix("unix://") if url.startswith("unix://") else None


def _connect_unix(path: str) -> None:
    """Raise OSError unless the unix socket at ``path`` takes a connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        probe.connect(path)


def _probe_unix_socket(path: str, backend: str) -> None:
    if not os.path.exists(path):
        raise SandboxUnavailable(f"no Docker engine reachable: {path} does not exist", backend=backend)
    try:
        _connect_unix(path)
    except OSError as exc:
        raise SandboxUnavailable(f"no Docker engine answers on {path}: {exc}", backend=backend) from exc


class DockerSandbox:
    """Runs jobs in a warm pool of containers; see the module docstring for the lock-down."""

    name = "docker"

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._here = current_owner()  # until start asks the engine whether this process runs in a container
        self._owner = self._here.label()
        self._runner_source = ""
        self._claims: EngineClaims | None = None
        self._uid_pool: UidPool | None = None
        self._unremoved: set[str] = set()  # containers whose removal failed (an engine that was away)
        self._closing = False
        self._engine_socket = _engine_socket(self.config.docker_base_url)
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
        self._runner_source = runner_source()
        self._client = await self._call(self._connect)
        await self._call(self._check_image)
        self._here = await self._call(detect_owner, self._client)
        self._owner = self._here.label()
        self._reaped += await self._call(reap_orphans, self._client, self._here)
        claims = EngineClaims(self._client, self._here, self.config.image)
        self._uid_pool = await self._call(slot_uid_pool, self.config, claims)
        self._claims = claims  # held from here on: close() gives it back
        languages = await self._call(self._probe_languages)
        self._pool = SlotPool(self.name, self._start_channel, self.config, languages=languages)
        await self._pool.start()
        self._reaper = asyncio.create_task(self._maintain())

    async def run(self, job: Job) -> JobResult:
        if self._pool is None:
            raise SandboxError("the docker sandbox is not started", backend=self.name)
        return await self._pool.run(job)

    async def close(self) -> None:
        """Stop every container this sandbox started (idle or busy); idempotent."""
        self._closing = True
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
            await asyncio.to_thread(self._release_uid_block)
            await asyncio.to_thread(self._client.close)
            self._client = None

    def _release_uid_block(self) -> None:
        if self._claims is None or self._uid_pool is None:
            return
        claims, self._claims = self._claims, None
        try:
            release_uid_block(self._uid_pool, claims)
        except SandboxError as exc:  # the reaper removes it once this process is gone
            logger.warning("docker: %s", exc)

    def stats(self) -> dict[str, Any]:
        pool_stats = self._pool.stats() if self._pool is not None else {"backend": self.name}
        return {
            **pool_stats,
            "image": self.config.image,
            "owner": self._owner,
            "instance": self._instance,
            "orphans_reaped": self._reaped,
            "separation": "uid",
            "uids": self._uid_range(),
        }

    def _uid_range(self) -> str:
        """The slot uid block this sandbox lends from ("" before start): for telling services apart."""
        if self._uid_pool is None:
            return ""
        return f"{self._uid_pool.first}-{self._uid_pool.first + self._uid_pool.size - 1}"

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
        """The container's command: the resident runner as PID 1 (its source inline: no file of the service's
        is mounted), told which uids the slot's processes get."""
        return [
            *("python3", "-I", "-S", "-c", self._runner_source, "--work-base", WORK_DIR, "--kill-strays"),
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
            "name": f"rlvr-sandbox-{self._here.slug()}-{self._instance}-{next(self._names)}",
            "labels": {SANDBOX_LABEL: "1", OWNER_LABEL: self._owner, INSTANCE_LABEL: self._instance},
            "stdin_open": True,
            "tty": False,
            "user": "0:0",  # the runner switches each process to the slot's harness or candidate uid
            "working_dir": WORK_DIR,
            "environment": {"HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp"},
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {WORK_DIR: tmpfs_options, "/tmp": tmpfs_options},
            "stop_signal": "SIGKILL",  # the runner ignores SIGTERM: an engine that stops it need not wait
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

    def _reachable(self) -> None:
        """Raise OSError when the engine's socket takes no connection (a dockerd restarting): asked through the
        SDK instead, each call would fail as well, and leak the SDK's socket."""
        if self._engine_socket is not None:
            _connect_unix(self._engine_socket)

    def _remove_container(self, container_id: str) -> None:
        self._reachable()
        remove_container(self._client, container_id)

    async def _diagnose(self, container_id: str) -> str | None:
        if self._closing:
            return "the sandbox is closing"
        try:
            return await self._call(self._why_gone, container_id)
        except RuntimeError:  # the executor is shut down: close() is under way
            return "the sandbox is closing"

    def _why_gone(self, container_id: str) -> str | None:
        """Why a runner's stream ended when it was the engine's doing, never the program's: the engine does not
        answer, the container is gone, or it was killed by a signal from outside (not by its memory cap); None
        otherwise (the runner's own end, or the memory cap: a program may cause those)."""
        deadline = time.monotonic() + GONE_SETTLE_S
        while True:
            try:
                self._reachable()
                state = self._client.api.inspect_container(container_id)["State"]
            except docker.errors.NotFound:
                return "its container was removed"
            except (docker.errors.DockerException, OSError) as exc:
                return f"the Docker engine does not answer ({exc})"
            if not state.get("Running") and not state.get("Restarting"):
                break
            if time.monotonic() > deadline:  # still running: its stream broke, not the runner
                return None
            time.sleep(0.1)
        code = state.get("ExitCode")
        if code in KILLED_FROM_OUTSIDE and not state.get("OOMKilled"):
            return f"its container was killed from outside (exit {code}; a restarted engine, or an operator)"
        return None

    def _remove_own_containers(self) -> None:
        try:
            self._reachable()
            # this instance's only: several sandboxes in one process share the owner label
            filters = {"label": [f"{OWNER_LABEL}={self._owner}", f"{INSTANCE_LABEL}={self._instance}"]}
            for container in self._client.api.containers(all=True, filters=filters):
                self._remove_container(container["Id"])
        except (docker.errors.DockerException, OSError) as exc:  # reaped once this process is gone
            logger.warning("docker: could not remove this sandbox's containers: %s", exc)

    # --- pool plumbing

    async def _start_channel(self) -> _AttachChannel:
        uid_pool = self._uid_pool
        if uid_pool is None:
            raise SandboxError("the docker sandbox is not started", backend=self.name)
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
            except (docker.errors.DockerException, OSError) as exc:  # tried again periodically, and at close
                logger.warning("docker: could not remove container %s: %s", container_id[:12], exc)
                self._unremoved.add(container_id)
            uid_pool.give_back(uids)

        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        except BaseException:
            sock.close()
            await asyncio.shield(on_destroy())
            raise
        why_gone = functools.partial(self._diagnose, container_id)
        return _AttachChannel(container_id, reader, writer, on_destroy, self.config.result_line_bytes, why_gone)

    def _launch(self, uids: SlotUids) -> tuple[str, socket.socket]:
        """Create, attach to and start one container (attached first, so no output can be missed)."""
        self._reachable()
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

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            try:
                await self._call(self._maintenance_round)
            except (docker.errors.DockerException, OSError, SandboxError) as exc:  # the next round tries again
                logger.warning("docker: periodic maintenance failed: %s", exc)

    def _maintenance_round(self) -> None:
        """Reap orphans, remove what an absent engine kept us from removing, renew the uid claim."""
        self._reachable()
        self._reaped += reap_orphans(self._client, self._here)
        for container_id in list(self._unremoved):
            self._remove_container(container_id)
            self._unremoved.discard(container_id)
        if self._uid_pool is not None and self._claims is not None:
            if not renew_uid_block(self._uid_pool, self._claims):
                logger.error("docker: another service took this one's slot uid block %s", self._uid_pool.name)
