"""The bubblewrap backend: the resident-runner contract without a daemon, for hosts and pods with no Docker.

Each slot of the warm pool is one ``bwrap`` process running ``python3 -S runner.py`` as the sandbox's PID 1
(``--as-pid-1``: it reaps orphans, and ``kill -9 -1`` from a program cannot reach it) with:

- every namespace unshared (user, pid, net, ipc, uts, cgroup): no network at all, not even loopback to the host;
- the host's ``/usr`` (toolchains included), the ``/etc`` pieces the toolchains need, and the runner bound
  read-only; the root and ``/dev`` remounted read-only; a size-capped tmpfs on ``/tmp`` for the work dirs;
- a non-root uid/gid inside (``config.sandbox_uid``) with no capabilities and no further user namespaces; when
  the service runs as root, bwrap itself is started as that uid (``setpriv``), so even the namespace's owner
  on the host is unprivileged;
- ``--die-with-parent`` and ``--new-session``: nothing outlives the service, no TIOCSTI into a terminal.

Per-run limits (rlimits, wall clock, output caps) are the runner's job; the pool (``sandboxes._pool``)
recycles a slot after a breach, a dirty run or ``max_jobs_per_slot`` jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sandboxes._pool import SlotPool
from sandboxes.base import Job, JobResult, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.languages import available_languages

__all__ = ["BubblewrapSandbox"]

RUNNER_SOURCE = Path(__file__).with_name("runner.py")
RUNNER_INSIDE = "/opt/rlvr/runner.py"
WORK_BASE_INSIDE = "/tmp/rlvr"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
MERGED_USR = ("bin", "lib", "lib64", "lib32", "libx32", "sbin")
ETC_PIECES = (
    "alternatives",  # /usr/bin/java -> /etc/alternatives/java -> the JDK
    "java-17-openjdk",
    "java-21-openjdk",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
)
STDERR_TAIL_BYTES = 4096
STAGE_PREFIX = "rlvr-bwrap-"


def _root_links() -> list[str]:
    """Recreate merged-/usr symlinks (/bin -> usr/bin), or bind the real dirs on hosts without merged /usr."""
    args: list[str] = []
    for name in MERGED_USR:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


def _etc_binds() -> list[str]:
    args: list[str] = []
    for name in ETC_PIECES:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def bwrap_argv(config: SandboxConfig, bwrap: str, runner: Path) -> list[str]:
    """The full command line of one sandbox instance (its resident runner included)."""
    uid, gid = str(config.sandbox_uid), str(config.sandbox_gid)
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] if os.geteuid() == 0 else []
    return [
        *drop,
        bwrap,
        *("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1"),
        *("--uid", uid, "--gid", gid, "--hostname", "sandbox", "--clearenv", "--setenv", "PATH", SANDBOX_PATH),
        *("--ro-bind", "/usr", "/usr", *_root_links(), *_etc_binds()),
        *("--proc", "/proc", "--dev", "/dev", "--size", str(config.work_tmpfs_mb << 20), "--tmpfs", "/tmp"),
        *("--ro-bind", str(runner), RUNNER_INSIDE, "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"),
        *(config.python_path, "-I", "-S", RUNNER_INSIDE, "--work-base", WORK_BASE_INSIDE),
        *("--scratch", "/tmp", "--kill-strays"),
    ]


def _remove_stale_runner_dirs() -> None:
    """Staged runners of services that died without close() (their bwrap processes died with them)."""
    for path in Path(tempfile.gettempdir()).glob(f"{STAGE_PREFIX}*-*"):
        pid = path.name.removeprefix(STAGE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


class _BwrapChannel:
    """The runner's stdin / stdout of one bwrap process; its stderr is kept (a tail) to explain a death."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._stderr_tail = b""
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(65536):
            self._stderr_tail = (self._stderr_tail + chunk)[-STDERR_TAIL_BYTES:]

    def _gone(self, what: str) -> EOFError:
        tail = self._stderr_tail.decode("utf-8", "replace").strip()
        return EOFError(f"{what} (exit status {self._process.returncode}){': ' + tail if tail else ''}")

    async def write_line(self, data: bytes) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self._gone("the runner closed its stdin") from exc

    async def read_line(self) -> bytes:
        assert self._process.stdout is not None
        try:
            line = await self._process.stdout.readline()
        except ValueError as exc:  # a line past the stream limit: the runner broke its result budget
            raise self._gone(f"oversized result line: {exc}") from exc
        if not line.endswith(b"\n"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 1.0)
            await asyncio.sleep(0)
            raise self._gone("the runner exited")
        return line

    async def destroy(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self._process.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task


class BubblewrapSandbox:
    """A warm pool of bwrap instances; see the module docstring for what each one is allowed."""

    name = "bubblewrap"

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._pool: SlotPool | None = None
        self._runner_dir: str | None = None
        self._bwrap: str | None = None

    def _find_tools(self) -> str:
        bwrap = shutil.which(self.config.bwrap_path)
        if bwrap is None:
            raise SandboxUnavailable(f"bwrap not found ({self.config.bwrap_path!r})", backend=self.name)
        if not os.access(self.config.python_path, os.X_OK):
            raise SandboxUnavailable(f"no interpreter for the runner at {self.config.python_path}", backend=self.name)
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            raise SandboxUnavailable("running as root needs setpriv to start bwrap unprivileged", backend=self.name)
        return bwrap

    def _stage_runner(self) -> Path:
        """A world-readable copy of the runner: the unprivileged bwrap must be able to open it."""
        _remove_stale_runner_dirs()
        self._runner_dir = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")
        os.chmod(self._runner_dir, 0o755)
        staged = Path(self._runner_dir) / "runner.py"
        shutil.copyfile(RUNNER_SOURCE, staged)
        os.chmod(staged, 0o644)
        return staged

    async def start(self) -> None:
        self._bwrap = self._find_tools()
        argv = bwrap_argv(self.config, self._bwrap, self._stage_runner())
        languages = available_languages(lambda tool: shutil.which(tool, path=SANDBOX_PATH) is not None)
        self._pool = SlotPool(self.name, lambda: self._start_channel(argv), self.config, languages=languages)
        try:
            await self._pool.start()
        except SandboxUnavailable:
            self._pool = None
            self._remove_runner()
            raise

    async def _start_channel(self, argv: list[str]) -> _BwrapChannel:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            limit=(self.config.max_result_mb << 20) + (1 << 20),
            start_new_session=True,
        )
        return _BwrapChannel(process)

    async def run(self, job: Job) -> JobResult:
        if self._pool is None:
            raise SandboxUnavailable("the bubblewrap sandbox is not started", backend=self.name)
        return await self._pool.run(job)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._remove_runner()

    def _remove_runner(self) -> None:
        if self._runner_dir is not None:
            shutil.rmtree(self._runner_dir, ignore_errors=True)
            self._runner_dir = None

    @property
    def languages(self) -> tuple[str, ...]:
        return () if self._pool is None else self._pool.languages or ()

    def stats(self) -> dict[str, Any]:
        return {"backend": self.name, "started": False} if self._pool is None else self._pool.stats()
