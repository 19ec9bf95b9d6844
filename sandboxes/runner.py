"""The resident runner: a standalone, stdlib-only Python 3 script that runs INSIDE a sandbox instance.

It imports nothing from the project: backends bind-mount this file read-only into the sandbox and start it as
``python3 -I -S runner.py --work-base /tmp/rlvr --scratch /tmp --kill-strays`` (``--scratch``: writable
dirs emptied after every job). It should be the sandbox's PID 1 (bwrap
``--as-pid-1``; a container whose command is the runner, without ``--init``): then it reaps every orphan, and
``kill(-1, SIGKILL)`` from a program cannot reach it.

Protocol (newline-delimited JSON, UTF-8; the runner's stdout carries nothing else)::

    runner -> host, once at start:  {"ready": true, "protocol": 1, "pid": 1, "spawn": "shell" | "preexec"}
    host -> runner, one job a line:
      {"source_file": "main.cpp", "source": "...",
       "files": {"rel/path": "text"},            # beside the source, for every run
       "env": {"NAME": "value"},                   # on top of PATH, HOME, TMPDIR, LANG
       "compile": null | {"argv": [...], "limits": L},
       "run": {"argv": [...], "limits": L},       # each run's argv = run.argv + runs[i].argv
       "runs": [{"stdin": "...", "argv": [...], "files": {...}}],
       "stop_on_first_failure": false,
       "result_bytes": 268435456}                  # budget for all runs' stdout + stderr together
    L = {"timeout_s": 2.0, "memory_mb": 256, "address_space_mb": 256, "output_bytes": 1048576,
         "file_size_mb": 64, "max_processes": 64, "stack_mb": 256}
    runner -> host, one result a line:
      {"compile": R | null, "runs": [R, ...], "dirty": false, "error": null}
      (compile is null for interpreted languages; a compile that is not OK has status CE and no runs follow;
      with stop_on_first_failure the runs after the first non-OK one are absent)
    R = {"status": "OK|TLE|MLE|OLE|RE|CE|SANDBOX_ERROR", "exit_code": int|null, "signal": int|null,
         "stdout": str, "stderr": str, "wall_s": float, "cpu_s": float, "peak_memory_kb": int, "message": str}

For each job: a fresh dir under the work base holds the source and files; the compile (if any) runs there once;
every run gets a fresh copy of that dir, a new session / process group, rlimits (AS, CPU, FSIZE, NPROC, NOFILE,
STACK, CORE=0; set by ``/bin/sh -c 'ulimit ...; exec'`` so the spawn can use vfork, or by a ``preexec_fn`` where the
shell cannot: "spawn" in the ready line says which), a hard wall clock (SIGKILL to the whole group), and its stdin /
stdout / stderr pumped through one epoll loop with a byte cap per stream (past it: SIGKILL, OLE). After each run the
group is killed and, with ``--kill-strays``, every other process in the sandbox (one that escaped the group, e.g. a
double-forked daemon) is killed and the job reported ``"dirty": true`` so the host recycles the instance.
``"error"`` is set only when the runner itself failed on the job (a bad file name, an unwritable work dir). Output
is decoded with errors="replace", so NUL bytes and invalid UTF-8 cannot break a result line.

The runner makes itself non-dumpable at start: programs share its uid, and would otherwise be able to write a
forged result line into /proc/1/fd/1. After every job the ``--scratch`` dirs are emptied, so a file planted by
one job (in /tmp, say) is gone before the next.
"""

from __future__ import annotations

import os
import sys

# Beside this file lives the project's sandboxes/select.py, which would shadow the stdlib's select (selectors
# imports it) if the runner is started from its own directory without -I / -P.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import argparse  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import IO, Any  # noqa: E402

Json = dict[str, Any]

PROTOCOL = 1
EXIT_GRACE_S = 0.5  # after the program exits, how long its pipes may stay open (an escaped child holds them)
CHUNK = 65536
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
SHELL_LIMITS = (  # dash's ulimit takes one limit at a time
    'ulimit -c 0 && ulimit -v "$1" && ulimit -s "$2" && ulimit -t "$3" && ulimit -f "$4" && ulimit -n "$5" '
    '&& ulimit -p "$6" && shift 6 && exec "$@"'
)


def result(status: str, message: str = "", **fields: Any) -> Json:
    base: Json = {"status": status, "exit_code": None, "signal": None, "stdout": "", "stderr": ""}
    base.update({"wall_s": 0.0, "cpu_s": 0.0, "peak_memory_kb": 0, "message": message})
    base.update(fields)
    return base


def safe_path(root: str, name: str) -> str:
    if not name or name.startswith("/") or "\x00" in name or ".." in name.split("/"):
        raise ValueError(f"bad file name {name!r}")
    return os.path.join(root, name)


def write_files(root: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = safe_path(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)


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
    """The slow path (a preexec_fn forces fork instead of vfork: ~3 ms more per run)."""
    values = rlimit_values(limits)

    def apply() -> None:
        for which, value in values.items():
            resource.setrlimit(which, (value, value))

    return apply


def shell_argv(argv: list[str], limits: Json) -> list[str]:
    """The fast path: /bin/sh sets the rlimits and execs the program (vfork-able, ~1 ms)."""
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


class Pump:
    """Feeds stdin and drains stdout / stderr of one process in one epoll loop, with a cap per stream."""

    def __init__(self, proc: subprocess.Popen[bytes], stdin: bytes, cap: int) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.stdin_pipe: IO[bytes] = proc.stdin
        self.cap = cap
        self.outputs = {"stdout": bytearray(), "stderr": bytearray()}
        self.readers = {proc.stdout.fileno(): ("stdout", proc.stdout), proc.stderr.fileno(): ("stderr", proc.stderr)}
        self.pending = memoryview(stdin)
        self.selector = selectors.DefaultSelector()
        self.pidfd = os.pidfd_open(proc.pid)
        self.exited_at: float | None = None
        self.overflow = False
        for fd in self.readers:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)
        self.selector.register(self.pidfd, selectors.EVENT_READ)
        self.stdin_fd: int | None = None
        if self.pending:
            self.stdin_fd = proc.stdin.fileno()
            os.set_blocking(self.stdin_fd, False)
            self.selector.register(self.stdin_fd, selectors.EVENT_WRITE)
        else:
            self.stdin_pipe.close()

    def close_stdin(self) -> None:
        if self.stdin_fd is not None:
            self.selector.unregister(self.stdin_fd)
            self.stdin_fd = None
            try:
                self.stdin_pipe.close()
            except OSError:  # a broken pipe: nothing was buffered, writes go through os.write
                pass

    def stop_reading(self, fd: int) -> None:
        self.selector.unregister(fd)
        self.readers.pop(fd)[1].close()

    def on_readable(self, fd: int) -> None:
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.stop_reading(fd)
            return
        buffer = self.outputs[self.readers[fd][0]]
        room = self.cap - len(buffer)
        buffer += chunk[:room]
        if len(chunk) > room:
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
            if fd == self.pidfd:
                self.selector.unregister(fd)
                self.exited_at = time.monotonic()
            elif fd == self.stdin_fd:
                self.on_writable(fd)
            elif fd in self.readers:
                self.on_readable(fd)

    def close(self) -> dict[str, bytes]:
        for fd in list(self.readers):
            self.stop_reading(fd)
        self.close_stdin()
        self.selector.close()
        os.close(self.pidfd)
        return {name: bytes(data) for name, data in self.outputs.items()}


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def supervise(
    proc: subprocess.Popen[bytes], stdin: bytes, limits: Json
) -> tuple[dict[str, bytes], int, Any, float, bool, bool]:
    """Pump the process's pipes until it exits, overflows, or runs out of wall clock; kill its group."""
    started = time.monotonic()
    deadline = started + limits["timeout_s"]
    pump = Pump(proc, stdin, limits["output_bytes"])
    timed_out = False
    try:
        while pump.exited_at is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            pump.step(deadline - now)
            if pump.overflow:
                break
        if pump.exited_at is not None:
            kill_group(proc.pid)  # its children must not keep the pipes open
            grace_end = time.monotonic() + EXIT_GRACE_S
            while pump.readers and not pump.overflow and time.monotonic() < grace_end:
                pump.step(grace_end - time.monotonic())
    finally:
        kill_group(proc.pid)
        outputs = pump.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    wall = (pump.exited_at or time.monotonic()) - started
    return outputs, status, usage, wall, timed_out, pump.overflow


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


def spawn(argv: list[str], cwd: str, env: dict[str, str], limits: Json, fast: bool) -> subprocess.Popen[bytes]:
    if find_executable(argv[0], cwd, env) is None:
        raise FileNotFoundError(errno.ENOENT, "no such executable", argv[0])
    return subprocess.Popen(
        shell_argv(argv, limits) if fast else argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=None if fast else rlimit_setter(limits),
    )


def execute(argv: list[str], cwd: str, env: dict[str, str], stdin: bytes, limits: Json, fast: bool) -> tuple[Json, int]:
    """Run one process to its end; (result, its process group id or 0 when it never started)."""
    try:
        proc = spawn(argv, cwd, env, limits, fast)
    except OSError as exc:
        return result("SANDBOX_ERROR", f"cannot start {argv[0]!r}: {exc}"), 0
    outputs, status, usage, wall, timed_out, overflow = supervise(proc, stdin, limits)
    state, code, sig, message = classify(limits, status, usage, outputs["stderr"], timed_out, overflow)
    outcome = result(
        state,
        message,
        exit_code=code,
        signal=sig,
        stdout=outputs["stdout"].decode("utf-8", "replace"),
        stderr=outputs["stderr"].decode("utf-8", "replace"),
        wall_s=round(wall, 6),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 6),
        peak_memory_kb=usage.ru_maxrss,
    )
    return outcome, proc.pid


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
        stat = read_stat(pid)
        pid = stat[1] if stat else 0
    return chain


class Runner:
    def __init__(self, work_base: str, kill_strays: bool, scratch: list[str] | None = None) -> None:
        self.work_base = work_base
        self.kill_strays = kill_strays
        self.scratch = [os.path.abspath(path) for path in scratch or []]
        self.protected = ancestors(os.getpid())
        self.counter = 0
        os.makedirs(work_base, exist_ok=True)
        self.fast = shell_limits_work()

    def reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def sweep(self, run_pgid: int) -> bool:
        """Kill whatever still runs in the sandbox besides the runner; True if something escaped the group."""
        escaped = False
        for _ in range(200):
            self.reap()
            if not self.kill_strays:
                return escaped
            alive = []
            for name in os.listdir("/proc"):
                if name.isdigit() and int(name) not in self.protected:
                    stat = read_stat(int(name))
                    if stat and stat[0] not in ("Z", "X"):
                        alive.append((int(name), stat[2]))
            if not alive:
                return escaped
            for pid, pgid in alive:
                escaped = escaped or pgid != run_pgid
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

    def compile(self, job: Json, build: str, home: str) -> tuple[Json, int]:
        spec = job["compile"]
        outcome, pgid = execute(spec["argv"], build, self.env(job, home), b"", spec["limits"], self.fast)
        if outcome["status"] not in ("OK", "SANDBOX_ERROR"):
            outcome["message"] = f"compilation failed: {outcome['message']}"
            outcome["status"] = "CE"
        return outcome, pgid

    def one_run(self, job: Json, build: str, index: int, run: Json) -> tuple[Json, int, str]:
        workdir = os.path.join(self.work_base, f"run-{self.counter}-{index}")
        shutil.copytree(build, workdir, symlinks=True)
        write_files(workdir, run.get("files") or {})
        argv = list(job["run"]["argv"]) + list(run.get("argv") or [])
        stdin = (run.get("stdin") or "").encode("utf-8", "surrogatepass")
        outcome, pgid = execute(argv, workdir, self.env(job, workdir), stdin, job["run"]["limits"], self.fast)
        return outcome, pgid, workdir

    def run_job(self, job: Json) -> Json:
        self.counter += 1
        jobdir = os.path.join(self.work_base, f"job-{self.counter}")
        try:
            outcome = self.build_and_run(job, jobdir)
        finally:
            removed = remove_tree(jobdir) and self.wipe_scratch()
        outcome["dirty"] = outcome["dirty"] or not removed
        return outcome

    def wipe_scratch(self) -> bool:
        """Empty the shared writable dirs, so no file planted by one job is there for the next one."""
        clean = True
        work_base = os.path.abspath(self.work_base)
        for root in [*self.scratch, work_base]:
            for name in os.listdir(root) if os.path.isdir(root) else []:
                path = os.path.join(root, name)
                if path != work_base:
                    clean = remove_entry(path) and clean
        return clean

    def build_and_run(self, job: Json, jobdir: str) -> Json:
        build, home = os.path.join(jobdir, "build"), os.path.join(jobdir, "home")
        os.makedirs(build)
        os.makedirs(home)
        write_files(build, job.get("files") or {})
        write_files(build, {job["source_file"]: job["source"]})
        compiled: Json | None = None
        runs: list[Json] = []
        dirty = False
        if job.get("compile"):
            compiled, pgid = self.compile(job, build, home)
            dirty = self.sweep(pgid)
        if compiled is None or compiled["status"] == "OK":
            runs, dirty_runs = self.run_all(job, build)
            dirty = dirty or dirty_runs
        return {"compile": compiled, "runs": runs, "dirty": dirty, "error": None}

    def run_all(self, job: Json, build: str) -> tuple[list[Json], bool]:
        runs: list[Json] = []
        dirty, budget = False, job.get("result_bytes", 1 << 28)
        for index, run in enumerate(job.get("runs") or []):
            if budget < 0:
                runs.append(result("SANDBOX_ERROR", "the job's total output exceeded the result budget"))
                continue
            outcome, pgid, workdir = self.one_run(job, build, index, run)
            budget -= len(outcome["stdout"]) + len(outcome["stderr"])
            dirty = self.sweep(pgid) or dirty
            dirty = (not remove_tree(workdir)) or dirty
            runs.append(outcome)
            if job.get("stop_on_first_failure") and outcome["status"] != "OK":
                break
        return runs, dirty


def handle(runner: Runner, line: bytes) -> Json:
    try:
        return runner.run_job(json.loads(line))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            message = "the work dir is full"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return {"compile": None, "runs": [], "dirty": True, "error": message}


def make_undumpable() -> None:
    """Programs run as the runner's uid: without this they could open /proc/1/fd/1 and forge a result line,
    read the next jobs from /proc/1/fd/0, or ptrace the runner."""
    import ctypes  # only here: the runner's one use of it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed: refusing to run unprotected")


def emit(stream: Any, payload: Json) -> None:
    stream.write(json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n")
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rlvr resident runner (reads JSON jobs on stdin)")
    parser.add_argument("--work-base", required=True, help="a tmpfs dir for the work dirs")
    parser.add_argument("--kill-strays", action="store_true", help="kill every other process after each run")
    parser.add_argument(
        "--scratch", action="append", default=[], help="a writable dir emptied after every job (repeatable)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    make_undumpable()
    runner = Runner(args.work_base, args.kill_strays, args.scratch)
    out = sys.stdout.buffer
    spawn_mode = "shell" if runner.fast else "preexec"
    emit(out, {"ready": True, "protocol": PROTOCOL, "pid": os.getpid(), "spawn": spawn_mode})
    for line in sys.stdin.buffer:
        if line.strip():
            emit(out, handle(runner, line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
