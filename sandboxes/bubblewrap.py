"""The bubblewrap backend: the resident-runner contract without a daemon, for hosts and pods with no Docker.

Each slot of the warm pool is one ``bwrap`` process running ``python3 -I -S runner.py`` as the sandbox's PID 1
(``--as-pid-1``: it reaps orphans, and ``kill -9 -1`` from a program cannot reach it). Two modes, chosen at
start and reported by ``stats()["separation"]``:

- ``"uid"`` (the service runs as root with CAP_SYS_ADMIN): the runner is uid 0 of the host with exactly
  CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE and CAP_KILL (effective, permitted and
  bounding set; bwrap keeps CAP_SETPCAP for one step so that ``setpriv`` can trim the bounding set), with
  no-new-privileges, and runs judge harnesses and candidate programs as two uids of the slot's own
  (``sandboxes._uids``: distinct across every slot of the process). No user namespace (the two uids must be
  real): a seccomp filter (``sandboxes._seccomp``) refuses new user namespaces instead of ``--disable-userns``.
  Pid, net, ipc, uts and cgroup namespaces are new per instance.
- ``"none"`` (otherwise): today's unprivileged mode, every namespace unshared including the user namespace
  (``--disable-userns``), one non-root uid (``config.uid``) for runner and programs alike; when the
  service is root without CAP_SYS_ADMIN, bwrap itself is started as that uid (``setpriv``).

Both modes:

- no network at all, not even loopback to the host; a fresh IPC namespace per instance, with an mqueue file
  system on ``/dev/mqueue`` (the runner empties it after every job);
- the host's ``/usr`` read-only with ``/usr/local`` hidden under an empty read-only tmpfs (toolchains come from
  ``/usr/bin``), the few ``/etc`` pieces the toolchains need (``ETC_PIECES``) and nothing else of the host's
  configuration; the root and ``/dev`` read-only; a size-capped tmpfs on ``/tmp`` for the work dirs;
- ``--die-with-parent`` and ``--new-session``: nothing outlives the service, no TIOCSTI into a terminal;
- one cgroup per slot (``sandboxes._cgroup``) capping the memory (no swap) and processes of the whole instance
  at ``config.container_memory_mb`` / ``config.container_pids``, as Docker does for a container. The bwrap
  process joins it before it forks anything (a ``sh`` writes its own pid into ``cgroup.procs``, then execs
  bwrap); the cgroup is removed when the slot is destroyed. This needs root on cgroup v1, and on cgroup v2
  either root in a cgroup whose controllers can be enabled for its children or a delegated subtree named by
  ``config.cgroup_parent``. Where no cgroup can be made the backend still runs, with per-process rlimits only:
  it logs why once and ``stats()["cgroup"]`` says ``"none"`` with ``"cgroup_reason"``.

Per-run limits (rlimits, wall clock, output caps) are the runner's job; the pool (``sandboxes._pool``)
recycles a slot after a breach, a dirty run or ``max_jobs_per_slot`` jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sandboxes._cgroup import CgroupLimits, CgroupTree, CgroupUnavailable, SlotCgroup, find_cgroup_tree
from sandboxes._pool import SlotPool
from sandboxes._seccomp import userns_filter
from sandboxes._uids import SlotUids, UidPool, slot_uid_pool
from sandboxes.base import Job, JobResult, SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.languages import available_languages

__all__ = ["BubblewrapSandbox", "bwrap_argv"]

logger = logging.getLogger(__name__)

RUNNER_SOURCE = Path(__file__).with_name("runner.py")
RUNNER_INSIDE = "/opt/rlvr/runner.py"
WORK_BASE_INSIDE = "/tmp/rlvr"
SANDBOX_PATH = "/usr/bin:/bin"  # /usr/local is hidden inside
LAUNCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
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
RUNNER_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL")
CAP_SYS_ADMIN = 21
# The launcher: join each cgroup.procs named before "--" (before bwrap forks anything), then exec the rest.
JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
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


def _file_system(config: SandboxConfig, runner: Path) -> list[str]:
    hide_local = ["--perms", "0555", "--tmpfs", "/usr/local", "--remount-ro", "/usr/local"]
    # bwrap 0.8 makes the missing parents of a bind's destination mode 0700: made first, they are 0755, so
    # that the harness and candidate uids can reach what is bound below them
    parents = ["--dir", "/etc", "--dir", str(Path(RUNNER_INSIDE).parent)]
    return [
        *("--ro-bind", "/usr", "/usr", *(hide_local if Path("/usr/local").is_dir() else [])),
        *_root_links(),
        *parents,
        *_etc_binds(),
        *("--proc", "/proc", "--dev", "/dev", "--mqueue", "/dev/mqueue"),
        *("--perms", "1777", "--size", str(config.work_tmpfs_mb << 20), "--tmpfs", "/tmp"),
        *("--ro-bind", str(runner), RUNNER_INSIDE, "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"),
    ]


def _runner_command(config: SandboxConfig) -> list[str]:
    return [config.python_path, "-I", "-S", RUNNER_INSIDE, "--work-base", WORK_BASE_INSIDE, "--scratch", "/tmp"]


def _separated_argv(
    config: SandboxConfig, bwrap: str, runner: Path, uids: SlotUids, setpriv: str, seccomp_fd: int | None
) -> list[str]:
    caps = [arg for cap in (*RUNNER_CAPABILITIES, "CAP_SETPCAP") for arg in ("--cap-add", cap)]
    bounding = ",".join(["-all", *(f"+{cap.removeprefix('CAP_').lower()}" for cap in RUNNER_CAPABILITIES)])
    return [
        bwrap,
        *("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"),
        *("--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL", *caps),
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        *("--hostname", "sandbox", "--clearenv", "--setenv", "PATH", SANDBOX_PATH),
        *_file_system(config, runner),
        *(setpriv, "--inh-caps=-all", f"--bounding-set={bounding}", "--"),
        *_runner_command(config),
        *("--kill-strays", "--harness-uid", str(uids.harness), "--candidate-uid", str(uids.candidate)),
        *("--gid", str(config.gid)),
    ]


def _unprivileged_argv(config: SandboxConfig, bwrap: str, runner: Path) -> list[str]:
    uid, gid = str(config.uid), str(config.gid)
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] if os.geteuid() == 0 else []
    return [
        *drop,
        bwrap,
        *("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1"),
        *("--uid", uid, "--gid", gid, "--hostname", "sandbox", "--clearenv", "--setenv", "PATH", SANDBOX_PATH),
        *_file_system(config, runner),
        *_runner_command(config),
        "--kill-strays",
    ]


def bwrap_argv(
    config: SandboxConfig,
    bwrap: str,
    runner: Path,
    *,
    uids: SlotUids | None = None,
    setpriv: str = "/usr/bin/setpriv",
    seccomp_fd: int | None = None,
    cgroup: SlotCgroup | None = None,
) -> list[str]:
    """The full command line of one sandbox instance (its resident runner included).

    With ``uids`` the instance separates uids (the service must be root); without, it is unprivileged. A
    ``cgroup`` is joined by a ``sh`` that then execs bwrap.
    """
    if uids is not None:
        argv = _separated_argv(config, bwrap, runner, uids, setpriv, seccomp_fd)
    else:
        argv = _unprivileged_argv(config, bwrap, runner)
    return argv if cgroup is None else ["/bin/sh", "-c", JOIN_CGROUPS, "sh", *cgroup.procs_files, "--", *argv]


def can_separate_uids() -> bool:
    """Whether this process can start sandboxes whose runner is root with its own capabilities."""
    if os.geteuid() != 0:
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    effective = next((line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), "0")
    return bool(int(effective, 16) >> CAP_SYS_ADMIN & 1)


def _remove_stale_runner_dirs() -> None:
    """Staged runners of services that died without close() (their bwrap processes died with them)."""
    for path in Path(tempfile.gettempdir()).glob(f"{STAGE_PREFIX}*-*"):
        pid = path.name.removeprefix(STAGE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _oversized(limit: int) -> EOFError:
    return EOFError(f"oversized result line: the runner sent more than {limit} bytes without a newline")


class _BwrapChannel:
    """The runner's stdin / stdout of one bwrap process; its stderr is kept (a tail) to explain a death."""

    def __init__(
        self, process: asyncio.subprocess.Process, line_limit: int, on_destroy: Callable[[], Awaitable[None]]
    ) -> None:
        self._process = process
        self._line_limit = line_limit
        self._on_destroy = on_destroy
        self._stderr_tail = b""
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._destroyed = False

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
        except ValueError as exc:  # past the stream's limit (config.result_line_bytes)
            raise _oversized(self._line_limit) from exc
        if not line.endswith(b"\n"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 1.0)
            await asyncio.sleep(0)
            raise self._gone("the runner exited")
        return line

    def alive(self) -> bool:
        stdout = self._process.stdout
        return not self._destroyed and self._process.returncode is None and not (stdout and stdout.at_eof())

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self._process.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        await self._on_destroy()


class BubblewrapSandbox:
    """A warm pool of bwrap instances; see the module docstring for what each one is allowed."""

    name = "bubblewrap"

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._pool: SlotPool | None = None
        self._runner_dir: str | None = None
        self._uids: UidPool | None = None  # set when uids are separated
        self._setpriv = ""
        self._seccomp: bytes | None = None
        self._cgroups: CgroupTree | None = None
        self._cgroup_reason = "not started"

    def _find_tools(self) -> str:
        bwrap = shutil.which(self.config.bwrap_path)
        if bwrap is None:
            raise SandboxUnavailable(f"bwrap not found ({self.config.bwrap_path!r})", backend=self.name)
        if not os.access(self.config.python_path, os.X_OK):
            raise SandboxUnavailable(f"no interpreter for the runner at {self.config.python_path}", backend=self.name)
        self._setpriv = shutil.which("setpriv", path=SANDBOX_PATH) or ""
        if os.geteuid() == 0 and not self._setpriv:
            raise SandboxUnavailable("running as root needs setpriv (util-linux) in /usr/bin", backend=self.name)
        return bwrap

    def _stage_runner(self) -> Path:
        """A world-readable copy of the runner: an unprivileged bwrap must be able to open it."""
        _remove_stale_runner_dirs()
        self._runner_dir = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")
        os.chmod(self._runner_dir, 0o755)
        staged = Path(self._runner_dir) / "runner.py"
        shutil.copyfile(RUNNER_SOURCE, staged)
        os.chmod(staged, 0o644)
        return staged

    def _find_cgroups(self) -> None:
        try:
            self._cgroups = find_cgroup_tree(self.config.cgroup_parent)
        except CgroupUnavailable as exc:
            self._cgroup_reason = str(exc)
            logger.warning("bubblewrap: no cgroup per sandbox, so no memory cap over a whole sandbox: %s", exc)

    def _choose_separation(self) -> None:
        if not can_separate_uids():
            return
        self._uids = slot_uid_pool(self.config)
        self._seccomp = userns_filter()
        if self._seccomp is None:
            logger.warning("bubblewrap: no seccomp filter for %s: programs can make user namespaces", os.uname())

    async def start(self) -> None:
        bwrap = self._find_tools()
        runner = self._stage_runner()
        try:
            self._choose_separation()
            self._find_cgroups()
            languages = available_languages(lambda tool: shutil.which(tool, path=SANDBOX_PATH) is not None)
            start_channel = functools.partial(self._start_channel, bwrap, runner)
            self._pool = SlotPool(self.name, start_channel, self.config, languages=languages)
            await self._pool.start()
        except BaseException:
            self._pool = None
            self._remove_runner()
            raise

    async def _start_channel(self, bwrap: str, runner: Path) -> _BwrapChannel:
        uids = self._uids.take() if self._uids is not None else None
        cgroup: SlotCgroup | None = None

        async def on_destroy() -> None:
            if cgroup is not None and not await cgroup.remove():
                logger.warning("bubblewrap: the cgroup %s still has processes; left in place", cgroup.dirs[0])
            if uids is not None and self._uids is not None:
                self._uids.give_back(uids)

        try:
            cgroup = self._make_cgroup()
            process = await self._spawn(bwrap, runner, uids, cgroup)
        except BaseException:
            await asyncio.shield(on_destroy())
            raise
        return _BwrapChannel(process, self.config.result_line_bytes, on_destroy)

    def _make_cgroup(self) -> SlotCgroup | None:
        if self._cgroups is None:
            return None
        limits = CgroupLimits(memory_bytes=self.config.container_memory_mb << 20, pids=self.config.container_pids)
        try:
            return self._cgroups.create(limits)
        except OSError as exc:
            raise SandboxError(f"cannot make the sandbox's cgroup: {exc}", backend=self.name) from exc

    async def _spawn(
        self, bwrap: str, runner: Path, uids: SlotUids | None, cgroup: SlotCgroup | None
    ) -> asyncio.subprocess.Process:
        seccomp_fd = None
        if uids is not None and self._seccomp is not None:
            seccomp_fd, writer = os.pipe()
            os.write(writer, self._seccomp)  # a few hundred bytes: the pipe's buffer holds them
            os.close(writer)
        argv = bwrap_argv(
            self.config, bwrap, runner, uids=uids, setpriv=self._setpriv, seccomp_fd=seccomp_fd, cgroup=cgroup
        )
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": LAUNCH_PATH},
                limit=self.config.result_line_bytes,
                start_new_session=True,
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
            )
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)

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
    def size(self) -> int:
        return self.config.pool_size

    @property
    def languages(self) -> tuple[str, ...]:
        return () if self._pool is None else self._pool.languages or ()

    def stats(self) -> dict[str, Any]:
        pool = {"backend": self.name, "started": False} if self._pool is None else self._pool.stats()
        cgroup = {"cgroup": "none", "cgroup_reason": self._cgroup_reason}
        if self._cgroups is not None:
            cgroup = {"cgroup": self._cgroups.version}
        return {**pool, "separation": "uid" if self._uids is not None else "none", **cgroup}
