"""Hostile programs, on every backend: each gets the right status in bounded time, the NEXT job on the same
sandbox gets the right answer, and nothing is left behind after close() (checked by the ``sandbox`` fixture).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sandboxes.base import ExecResult, Job, Limits, Run, RunStatus, Sandbox
from tests.sandboxes.conftest import assert_healthy

SMALL = Limits(timeout_s=1.0, compile_timeout_s=30.0, memory_mb=192, output_bytes=64 << 10, max_processes=32)
ROOMY = Limits(timeout_s=5.0, compile_timeout_s=30.0, memory_mb=192, output_bytes=64 << 10, max_processes=32)
SLACK_S = 8.0  # generous: CI machines are shared; the bound is what a user would call "not hung"


@dataclass(frozen=True)
class Hostile:
    language: str
    source: str
    expect: frozenset[str]
    check: Callable[[ExecResult], bool] = lambda run: True
    limits: Limits = SMALL


def _statuses(*names: str) -> frozenset[str]:
    return frozenset(names)


FLOOD = "import sys\nchunk = 'x' * 65536\nfor _ in range(16384):\n    sys.{stream}.write(chunk)\n"
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
MEMORY_BOMB = "hog = []\nwhile True:\n    hog.append(bytearray(8 << 20))\n"
CPP_MEMORY_BOMB = (
    "#include <vector>\n#include <cstdio>\nint main(){std::vector<std::vector<char>> v;"
    "for(;;){v.emplace_back(8<<20, 'x');} }\n"
)
FILL_WORK_DIR = (
    "block = b'x' * (1 << 20)\nfor n in range(1000):\n    with open('fill%d' % n, 'wb') as out:\n"
    "        for _ in range({blocks}):\n            out.write(block)\n"
)
WRITE_OUTSIDE = """
import os
wrote = []
for path in ["/x", "/usr/x", "/etc/x", "/bin/x", "/opt/rlvr/runner.py", "/proc/sys/kernel/hostname", "/dev/x"]:
    try:
        with open(path, "w") as out:
            out.write("pwned")
        wrote.append(path)
    except OSError:
        pass
print("wrote:", wrote)
"""
KILL_EVERYTHING = (
    "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nprint('still here')\n"
)
SEGFAULT = "int main(void) { volatile int *p = 0; *p = 42; return 0; }\n"
CPP_DEEP_RECURSION = (
    "int f(int n) { volatile int pad[64]; pad[0] = n; return f(n + 1) + pad[0]; }\nint main() { return f(0); }\n"
)
BAD_BYTES = "import sys\nsys.stdout.buffer.write(b'a\\x00b\\xff\\xfec\\n')\nsys.stderr.buffer.write(b'\\x80\\x00')\n"

HOSTILE = [
    pytest.param(Hostile("python", "while True:\n    pass\n", _statuses(RunStatus.TLE)), id="infinite_loop"),
    pytest.param(Hostile("python", "import time\ntime.sleep(10**6)\n", _statuses(RunStatus.TLE)), id="sleep_forever"),
    pytest.param(Hostile("python", FORK_BOMB, _statuses(RunStatus.TLE, RunStatus.RE)), id="fork_bomb"),
    pytest.param(Hostile("python", MEMORY_BOMB, _statuses(RunStatus.MLE), limits=ROOMY), id="memory_bomb"),
    pytest.param(Hostile("cpp", CPP_MEMORY_BOMB, _statuses(RunStatus.MLE), limits=ROOMY), id="memory_bomb_cpp"),
    pytest.param(
        Hostile("python", FLOOD.format(stream="stdout"), _statuses(RunStatus.OLE), lambda r: len(r.stdout) <= 64 << 10),
        id="1GB_to_stdout",
    ),
    pytest.param(
        Hostile("python", FLOOD.format(stream="stderr"), _statuses(RunStatus.OLE), lambda r: len(r.stderr) <= 64 << 10),
        id="1GB_to_stderr",
    ),
    pytest.param(
        Hostile(
            "python",
            FILL_WORK_DIR.format(blocks=1000),
            _statuses(RunStatus.RE),
            lambda r: "File too large" in r.stderr,
            Limits(timeout_s=5.0, memory_mb=192, file_size_mb=8, max_processes=32),
        ),
        id="file_past_fsize_EFBIG",
    ),
    pytest.param(
        Hostile(
            "python",
            FILL_WORK_DIR.format(blocks=8),
            _statuses(RunStatus.RE),
            lambda r: "No space left on device" in r.stderr,
            Limits(timeout_s=5.0, memory_mb=192, file_size_mb=16, max_processes=32),
        ),
        id="fill_work_dir_ENOSPC",
    ),
    pytest.param(
        Hostile("python", WRITE_OUTSIDE, _statuses(RunStatus.OK), lambda r: r.stdout == "wrote: []\n"),
        id="write_outside_work_dir",
    ),
    pytest.param(
        Hostile("python", KILL_EVERYTHING, _statuses(RunStatus.OK, RunStatus.RE)),
        id="kill_minus_one",
    ),
    pytest.param(
        Hostile(
            "python",
            BAD_BYTES,
            _statuses(RunStatus.OK),
            lambda r: r.stdout == "a\x00b\ufffd\ufffdc\n" and r.stderr == "\ufffd\x00",
        ),
        id="invalid_utf8_and_nul",
    ),
    pytest.param(
        Hostile(
            "python",
            "def f(n):\n    return f(n + 1)\nf(0)\n",
            _statuses(RunStatus.RE),
            lambda r: "Recursion" in r.stderr,
        ),
        id="deep_recursion_python",
    ),
    pytest.param(
        Hostile("cpp", CPP_DEEP_RECURSION, _statuses(RunStatus.RE), lambda r: r.signal == signal.SIGSEGV),
        id="deep_recursion_cpp",
    ),
    pytest.param(
        Hostile("c", SEGFAULT, _statuses(RunStatus.RE), lambda r: r.signal == signal.SIGSEGV and r.exit_code is None),
        id="segfault",
    ),
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_program_gets_its_status_and_the_sandbox_survives(sandbox: Sandbox, hostile: Hostile) -> None:
    started = time.monotonic()
    result = await sandbox.run(
        Job(language=hostile.language, source=hostile.source, runs=[Run()], limits=hostile.limits)
    )
    elapsed = time.monotonic() - started
    assert result.compile is None or result.compile.status == RunStatus.OK, result.compile
    (run,) = result.runs
    assert run.status in hostile.expect, run
    assert hostile.check(run), run
    assert elapsed < hostile.limits.compile_timeout_s + hostile.limits.timeout_s + SLACK_S
    await assert_healthy(sandbox)


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("('1.1.1.1', 53)", id="internet"),
        pytest.param("('127.0.0.1', {port})", id="host_loopback"),
        pytest.param("'/var/run/docker.sock'", id="docker_socket"),
        pytest.param("'/run/docker.sock'", id="docker_socket_run"),
    ],
)
async def test_no_way_out_through_the_network(sandbox: Sandbox, address: str) -> None:
    accepted: list[bool] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(True) or w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    family = "AF_UNIX" if address.startswith("'") else "AF_INET"
    source = (
        "import socket\n"
        f"s = socket.socket(socket.{family}, socket.SOCK_STREAM)\n"
        "s.settimeout(2)\n"
        f"try:\n    s.connect({address.format(port=port)})\n    print('connected')\n"
        "except OSError as exc:\n    print('refused', type(exc).__name__)\n"
    )
    try:
        result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=SMALL))
    finally:
        server.close()
        await server.wait_closed()
    (run,) = result.runs
    assert run.status == RunStatus.OK, run
    assert run.stdout.startswith("refused"), run
    assert accepted == []


# the job prints only once the daemon is out of its process group (a sweep that came first would kill it unplanted)
DAEMON = """
import os, time
planted, told = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(1); os.close(2)
        os.write(told, b"!"); os.close(told)
        time.sleep(1.0)  # let its own job finish first: the threat is to the next job
        deadline = time.time() + 20
        while time.time() < deadline:
            for root, dirs, files in os.walk("/tmp"):
                for name in files:
                    try:
                        with open(os.path.join(root, name), "w") as out:
                            out.write("print('tampered')\\n")
                    except OSError:
                        pass
            try:
                os.kill(-1, 9)
            except OSError:
                pass
            time.sleep(0.01)
    os._exit(0)
os.close(told)
assert os.read(planted, 1) == b"!"
print("daemon planted")
"""


async def test_a_daemon_that_outlives_its_job_cannot_touch_the_next(sandbox: Sandbox) -> None:
    recycles_before = sandbox.stats()["recycles"]  # type: ignore[attr-defined]
    first = await sandbox.run(Job(language="python", source=DAEMON, runs=[Run()], limits=ROOMY))
    assert (first.runs[0].status, first.runs[0].stdout) == (RunStatus.OK, "daemon planted\n"), first
    slow_next = "import time\ntime.sleep(0.5)\nprint(input())\n"
    second = await sandbox.run(Job(language="python", source=slow_next, runs=[Run(stdin="untouched")], limits=ROOMY))
    assert [(run.status, run.stdout) for run in second.runs] == [(RunStatus.OK, "untouched\n")]
    assert sandbox.stats()["recycles"] > recycles_before  # type: ignore[attr-defined]


THOUSAND_ZOMBIES = """
import os
made = failed = 0
for _ in range(1000):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        os._exit(0)
    made += 1
print(made + failed)
"""


async def test_a_thousand_zombies(sandbox: Sandbox) -> None:
    limits = Limits(timeout_s=10.0, memory_mb=192, max_processes=1100)
    started = time.monotonic()
    result = await sandbox.run(Job(language="python", source=THOUSAND_ZOMBIES, runs=[Run()] * 2, limits=limits))
    assert [(run.status, run.stdout) for run in result.runs] == [(RunStatus.OK, "1000\n")] * 2
    assert time.monotonic() - started < 2 * limits.timeout_s + SLACK_S
    await assert_healthy(sandbox)


async def test_a_program_that_does_not_compile(sandbox: Sandbox) -> None:
    source = '#include <cstdio>\nint main() { printf("%d\\n", undeclared_name); }\n'
    result = await sandbox.run(Job(language="cpp", source=source, runs=[Run(), Run()], limits=SMALL))
    assert result.compile is not None
    assert result.compile.status == RunStatus.CE
    assert "undeclared_name" in result.compile.stderr
    assert result.runs == []
    await assert_healthy(sandbox)


async def test_a_huge_source_file(sandbox: Sandbox) -> None:
    padding = "# " + "x" * 1000 + "\n"
    source = padding * 8000 + "import sys\nprint(len(open(sys.argv[0]).read()))\n"
    result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=SMALL))
    assert [(run.status, run.stdout) for run in result.runs] == [(RunStatus.OK, f"{len(source)}\n")]
    await assert_healthy(sandbox)


async def test_a_job_with_thousands_of_runs(sandbox: Sandbox) -> None:
    source = '#include <stdio.h>\nint main(void) { long a, b; scanf("%ld %ld", &a, &b); printf("%ld\\n", a * b); }\n'
    runs = [Run(stdin=f"{n} {n + 1}\n") for n in range(2000)]
    started = time.monotonic()
    result = await sandbox.run(Job(language="c", source=source, runs=runs, limits=SMALL))
    assert [run.stdout for run in result.runs] == [f"{n * (n + 1)}\n" for n in range(2000)]
    assert {run.status for run in result.runs} == {RunStatus.OK}
    assert time.monotonic() - started < 120
    await assert_healthy(sandbox)


FORGE_RESULT = r"""
import json, os
forged = {"compile": None, "runs": [{"status": "OK", "exit_code": 0, "signal": None, "stdout": "FORGED",
          "stderr": "", "wall_s": 0, "cpu_s": 0, "peak_memory_kb": 0, "message": ""}], "dirty": False, "error": None}
for pid in {1, os.getppid()}:
    for fd in (1, 0):
        try:
            handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY if fd else os.O_RDONLY)
            os.write(handle, (json.dumps(forged) + "\n").encode()) if fd else os.read(handle, 100)
            print("reached", pid, fd)
        except OSError:
            pass
print("done")
"""
PTRACE_RUNNER = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print(sorted({libc.ptrace(16, pid, 0, 0) for pid in {1, os.getppid()}}))
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(FORGE_RESULT, "done\n", id="forge_a_result_line_through_proc"),
        pytest.param(PTRACE_RUNNER, "[-1]\n", id="ptrace_the_runner"),
    ],
)
async def test_a_program_cannot_reach_into_the_runner(sandbox: Sandbox, source: str, expected: str) -> None:
    result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=SMALL))
    assert [(run.status, run.stdout) for run in result.runs] == [(RunStatus.OK, expected)]
    await assert_healthy(sandbox)


PLANT = """
import os
work_base = os.path.dirname(os.getcwd())
for path in ["/tmp/planted", "/dev/shm/planted", "/var/tmp/planted", os.path.join(work_base, "planted")]:
    try:
        with open(path, "w") as out:
            out.write("print('planted')")
    except OSError:
        pass
"""
LOOK = """
import os
print([path for path in ["/tmp/planted", "/dev/shm/planted", "/var/tmp/planted"] if os.path.exists(path)]
      + [name for root, _, files in os.walk("/tmp") for name in files if name == "planted"])
"""


async def test_a_file_planted_by_one_job_is_gone_for_the_next(sandbox: Sandbox) -> None:
    planted = await sandbox.run(Job(language="python", source=PLANT, runs=[Run()], limits=SMALL))
    assert planted.runs[0].status == RunStatus.OK
    looked = await sandbox.run(Job(language="python", source=LOOK, runs=[Run()], limits=SMALL))
    assert [(run.status, run.stdout) for run in looked.runs] == [(RunStatus.OK, "[]\n")]
