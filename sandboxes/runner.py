"""The resident runner: a standalone, stdlib-only Python 3 script that runs INSIDE a sandbox instance.

It imports nothing from the project and needs no file of its own: the bubblewrap backend bind-mounts it read-only
and starts ``python3 -I -S runner.py --work-base /work --scratch /tmp --kill-strays [--harness-uid H
--candidate-uid C --gid G]``; the docker backend passes its source as the command (``python3 -I -S -c <source>
--work-base ...``), so that a service running in a container needs no host path to give its sandboxes. It
should be the sandbox's PID 1 (bwrap ``--as-pid-1``; a container whose command is the runner, without
``--init``): then it reaps every orphan, and no signal from inside the sandbox can stop it.

Three parties, three uids (``separation: "uid"``): the runner is uid 0 of the sandbox with only the
capabilities it needs (SETUID, SETGID, CHOWN, FOWNER, DAC_OVERRIDE, KILL); candidate programs (compile step and
runs) run as ``--candidate-uid``; judge harnesses run as ``--harness-uid``. A candidate can therefore neither
signal, ptrace nor read the memory or files of the runner or of a harness. Without the uid flags (an
unprivileged backend) everything runs as the runner's own uid (``separation: "none"``, a weaker mode).

Protocol (newline-delimited JSON, UTF-8; the runner's stdout carries nothing else)::

    runner -> host, once at start:
      {"ready": true, "protocol": 3, "pid": 1, "spawn": "shell" | "preexec", "separation": "uid" | "none"}
    host -> runner, one job a line:
      {"source_file": "main.cpp", "source": "...",
       "files": {"rel/path": "text"},            # beside the source, for every run
       "env": {"NAME": "value"},                   # on top of PATH, HOME, TMPDIR, LANG
       "compile": null | {"argv": [...], "limits": L},
       "run": {"argv": [...], "limits": L},
       "runs": [RUN, ...],
       "stop_on_first_failure": false,
       "result_bytes": 67108864,                   # budget for all runs' outputs together
       "keep_build": {"max_bytes": N, "max_files": M},   # optional: send the compiled build back (see below)
       "prebuilt": {"files": ARTIFACT}}            # optional: install this as the build, compile nothing
    RUN = {"stdin": "...", "argv": [...],          # argv = (command or run.argv) + argv
           "command": [...],                        # optional: replaces run.argv for this run
           "files": {...},                          # written into this run's work dir
           "report": false,                         # true: the program gets a report pipe (RLVR_OUT_FD)
           "fetch": ["out.txt", ...],               # optional: files of the work dir to send back (see below)
           "harness": null | {"argv": [...], "files": {...}}}
    L = {"timeout_s": 2.0, "memory_mb": 256, "address_space_mb": 256, "output_bytes": 1048576,
         "file_size_mb": 64, "max_processes": 64, "stack_mb": 256}
    runner -> host, one result a line (and, after it, one artifact line when "build" says "follows"):
      {"compile": R | null, "runs": [R, ...], "dirty": false, "error": null,
       "build": null | {"cacheable": bool, "follows": bool, "files": int, "bytes": int, "reason": str}}
      {"files": ARTIFACT}                          # only after a result whose build "follows"
    ARTIFACT = {"rel/path": {"x": bool, "data": b64}, ...}   # the build dir's regular files, nothing else
    R = {"status": "OK|TLE|MLE|OLE|RE|CE|SANDBOX_ERROR", "exit_code": int|null, "signal": int|null,
         "stdout": b64, "stderr": b64, "report": b64|null, "harness": H|null,
         "wall_s": float, "cpu_s": float, "peak_memory_kb": int, "message": str,
         "files": {"out.txt": b64, ...}}          # only in a run that asked to "fetch"
    H = {"exit_code": int|null, "signal": int|null, "stderr": b64}

Outputs travel base64-encoded (raw bytes, at most 4/3 of their size: NUL bytes or invalid UTF-8 cannot inflate
or break a line). ``"error"`` is set only when the runner failed on a job it was given wrong (a bad file name).

Compile cache (the host's, ``sandboxes._pool``): a job with ``"keep_build"`` and a compile step gets ``"build"``
in its result. The build is packed right after the compile, once it is sealed and before any run could touch it:
only regular files with a plain relative name (no symlink, fifo or device; the executable bit kept), at most
``max_files`` of them and ``max_bytes`` in all, else ``"cacheable": false`` with the reason. A compile error is
cacheable (without files) when the compiler exited on its own with a failure; a compile that ran out of time,
memory or output, was killed, or left a process behind is not. A job with ``"prebuilt"`` skips the source, the
files and the compile: ``install_build`` writes the artifact into a fresh build dir (refusing absolute names,
``..``, odd names, anything through a symlink; each file created with O_CREAT|O_EXCL|O_NOFOLLOW), which is then
sealed like a freshly compiled one; its result has ``"compile": null``.

Fetched files (``"fetch"``, SandboxFusion's ``fetch_files``): after a run ends, whatever its status, once its
processes are killed and before its work dir is removed, each named file is read and sent back under its name in
the run's ``"files"``. A name that is not plain (absolute, ``..``, odd characters: as for an artifact) is skipped;
each dir on the way is entered by a descriptor without following symlinks and the file itself is opened with
O_NOFOLLOW, so a symlink the program planted is never followed; only a regular file the program itself could
read (its own, or readable by everyone) is sent; a missing one is simply absent. The files count against the
job's ``"result_bytes"`` like outputs: one that does not fit in what is left is absent, the run's result is not
changed by it. At most ``FETCH_MAX_FILES`` names are looked at.

A harnessed run (``"harness"``) is two processes joined by two pipes: the program (uid C, in the run's work
dir, with ``RLVR_IN_FD`` / ``RLVR_OUT_FD``: requests in, replies out) and the harness (uid H, in a dir only it
can read, with the other ends plus ``RLVR_REPORT_FD``: the verdict pipe, which only the harness ever holds).
The run lasts until the harness exits; the program's group is then killed. A program that exits on its own
before the harness is done is judged by its own exit (RE, MLE...). A run with ``"report"`` gives the program
itself a pipe to the runner (call tests: the program's return value is data judged on the host).

For each job: a fresh dir under the work base; the compile (if any) runs in ``build`` as uid C, after which
``build`` is handed to root and made read-only; every run gets a fresh work dir owned by uid C holding
hard links to the build's files (so no copy can fill the disk), a new session, rlimits (AS, CPU, FSIZE, NPROC,
NOFILE, STACK, CORE=0), a hard wall clock (SIGKILL to the group) and a byte cap per output stream (past it:
SIGKILL, OLE). After each run every other process in the sandbox is killed (``--kill-strays``; one that
escaped the group marks the job ``"dirty"``: the host recycles the instance) and the ``--scratch`` dirs are
emptied; after each job SysV IPC objects, POSIX message queues and the candidate uid's keyrings are removed,
so nothing passes from one job to the next.
"""

from __future__ import annotations

import os
import sys

# Beside this file lives the project's sandboxes/select.py, which would shadow the stdlib's select (selectors
# imports it) if the runner is started from its own directory without -I / -P. Started with -c there is no file
# (and -I keeps the current dir off sys.path).
if "__file__" in globals():
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import argparse  # noqa: E402
import base64  # noqa: E402
import ctypes  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

Json = dict[str, Any]

PROTOCOL = 3
EXIT_GRACE_S = 0.5  # after the program exits, how long its pipes may stay open (an escaped child holds them)
CHUNK = 65536
REPORT_BYTES = 1 << 20  # a harness's verdict; a call test's report is capped by the run's output_bytes instead
HARNESS_STDERR_BYTES = 64 << 10
MEMORY_MARKERS = (
    b"MemoryError",
    b"std::bad_alloc",
    b"java.lang.OutOfMemoryError",
    b"JavaScript heap out of memory",
    b"Fatal process out of memory",
    b"runtime: out of memory",
    b"memory allocation of",
    b"Cannot allocate memory",
)
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
NOFILE = 256
PR_SET_DUMPABLE = 4
SHELL = "/bin/sh"
# dash's ulimit takes one limit at a time. The OOM score: when a sandbox's cgroup runs out of memory, the kernel
# kills a program, never the runner.
SHELL_LIMITS = (
    "echo 1000 2>/dev/null >/proc/self/oom_score_adj; "
    'ulimit -c 0 && ulimit -v "$1" && ulimit -s "$2" && ulimit -t "$3" && ulimit -f "$4" && ulimit -n "$5" '
    '&& ulimit -p "$6" && shift 6 && exec "$@"'
)
# Signals a program could send the runner: each gets a handler that does nothing (a handler, not SIG_IGN: an
# ignored disposition would be inherited by every program across exec). SIGCHLD keeps its default (wait4 needs
# it), SIGPIPE too (the host went away: die), and faults are the kernel's to deliver.
UNTOUCHED_SIGNALS = {"SIGCHLD", "SIGPIPE", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS"}
IPC_RMID = 0
KEYCTL_CLEAR = 7
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
MQUEUE_DIR = "/dev/mqueue"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def result(status: str, message: str = "", **fields: Any) -> Json:
    base: Json = {"status": status, "exit_code": None, "signal": None, "stdout": "", "stderr": ""}
    base.update({"report": None, "harness": None, "wall_s": 0.0, "cpu_s": 0.0, "peak_memory_kb": 0})
    base["message"] = message
    base.update(fields)
    return base


@dataclass(frozen=True)
class Identity:
    """Who a process runs as; uid None: the runner's own (no separation)."""

    uid: int | None = None
    gid: int | None = None

    def chown(self, path: str) -> None:
        if self.uid is not None:
            os.lchown(path, self.uid, self.gid if self.gid is not None else -1)


SELF = Identity()


def safe_path(root: str, name: str) -> str:
    if not name or name.startswith("/") or "\x00" in name or ".." in name.split("/"):
        raise ValueError(f"bad file name {name!r}")
    return os.path.join(root, name)


def write_files(root: str, files: dict[str, str], owner: Identity = SELF) -> None:
    for name, text in files.items():
        path = safe_path(root, name)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
            walk = parent
            while os.path.abspath(walk) != os.path.abspath(root):
                owner.chown(walk)
                walk = os.path.dirname(walk)
        if os.path.lexists(path):  # an earlier file (a hard link to the build) is replaced, never written through
            os.unlink(path)
        with open(path, "x", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)
        owner.chown(path)


def make_dir(path: str, owner: Identity, mode: int) -> str:
    os.mkdir(path, mode)
    os.chmod(path, mode)
    owner.chown(path)
    return path


def remove_tree(path: str) -> bool:
    """Remove a work dir even when the program took the permissions away; False if something remains."""
    if not os.path.lexists(path):
        return True
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        for dirpath, dirnames, _ in os.walk(path):
            for name in (".", *dirnames):
                try:
                    os.chmod(os.path.join(dirpath, name), 0o700)
                except OSError:
                    pass
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def remove_entry(path: str) -> bool:
    return remove_tree(path) if os.path.isdir(path) and not os.path.islink(path) else unlink(path)


def unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def seal_tree(root: str, separated: bool) -> None:
    """After the compile: the build belongs to root and nobody may write it (runs only read and execute it)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (".", *dirnames, *filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                os.unlink(path)  # a fifo or socket left by the compile step: nothing a run needs
                continue
            if separated:
                os.lchown(path, 0, 0)
            directory = stat.S_ISDIR(info.st_mode)
            os.chmod(path, 0o755 if directory else stat.S_IMODE(info.st_mode) & 0o555 | 0o444)


def link_tree(source: str, target: str, owner: Identity) -> None:
    """A run's work dir: the build's dirs recreated for the program, its files hard-linked (read-only)."""
    for dirpath, dirnames, filenames in os.walk(source):
        relative = os.path.relpath(dirpath, source)
        here = target if relative == "." else os.path.join(target, relative)
        if relative != ".":
            make_dir(here, owner, 0o755)
        for name in filenames:
            os.link(os.path.join(dirpath, name), os.path.join(here, name), follow_symlinks=False)
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                os.symlink(os.readlink(os.path.join(dirpath, name)), os.path.join(here, name))
                dirnames.remove(name)


ARTIFACT_NAME_CHARS = 1024  # longest relative path in an artifact
ARTIFACT_DEPTH = 16
# A compile that failed for one of these reasons may not fail the next time: its CE is not kept.
UNSTEADY_COMPILE_MARKERS = (b"internal compiler error", b"out of memory", b"Killed", b"virtual memory exhausted")


def plain_name(name: Any) -> bool:
    """A relative path of plain components: no absolute path, no ``.``/``..``/empty component, no control
    character, not too long or deep. Both packing and unpacking an artifact accept only these."""
    if not isinstance(name, str) or not name or len(name) > ARTIFACT_NAME_CHARS or name.startswith("/"):
        return False
    if any(ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) <= 0xDFFF for char in name):
        return False  # control characters, and lone surrogates (a file name that is not UTF-8)
    parts = name.split("/")
    return len(parts) <= ARTIFACT_DEPTH and all(part not in ("", ".", "..") for part in parts)


def pack_build(root: str, max_bytes: int, max_files: int) -> tuple[Json | None, int, str]:
    """The build dir's regular files as an artifact ({name: {"x", "data"}}) and their bytes, or (None, 0, why
    not). Symlinks,
    fifos, sockets and devices are left out; a file with another hard link, an odd name, too many files or too
    many bytes make the build not cacheable (it still runs: the cache is only an optimisation)."""
    files: Json = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):  # never follows a symlinked dir
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, root)
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                continue
            if not plain_name(relative):
                return None, 0, f"an odd file name in the build: {relative!r}"[:300]
            if info.st_nlink != 1:
                return None, 0, f"{relative!r} has other hard links"[:300]
            if len(files) >= max_files:
                return None, 0, f"more than {max_files} files in the build"
            total += info.st_size
            if total > max_bytes:
                return None, 0, f"the build holds more than {max_bytes} bytes"
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None, 0, f"{relative!r} changed under the packer"[:300]
                data = read_at_most(fd, info.st_size + 1)
            finally:
                os.close(fd)
            if len(data) != info.st_size:
                return None, 0, f"{relative!r} changed size under the packer"[:300]
            files[relative] = {"x": bool(info.st_mode & 0o111), "data": b64(data)}
    return files, total, ""


FETCH_MAX_FILES = 1024  # names a run's "fetch" may look at; the rest are ignored
FETCH_ENTRY_BYTES = 16  # what a fetched file costs in the result line besides its name and data (quotes, padding)


def fetch_files(root: str, names: Any, budget: int, owner: Identity) -> tuple[Json, int]:
    """The work dir's files named in a run's ``"fetch"``, base64-encoded by name, and the bytes they cost from the
    result budget. Skipped (absent from the answer, never an error): a name that is not plain, a missing file,
    anything but a regular file, a symlink anywhere on the way, a file ``owner`` could not read, a file that does
    not fit in what is left of ``budget``."""
    files: Json = {}
    spent = 0
    if not isinstance(names, list):
        return files, 0
    for name in names[:FETCH_MAX_FILES]:
        if not plain_name(name) or name in files:
            continue
        cost = len(json.dumps(name)) + FETCH_ENTRY_BYTES
        room = budget - spent - cost
        if room < 0:
            continue
        try:
            data = read_plain_file(root, name, room, owner)
        except OSError:
            continue
        if data is not None:
            files[name] = b64(data)
            spent += cost + len(data)
    return files, spent


def read_plain_file(root: str, name: str, limit: int, owner: Identity) -> bytes | None:
    """The bytes of the regular file ``root/name``, walked without following any symlink; None when it is not a
    regular file, ``owner`` could not read it, or it holds more than ``limit`` bytes. OSError when it cannot be
    opened (missing, a symlink, a file where a dir should be)."""
    *dirs, leaf = name.split("/")
    dirfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for part in dirs:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
            os.close(dirfd)
            dirfd = inner
        # O_NONBLOCK: a fifo in its place must not block the runner (fstat then turns it away)
        fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    finally:
        os.close(dirfd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        # the runner reads as root: a file of another uid (a hard link the program made) only if anyone may read it
        if owner.uid is not None and info.st_uid != owner.uid and not info.st_mode & stat.S_IROTH:
            return None
        data = read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    return None if len(data) > limit else data


def read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(CHUNK * 16, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def install_build(root: str, files: Any) -> None:
    """Write an artifact into the fresh, empty dir ``root``; ValueError for anything but plain relative names of
    regular files. Every dir is entered by a descriptor without following symlinks and every file is created
    new (O_CREAT|O_EXCL|O_NOFOLLOW), so no name in an artifact can write outside ``root``."""
    if not isinstance(files, dict):
        raise ValueError("the artifact is not an object")
    for name, entry in files.items():
        if not plain_name(name):
            raise ValueError(f"bad artifact file name {name!r}"[:300])
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), str) or type(entry.get("x")) is not bool:
            raise ValueError(f"bad artifact entry for {name!r}"[:300])
        data = base64.b64decode(entry["data"], validate=True)
        *dirs, leaf = name.split("/")
        dirfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for part in dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=dirfd)
                except FileExistsError:
                    pass
                try:
                    inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
                except OSError as exc:  # a file, or a symlink, where a dir should be
                    raise ValueError(f"bad artifact file name {name!r}: {exc.strerror}"[:300]) from None
                os.close(dirfd)
                dirfd = inner
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(leaf, flags, 0o755 if entry["x"] else 0o644, dir_fd=dirfd)
            except FileExistsError:
                raise ValueError(f"artifact file {name!r} exists already"[:300]) from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        finally:
            os.close(dirfd)


def steady_compile_error(raw: Json) -> bool:
    """Whether a failed compile failed by itself (the compiler exited with an error, not killed, not out of
    time, memory or output): the same source and limits fail the same way again, so the CE may be kept."""
    if raw["status"] != "RE" or raw["exit_code"] is None or raw["signal"] is not None:
        return False
    stderr = base64.b64decode(raw["stderr"])
    return not any(marker in stderr for marker in UNSTEADY_COMPILE_MARKERS)


def rlimit_values(limits: Json) -> dict[int, int]:
    cpu = math.ceil(limits["timeout_s"]) + 1
    return {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_AS: limits["address_space_mb"] << 20,
        resource.RLIMIT_STACK: limits["stack_mb"] << 20,
        resource.RLIMIT_CPU: cpu,
        resource.RLIMIT_FSIZE: limits["file_size_mb"] << 20,
        resource.RLIMIT_NOFILE: NOFILE,
        resource.RLIMIT_NPROC: limits["max_processes"],
    }


def rlimit_setter(limits: Json) -> Callable[[], None]:
    """The slow path, where /bin/sh cannot set the limits."""
    values = rlimit_values(limits)

    def apply() -> None:
        for which, value in values.items():
            resource.setrlimit(which, (value, value))
        try:
            with open("/proc/self/oom_score_adj", "w") as handle:
                handle.write("1000")
        except OSError:
            pass

    return apply


def shell_argv(argv: list[str], limits: Json) -> list[str]:
    """The fast path: /bin/sh sets the rlimits and execs the program."""
    values = rlimit_values(limits)
    numbers = (
        values[resource.RLIMIT_AS] >> 10,
        values[resource.RLIMIT_STACK] >> 10,
        values[resource.RLIMIT_CPU],
        values[resource.RLIMIT_FSIZE] >> 9,
        values[resource.RLIMIT_NOFILE],
        values[resource.RLIMIT_NPROC],
    )
    return [SHELL, "-c", SHELL_LIMITS, "rlvr-limits", *map(str, numbers), *argv]


def shell_limits_work() -> bool:
    """Whether this sandbox's /bin/sh takes ``ulimit -v -s -t -f -n -p`` (dash does; bash spells -p as -u)."""
    probe = {"address_space_mb": 4096, "stack_mb": 8, "timeout_s": 5, "file_size_mb": 8, "max_processes": 4096}
    try:
        done = subprocess.run(shell_argv(["true"], probe), capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and not done.stderr


def find_executable(argv0: str, cwd: str, env: dict[str, str]) -> str | None:
    if "/" in argv0:
        path = os.path.join(cwd, argv0)
        return path if os.access(path, os.X_OK) else None
    return shutil.which(argv0, path=env.get("PATH", BASE_PATH))


@dataclass
class Stream:
    """One pipe the runner drains: what it keeps, its cap, and whether passing the cap is an OLE."""

    name: str
    file: Any
    cap: int
    fatal: bool  # True: past the cap the run is stopped (OLE); False: the rest is read and dropped
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    pidfd: int
    exited_at: float | None = None
    status: int = 0
    usage: Any = None


class Supervisor:
    """Drives the processes of one run in one epoll loop: feeds stdin, drains every pipe with a cap each,
    and notices exits (pidfds)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.streams: dict[int, Stream] = {}
        self.processes: dict[int, Process] = {}  # by pidfd
        self.stdin_fd: int | None = None
        self.stdin_file: Any = None
        self.pending = memoryview(b"")
        self.overflow = False

    def add_process(self, name: str, popen: subprocess.Popen[bytes]) -> Process:
        process = Process(name, popen, os.pidfd_open(popen.pid))
        self.processes[process.pidfd] = process
        self.selector.register(process.pidfd, selectors.EVENT_READ)
        return process

    def add_stream(self, name: str, file: Any, cap: int, fatal: bool) -> None:
        fd = file.fileno()
        os.set_blocking(fd, False)
        self.streams[fd] = Stream(name, file, cap, fatal)
        self.selector.register(fd, selectors.EVENT_READ)

    def feed(self, file: Any, data: bytes) -> None:
        self.pending = memoryview(data)
        if not data:
            file.close()
            return
        self.stdin_file, self.stdin_fd = file, file.fileno()
        os.set_blocking(self.stdin_fd, False)
        self.selector.register(self.stdin_fd, selectors.EVENT_WRITE)

    def close_stdin(self) -> None:
        if self.stdin_fd is not None:
            self.selector.unregister(self.stdin_fd)
            self.stdin_fd = None
            try:
                self.stdin_file.close()
            except OSError:  # a broken pipe: nothing was buffered, writes go through os.write
                pass

    def stop_reading(self, fd: int) -> None:
        self.selector.unregister(fd)
        self.streams[fd].file.close()

    def on_readable(self, fd: int) -> None:
        stream = self.streams[fd]
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.stop_reading(fd)
            del self.streams[fd]
            self.streams[-fd - 1] = stream  # keep its data under a key no live fd has
            return
        room = stream.cap - len(stream.data)
        stream.data += chunk[: max(room, 0)]
        if len(chunk) > room and stream.fatal:
            self.overflow = True

    def on_writable(self, fd: int) -> None:
        try:
            sent = os.write(fd, self.pending[:CHUNK])
        except BlockingIOError:
            return
        except OSError:  # the program closed its stdin: the rest is not needed
            sent = len(self.pending)
        self.pending = self.pending[sent:]
        if not self.pending:
            self.close_stdin()

    def step(self, timeout: float) -> None:
        for key, _ in self.selector.select(max(timeout, 0)):
            fd = key.fd
            if fd in self.processes:
                self.selector.unregister(fd)
                self.processes[fd].exited_at = time.monotonic()
            elif fd == self.stdin_fd:
                self.on_writable(fd)
            elif fd in self.streams:
                self.on_readable(fd)

    def reading(self) -> bool:
        return any(fd >= 0 for fd in self.streams)

    def close(self) -> dict[str, bytes]:
        for fd in [fd for fd in self.streams if fd >= 0]:
            self.stop_reading(fd)
        self.close_stdin()
        self.selector.close()
        for process in self.processes.values():
            os.close(process.pidfd)
        return {stream.name: bytes(stream.data) for stream in self.streams.values()}


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def supervise(supervisor: Supervisor, primary: Process, limits: Json) -> tuple[dict[str, bytes], float, bool]:
    """Run until the primary process exits, a fatal stream overflows, or the wall clock runs out; then kill
    every group and reap every process. (outputs, the primary's wall time, timed out)."""
    started = time.monotonic()
    deadline = started + limits["timeout_s"]
    groups = [process.popen.pid for process in supervisor.processes.values()]
    timed_out = False
    try:
        while primary.exited_at is None and not supervisor.overflow:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            supervisor.step(deadline - now)
        if primary.exited_at is not None:
            for pgid in groups:
                kill_group(pgid)  # children must not keep the pipes open
            grace_end = time.monotonic() + EXIT_GRACE_S
            while supervisor.reading() and not supervisor.overflow and time.monotonic() < grace_end:
                supervisor.step(grace_end - time.monotonic())
    finally:
        for pgid in groups:
            kill_group(pgid)
        outputs = supervisor.close()
    for process in supervisor.processes.values():
        _, process.status, process.usage = os.wait4(process.popen.pid, 0)
        process.popen.returncode = process.status
    wall = (primary.exited_at or time.monotonic()) - started
    return outputs, wall, timed_out


def classify(
    limits: Json, status: int, usage: Any, stderr: bytes, timed_out: bool, overflow: bool
) -> tuple[str, int | None, int | None, str]:
    cpu = usage.ru_utime + usage.ru_stime
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    peak_kb = usage.ru_maxrss
    if overflow:
        return "OLE", code, sig, f"output exceeded {limits['output_bytes']} bytes"
    killed_by_clock = timed_out and sig == signal.SIGKILL  # it may have died on its own just before
    if killed_by_clock or sig == signal.SIGXCPU or cpu >= limits["timeout_s"]:
        return "TLE", code, sig, f"time limit {limits['timeout_s']}s exceeded"
    if code == 0:
        return "OK", code, sig, ""
    near_cap = peak_kb >= 0.9 * limits["memory_mb"] * 1024
    if (sig == signal.SIGKILL and near_cap) or any(marker in stderr[-8192:] for marker in MEMORY_MARKERS):
        return "MLE", code, sig, f"memory limit {limits['memory_mb']} MB exceeded"
    if sig == signal.SIGXFSZ:
        return "RE", code, sig, f"file size limit {limits['file_size_mb']} MB exceeded"
    return "RE", code, sig, f"killed by signal {sig}" if sig else f"exit code {code}"


@dataclass(frozen=True)
class Spawner:
    """Starts a process as a given identity under a run's limits, with extra pipe ends at fixed numbers."""

    fast: bool

    def start(
        self, argv: list[str], cwd: str, env: dict[str, str], limits: Json, who: Identity, fds: dict[str, int]
    ) -> subprocess.Popen[bytes]:
        if find_executable(argv[0], cwd, env) is None:
            raise FileNotFoundError(errno.ENOENT, "no such executable", argv[0])
        env = {**env, **{name: str(fd) for name, fd in fds.items()}}
        separated = who.uid is not None
        return subprocess.Popen(
            shell_argv(argv, limits) if self.fast else argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(fds.values()),
            start_new_session=True,
            preexec_fn=None if self.fast else rlimit_setter(limits),
            user=who.uid if separated else None,
            group=who.gid if separated else None,
            extra_groups=[] if separated else None,
            umask=0o022,
        )


def read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[1]), int(fields[2])


def ancestors(pid: int) -> set[int]:
    chain = set()
    while pid > 0 and pid not in chain:
        chain.add(pid)
        stat_ = read_stat(pid)
        pid = stat_[1] if stat_ else 0
    return chain


def process_result(process: Process, limits: Json, outputs: dict[str, bytes], timed_out: bool, overflow: bool) -> Json:
    state, code, sig, message = classify(
        limits, process.status, process.usage, outputs.get("stderr", b""), timed_out, overflow
    )
    return result(
        state,
        message,
        exit_code=code,
        signal=sig,
        stdout=b64(outputs.get("stdout", b"")),
        stderr=b64(outputs.get("stderr", b"")),
        cpu_s=round(process.usage.ru_utime + process.usage.ru_stime, 6),
        peak_memory_kb=process.usage.ru_maxrss,
    )


class Runner:
    def __init__(
        self,
        work_base: str,
        kill_strays: bool,
        scratch: list[str] | None = None,
        harness: Identity = SELF,
        candidate: Identity = SELF,
    ) -> None:
        self.work_base = work_base
        self.kill_strays = kill_strays
        self.scratch = [os.path.abspath(path) for path in scratch or []]
        self.protected = ancestors(os.getpid())
        self.counter = 0
        self.harness = harness
        self.candidate = candidate
        self.separated = candidate.uid is not None
        os.makedirs(work_base, exist_ok=True)
        if self.separated:  # only the runner creates entries here; programs reach their own dirs by path
            os.chown(work_base, 0, 0)
            os.chmod(work_base, 0o711)
        self.spawner = Spawner(shell_limits_work())

    def reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def sweep(self, pgids: list[int]) -> bool:
        """Kill whatever still runs in the sandbox besides the runner; True if something escaped the groups."""
        escaped = False
        for _ in range(200):
            self.reap()
            if not self.kill_strays:
                return escaped
            alive = []
            for name in os.listdir("/proc"):
                if name.isdigit() and int(name) not in self.protected:
                    stat_ = read_stat(int(name))
                    if stat_ and stat_[0] not in ("Z", "X"):
                        alive.append((int(name), stat_[2]))
            if not alive:
                return escaped
            for pid, pgid in alive:
                escaped = escaped or pgid not in pgids
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.001)
        return True

    def env(self, job: Json, home: str) -> dict[str, str]:
        env = {"PATH": BASE_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.update(job.get("env") or {})
        return env

    def execute(
        self, argv: list[str], cwd: str, env: dict[str, str], stdin: bytes, limits: Json, report: bool = False
    ) -> tuple[Json, int]:
        """Run one candidate process to its end; (result, its process group id or 0 when it never started). With
        ``report`` the program also gets a pipe of its own to report on (a call test's return value)."""
        report_read, report_write = os.pipe() if report else (-1, -1)
        fds = {"RLVR_OUT_FD": report_write} if report else {}
        try:
            popen = self.spawner.start(argv, cwd, env, limits, self.candidate, fds)
        except OSError as exc:
            if report:
                os.close(report_read)
            return result("SANDBOX_ERROR", f"cannot start {argv[0]!r}: {exc}"), 0
        finally:
            if report:
                os.close(report_write)
        supervisor = Supervisor()
        program = supervisor.add_process("program", popen)
        supervisor.add_stream("stdout", popen.stdout, limits["output_bytes"], True)
        supervisor.add_stream("stderr", popen.stderr, limits["output_bytes"], True)
        if report:
            supervisor.add_stream("report", os.fdopen(report_read, "rb", buffering=0), limits["output_bytes"], True)
        supervisor.feed(popen.stdin, stdin)
        outputs, wall, timed_out = supervise(supervisor, program, limits)
        outcome = process_result(program, limits, outputs, timed_out, supervisor.overflow)
        outcome["wall_s"] = round(wall, 6)
        if report:
            outcome["report"] = b64(outputs["report"])
        return outcome, popen.pid

    def compile(self, job: Json, build: str, home: str) -> tuple[Json, int, bool]:
        """(result, process group, whether the result is steady: an OK, or a compile error of its own)."""
        spec = job["compile"]
        outcome, pgid = self.execute(spec["argv"], build, self.env(job, home), b"", spec["limits"])
        steady = outcome["status"] == "OK" or steady_compile_error(outcome)
        if outcome["status"] not in ("OK", "SANDBOX_ERROR"):
            outcome["message"] = f"compilation failed: {outcome['message']}"
            outcome["status"] = "CE"
        return outcome, pgid, steady

    def run_job(self, job: Json) -> Json:
        self.counter += 1
        jobdir = os.path.join(self.work_base, f"job-{self.counter}")
        try:
            outcome = self.build_and_run(job, jobdir)
        finally:
            removed = remove_tree(jobdir) and self.wipe_scratch(work_base=True)
            if self.kill_strays:  # inside a sandbox of its own (its own IPC namespace): never on a bare host
                self.clear_ipc()
        outcome["dirty"] = outcome["dirty"] or not removed
        return outcome

    def wipe_scratch(self, work_base: bool = False) -> bool:
        """Empty the shared writable dirs, so no file planted by one run (in /tmp, say) is there for the next;
        with ``work_base``, between jobs, whatever was left in the work base too."""
        clean = True
        base = os.path.abspath(self.work_base)
        for root in [*self.scratch, *([base] if work_base else [])]:
            for name in os.listdir(root) if os.path.isdir(root) else []:
                path = os.path.join(root, name)
                if path != base and not base.startswith(path + "/"):
                    clean = remove_entry(path) and clean
        return clean

    def clear_ipc(self) -> None:
        """Remove SysV IPC objects and POSIX message queues, and clear the candidate's keyrings: as the candidate
        (their owner), in a child process, when the job left any. Nothing a job left there reaches the next job."""
        if not ipc_left(self.candidate.uid if self.candidate.uid is not None else os.getuid()):
            return
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                uid, gid = self.candidate.uid, self.candidate.gid
                if uid is not None and gid is not None:
                    os.setgroups([])
                    os.setresgid(gid, gid, gid)
                    os.setresuid(uid, uid, uid)
                remove_ipc_objects()
                code = 0
            finally:
                os._exit(code)
        os.waitpid(pid, 0)

    def build_and_run(self, job: Json, jobdir: str) -> Json:
        make_dir(jobdir, SELF, 0o711)
        build = make_dir(os.path.join(jobdir, "build"), self.candidate, 0o755)
        home = make_dir(os.path.join(jobdir, "home"), self.candidate, 0o700)
        compiled: Json | None = None
        runs: list[Json] = []
        dirty, steady = False, False
        prebuilt = job.get("prebuilt")
        if prebuilt is not None:
            install_build(build, prebuilt["files"])
        else:
            write_files(build, job.get("files") or {}, self.candidate)
            write_files(build, {job["source_file"]: job["source"]}, self.candidate)
            if job.get("compile"):
                compiled, pgid, steady = self.compile(job, build, home)
                dirty = self.sweep([pgid])
                self.wipe_scratch()
        seal_tree(build, self.separated)
        kept: Json | None = None
        if job.get("keep_build") and compiled is not None:
            kept = self.keep_build(job["keep_build"], build, compiled, steady and not dirty)
        if compiled is None or compiled["status"] == "OK":
            runs, dirty_runs = self.run_all(job, jobdir, build)
            dirty = dirty or dirty_runs
        return {"compile": compiled, "runs": runs, "dirty": dirty, "error": None, "build": kept}

    def keep_build(self, wanted: Json, build: str, compiled: Json, steady: bool) -> Json:
        """The result's ``"build"``, with the artifact itself under ``"artifact"`` (sent as a line of its own)."""
        kept: Json = {"cacheable": False, "follows": False, "files": 0, "bytes": 0, "reason": ""}
        if not steady:
            return kept | {"reason": "the compile did not end by itself"}
        if compiled["status"] != "OK":
            return kept | {"cacheable": True}  # a compile error: the result alone is kept
        files, size, reason = pack_build(build, int(wanted["max_bytes"]), int(wanted["max_files"]))
        if files is None:
            return kept | {"reason": reason}
        return kept | {"cacheable": True, "follows": True, "files": len(files), "bytes": size, "artifact": files}

    def run_all(self, job: Json, jobdir: str, build: str) -> tuple[list[Json], bool]:
        runs: list[Json] = []
        dirty, budget = False, job.get("result_bytes", 1 << 26)
        output = job["run"]["limits"]["output_bytes"]
        for index, run in enumerate(job.get("runs") or []):
            # the most this run can add (its streams, a report, a harness's), so the result line stays in budget
            worst = output * (3 if run.get("report") else 2)
            worst += REPORT_BYTES + HARNESS_STDERR_BYTES if run.get("harness") else 0
            if budget < worst:
                runs.append(result("OLE", "the job's outputs together exceeded the result budget"))
                continue
            workdir = os.path.join(jobdir, f"run-{index}")
            harness_dir = os.path.join(jobdir, f"harness-{index}")
            try:
                outcome, pgids = self.one_run(job, build, run, workdir, harness_dir)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                outcome, pgids = result("OLE", "the program's files filled the sandbox's work dir"), []
            budget -= sum(len(outcome[key] or "") for key in ("stdout", "stderr", "report")) * 3 // 4
            dirty = self.sweep(pgids) or dirty
            if run.get("fetch"):  # its processes are gone, its work dir not yet
                outcome["files"], spent = fetch_files(workdir, run["fetch"], budget, self.candidate)
                budget -= spent
            dirty = not (remove_tree(workdir) and remove_tree(harness_dir) and self.wipe_scratch()) or dirty
            runs.append(outcome)
            if job.get("stop_on_first_failure") and outcome["status"] != "OK":
                break
        return runs, dirty

    def one_run(self, job: Json, build: str, run: Json, workdir: str, harness_dir: str) -> tuple[Json, list[int]]:
        make_dir(workdir, self.candidate, 0o755)
        link_tree(build, workdir, self.candidate)
        write_files(workdir, run.get("files") or {}, self.candidate)
        argv = list(run.get("command") or job["run"]["argv"]) + list(run.get("argv") or [])
        stdin = (run.get("stdin") or "").encode("utf-8", "surrogatepass")
        limits = job["run"]["limits"]
        env = self.env(job, workdir)
        if run.get("harness"):
            return self.harnessed_run(job, run["harness"], argv, workdir, harness_dir, env, limits)
        outcome, pgid = self.execute(argv, workdir, env, stdin, limits, report=bool(run.get("report")))
        return outcome, [pgid]

    def harnessed_run(
        self,
        job: Json,
        harness: Json,
        argv: list[str],
        workdir: str,
        harness_dir: str,
        env: dict[str, str],
        limits: Json,
    ) -> tuple[Json, list[int]]:
        """The program serves requests on a pipe; the harness (another uid, a private dir) drives it and alone
        holds the verdict pipe."""
        if not self.separated:  # same uid: the program could open the harness's pipes through /proc
            raise ValueError("harnessed runs need uid separation (--harness-uid/--candidate-uid: start as root)")
        make_dir(harness_dir, self.harness, 0o700)
        write_files(harness_dir, harness.get("files") or {}, self.harness)
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        report_read, report_write = os.pipe()
        started: list[subprocess.Popen[bytes]] = []
        try:
            started.append(
                self.spawner.start(
                    argv,
                    workdir,
                    env,
                    limits,
                    self.candidate,
                    {"RLVR_IN_FD": requests_read, "RLVR_OUT_FD": replies_write},
                )
            )
            harness_fds = {"RLVR_IN_FD": replies_read, "RLVR_OUT_FD": requests_write, "RLVR_REPORT_FD": report_write}
            started.append(
                self.spawner.start(
                    list(harness["argv"]), harness_dir, self.env(job, harness_dir), limits, self.harness, harness_fds
                )
            )
        except OSError as exc:
            for popen in started:
                kill_group(popen.pid)
                popen.wait()
            os.close(report_read)
            return result("SANDBOX_ERROR", f"cannot start the run: {exc}"), []
        finally:
            for fd in (requests_read, requests_write, replies_read, replies_write, report_write):
                os.close(fd)
        program_popen, harness_popen = started
        harness_popen.stdin.close()  # type: ignore[union-attr]
        supervisor = Supervisor()
        program = supervisor.add_process("program", program_popen)
        judge = supervisor.add_process("harness", harness_popen)
        supervisor.add_stream("stdout", program_popen.stdout, limits["output_bytes"], True)
        supervisor.add_stream("stderr", program_popen.stderr, limits["output_bytes"], True)
        supervisor.add_stream("harness_stdout", harness_popen.stdout, HARNESS_STDERR_BYTES, False)
        supervisor.add_stream("harness_stderr", harness_popen.stderr, HARNESS_STDERR_BYTES, False)
        supervisor.add_stream("report", os.fdopen(report_read, "rb", buffering=0), REPORT_BYTES, False)
        supervisor.feed(program_popen.stdin, b"")
        outputs, wall, timed_out = supervise(supervisor, judge, limits)
        # The program is judged by its own exit only when it ended before the harness was done with it.
        program_first = program.exited_at is not None and (
            judge.exited_at is None or program.exited_at <= judge.exited_at
        )
        outcome = process_result(program, limits, outputs, timed_out, supervisor.overflow)
        if timed_out:
            outcome.update(status="TLE", message=f"time limit {limits['timeout_s']}s exceeded")
        elif not program_first and not supervisor.overflow:
            outcome.update(status="OK", message="")  # stopped by the runner once the harness was done
        h_code = os.WEXITSTATUS(judge.status) if os.WIFEXITED(judge.status) else None
        h_signal = os.WTERMSIG(judge.status) if os.WIFSIGNALED(judge.status) else None
        outcome["harness"] = {"exit_code": h_code, "signal": h_signal, "stderr": b64(outputs["harness_stderr"])}
        outcome["report"] = b64(outputs["report"])
        outcome["wall_s"] = round(wall, 6)
        return outcome, [program_popen.pid, harness_popen.pid]


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _ipc_ids(kind: str) -> list[int]:
    """Ids of the SysV objects of one kind (shm, msg, sem) in this IPC namespace."""
    try:
        with open(f"/proc/sysvipc/{kind}", encoding="ascii") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return []
    return [int(line.split()[1]) for line in lines if len(line.split()) > 1]


def ipc_left(uid: int) -> bool:
    """Whether anything a program could have left behind exists: a SysV object or an mqueue in this IPC namespace,
    or a key of ``uid`` (/proc/key-users lists the uids that own any; a key lives until its keyring is cleared,
    so a slot whose programs ever made one pays the clean-up after every job)."""
    if any(_ipc_ids(kind) for kind in ("shm", "msg", "sem")):
        return True
    if os.path.isdir(MQUEUE_DIR) and os.listdir(MQUEUE_DIR):
        return True
    try:
        with open("/proc/key-users", encoding="ascii") as handle:
            return any(line.split(":", 1)[0].strip() == str(uid) for line in handle)
    except OSError:
        return True  # cannot tell: clean up


def remove_ipc_objects() -> None:
    """Everything this uid owns that outlives a process: SysV shm / msg / sem, POSIX mqueues, keyring keys."""
    libc = _libc()
    for shmid in _ipc_ids("shm"):
        libc.shmctl(shmid, IPC_RMID, None)
    for msqid in _ipc_ids("msg"):
        libc.msgctl(msqid, IPC_RMID, None)
    for semid in _ipc_ids("sem"):
        libc.semctl(semid, 0, IPC_RMID)
    if os.path.isdir(MQUEUE_DIR):
        for name in os.listdir(MQUEUE_DIR):
            unlink(os.path.join(MQUEUE_DIR, name))
    keyctl = SYS_KEYCTL.get(os.uname().machine)
    if keyctl is not None:
        for keyring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
            libc.syscall(keyctl, KEYCTL_CLEAR, keyring)


def handle(runner: Runner, line: bytes) -> list[Json]:
    """The lines that answer one job: its result, then its artifact when the result's build "follows"."""
    try:
        outcome = runner.run_job(json.loads(line))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            message = "the work dir is full"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return [{"compile": None, "runs": [], "dirty": True, "error": message, "build": None}]
    artifact = outcome["build"].pop("artifact", None) if outcome.get("build") else None
    return [outcome] if artifact is None else [outcome, {"files": artifact}]


def make_undumpable() -> None:
    """Without this, a program sharing the runner's uid (no separation) could open /proc/1/fd/1 and forge a
    result line, read the next jobs from /proc/1/fd/0, or ptrace the runner."""
    libc = _libc()
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed: refusing to run unprotected")


def deafen() -> None:
    """No signal a program can send stops the runner (as PID 1 of its namespace, one with a default
    disposition is dropped by the kernel anyway; Python's own SIGINT handler would not be)."""

    def ignore(signum: int, frame: Any) -> None:
        return None

    untouched = {getattr(signal, name) for name in UNTOUCHED_SIGNALS} | {signal.SIGKILL, signal.SIGSTOP}
    for signum in signal.valid_signals():
        if signum in untouched:
            continue
        try:
            signal.signal(signum, ignore)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def emit(stream: Any, payload: Json) -> None:
    stream.write(json.dumps(payload, ensure_ascii=True).encode("ascii") + b"\n")
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rlvr resident runner (reads JSON jobs on stdin)")
    parser.add_argument("--work-base", required=True, help="a tmpfs dir for the work dirs")
    parser.add_argument("--kill-strays", action="store_true", help="kill every other process after each run")
    parser.add_argument(
        "--scratch", action="append", default=[], help="a writable dir emptied after every run (repeatable)"
    )
    parser.add_argument("--harness-uid", type=int, help="uid of judge harnesses (needs --candidate-uid, root)")
    parser.add_argument("--candidate-uid", type=int, help="uid of candidate programs")
    parser.add_argument("--gid", type=int, help="gid of harnesses and candidates")
    args = parser.parse_args(argv)
    uids = (args.harness_uid, args.candidate_uid, args.gid)
    if any(value is not None for value in uids):
        if None in uids or args.harness_uid == args.candidate_uid or 0 in uids[:2]:
            parser.error("--harness-uid, --candidate-uid and --gid go together; the two uids differ, neither is 0")
        if os.geteuid() != 0:
            parser.error("uid separation needs the runner to start as uid 0 (with CAP_SETUID and CAP_SETGID)")
    deafen()
    make_undumpable()
    harness = Identity(args.harness_uid, args.gid) if args.harness_uid is not None else SELF
    candidate = Identity(args.candidate_uid, args.gid) if args.candidate_uid is not None else SELF
    runner = Runner(args.work_base, args.kill_strays, args.scratch, harness, candidate)
    out = sys.stdout.buffer
    ready = {
        "ready": True,
        "protocol": PROTOCOL,
        "pid": os.getpid(),
        "spawn": "shell" if runner.spawner.fast else "preexec",
    }
    emit(out, ready | {"separation": "uid" if runner.separated else "none"})
    for line in sys.stdin.buffer:
        if line.strip():
            for answer in handle(runner, line):
                emit(out, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
