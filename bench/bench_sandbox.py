"""Code sandbox benchmark: what isolation costs per program, measured side by side in one run.

Two workloads, each a stream of "units" driven with the same concurrency by every method:
  python  a trivial program (read two numbers, print their sum) run once on one stdin;
  cpp     a small C++ program compiled once, then run on 10 stdin tests.

Methods:
  a  host       bare subprocess on the host, no isolation (the floor)
  b  run        `docker run --rm` per program run (plus one per compile), same lock-down flags as d
  c  exec       `docker exec` per program run (plus one per compile) into one warm locked-down container
  d  docker     our docker backend (warm containers, resident runner): one Job per unit
  e  bwrap      our bubblewrap backend: one Job per unit

    .venv/bin/python bench/bench_sandbox.py [--quick] [--concurrency 2] [--methods a,b,c,d,e]

Targets: d within 2x of a (median latency and throughput), and d >= 10x faster than b.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxes.base import Job, Run, RunStatus, Sandbox  # noqa: E402
from sandboxes.config import SandboxConfig  # noqa: E402
from sandboxes.languages import LANGUAGES  # noqa: E402
from sandboxes.select import open_sandbox  # noqa: E402

IMAGE = "rlvr-runtime:latest"
# Every method compiles with the flags our language table uses (between "g++" and "-o main main.cpp").
CPP_FLAGS = LANGUAGES["cpp"].compile[1:-3] if LANGUAGES["cpp"].compile else ()
PYTHON_SOURCE = "a, b = map(int, input().split())\nprint(a + b)\n"
CPP_SOURCE = """#include <iostream>
int main() {
    long long a, b;
    std::cin >> a >> b;
    std::cout << a + b << std::endl;
    return 0;
}
"""
CPP_TESTS = [(f"{i} {i * 7}\n", f"{i + i * 7}") for i in range(10)]
LOCKDOWN = (
    "--network=none --read-only --cap-drop=ALL --security-opt=no-new-privileges --user=20000:65534 "
    "--pids-limit=256 --memory=2048m --memory-swap=2048m --tmpfs=/work:rw,exec,nosuid,nodev,mode=1777,size=512m "
    "--tmpfs=/tmp:rw,exec,nosuid,nodev,mode=1777,size=512m"
).split()
LEGEND = {
    "a": "host: bare subprocess, no isolation (cpp: g++ once + 10 runs)",
    "b": "run: `docker run --rm` per run (cpp: 1 docker run to compile + 10, binary on a bind mount)",
    "c": "exec: `docker exec` per run into one warm container (cpp: 1 exec to compile + 10)",
    "d": "docker: our backend, one Job per unit (cpp: compile once + 10 runs inside a warm container)",
    "e": "bwrap: our bubblewrap backend, one Job per unit",
}


class BenchError(Exception):
    pass


async def _exec(*argv: str, stdin: str = "") -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate(stdin.encode())
    if process.returncode != 0:
        raise BenchError(f"{argv[:6]} exited {process.returncode}: {err.decode(errors='replace')[:500]}")
    return out.decode().strip()


def _expect(got: str, want: str) -> None:
    if got != want:
        raise BenchError(f"wrong output {got!r}, expected {want!r}")


@dataclass
class Method:
    """One way of running units: ``unit(workload, index)`` runs one unit and checks its output."""

    key: str
    workdir: Path

    async def setup(self) -> None:
        return None

    async def teardown(self) -> None:
        return None

    async def unit(self, workload: str, index: int) -> None:
        raise NotImplementedError

    def unit_dir(self, index: int) -> Path:
        path = self.workdir / self.key / str(index)
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        return path


class Host(Method):
    async def unit(self, workload: str, index: int) -> None:
        path = self.unit_dir(index)
        if workload == "python":
            (path / "main.py").write_text(PYTHON_SOURCE)
            _expect(await _exec("/usr/bin/python3", "-S", str(path / "main.py"), stdin="1 2\n"), "3")
            return
        (path / "main.cpp").write_text(CPP_SOURCE)
        await _exec("g++", *CPP_FLAGS, "-o", str(path / "main"), str(path / "main.cpp"))
        for stdin, want in CPP_TESTS:
            _expect(await _exec(str(path / "main"), stdin=stdin), want)


class DockerRun(Method):
    def docker(self, path: Path, *command: str) -> tuple[str, ...]:
        return ("docker", "run", "--rm", "-i", *LOCKDOWN, "-v", f"{path}:/src", "-w", "/src", IMAGE, *command)

    async def unit(self, workload: str, index: int) -> None:
        path = self.unit_dir(index)
        if workload == "python":
            (path / "main.py").write_text(PYTHON_SOURCE)
            _expect(await _exec(*self.docker(path, "python3", "-S", "main.py"), stdin="1 2\n"), "3")
            return
        (path / "main.cpp").write_text(CPP_SOURCE)
        await _exec(*self.docker(path, "g++", *CPP_FLAGS, "-o", "main", "main.cpp"))
        for stdin, want in CPP_TESTS:
            _expect(await _exec(*self.docker(path, "./main"), stdin=stdin), want)


class DockerExec(Method):
    container = ""

    async def setup(self) -> None:
        source_dir = self.workdir / self.key
        source_dir.mkdir(parents=True, exist_ok=True)
        self.container = await _exec(
            "docker", "run", "-d", "--init", *LOCKDOWN, "-v", f"{source_dir}:/src:ro", IMAGE, "sleep", "infinity"
        )

    async def teardown(self) -> None:
        if self.container:
            await _exec("docker", "rm", "-f", self.container)

    def docker(self, *command: str) -> tuple[str, ...]:
        return ("docker", "exec", "-i", self.container, *command)

    async def unit(self, workload: str, index: int) -> None:
        path = self.unit_dir(index)
        if workload == "python":
            (path / "main.py").write_text(PYTHON_SOURCE)
            _expect(await _exec(*self.docker("python3", "-S", f"/src/{index}/main.py"), stdin="1 2\n"), "3")
            return
        (path / "main.cpp").write_text(CPP_SOURCE)
        binary = f"/work/main{index}"
        await _exec(*self.docker("g++", *CPP_FLAGS, "-o", binary, f"/src/{index}/main.cpp"))
        for stdin, want in CPP_TESTS:
            _expect(await _exec(*self.docker(binary), stdin=stdin), want)
        await _exec(*self.docker("rm", "-f", binary))


class Backend(Method):
    backend = ""
    concurrency = 2
    sandbox: Sandbox | None = None

    async def setup(self) -> None:
        self.sandbox = await open_sandbox(self.backend, SandboxConfig(pool_size=self.concurrency))

    async def teardown(self) -> None:
        if self.sandbox is not None:
            await self.sandbox.close()

    async def unit(self, workload: str, index: int) -> None:
        assert self.sandbox is not None
        if workload == "python":
            job = Job(language="python", source=PYTHON_SOURCE, runs=[Run(stdin="1 2\n")])
            wants = ["3"]
        else:
            job = Job(language="cpp", source=CPP_SOURCE, runs=[Run(stdin=stdin) for stdin, _ in CPP_TESTS])
            wants = [want for _, want in CPP_TESTS]
        result = await self.sandbox.run(job)
        if result.compile is not None and result.compile.status != RunStatus.OK:
            raise BenchError(f"compile failed: {result.compile}")
        for run, want in zip(result.runs, wants, strict=True):
            _expect(run.stdout.strip() if run.status == RunStatus.OK else run.status, want)


class DockerBackend(Backend):
    backend = "docker"


class BwrapBackend(Backend):
    backend = "bubblewrap"


METHODS: dict[str, type[Method]] = {"a": Host, "b": DockerRun, "c": DockerExec, "d": DockerBackend, "e": BwrapBackend}
NAMES = {"a": "a host", "b": "b run", "c": "c exec", "d": "d docker", "e": "e bwrap"}


@dataclass(frozen=True)
class Measurement:
    latencies: list[float]
    wall_s: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p90_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=10)[-1] * 1000 if len(self.latencies) > 1 else self.median_ms

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s


async def _drive(unit: Callable[[int], Awaitable[None]], units: int, concurrency: int) -> Measurement:
    queue = iter(range(units))
    latencies: list[float] = []

    async def worker() -> None:
        for index in queue:
            started = time.perf_counter()
            await unit(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Measurement(latencies, time.perf_counter() - started)


async def measure(method: Method, workload: str, units: int, concurrency: int) -> Measurement:
    await method.unit(workload, 10_000)  # warm-up: page cache, image layers, first container
    return await _drive(lambda index: method.unit(workload, index), units, concurrency)


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def report(workload: str, results: dict[str, Measurement], units: dict[str, int], concurrency: int) -> None:
    unit = "1 run" if workload == "python" else "compile + 10 runs"
    print(f"\n== {workload}: unit = {unit}, concurrency {concurrency}")
    print(f"{'method':<10} {'units':>5} {'median ms':>10} {'p90 ms':>9} {'units/s':>9}")
    for key, result in results.items():
        name = NAMES[key]
        print(f"{name:<10} {units[key]:>5} {result.median_ms:>10.1f} {result.p90_ms:>9.1f} {result.throughput:>9.2f}")
    pairs = [("d", "a", "d/a (cost of our isolation)"), ("b", "d", "b/d (our speed-up over docker run)")]
    pairs += [("c", "d", "c/d (our speed-up over docker exec)"), ("e", "a", "e/a (cost of bwrap isolation)")]
    print(f"{'ratio x/y (>1: x is slower than y)':<38} {'latency':>9} {'throughput':>11}")
    for slow, fast, label in pairs:
        if slow in results and fast in results:
            latency = _ratio(results[slow].median_ms, results[fast].median_ms)
            inverse = _ratio(results[fast].throughput, results[slow].throughput)
            print(f"{label:<38} {latency:>9} {inverse:>11}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer units (about a minute in all)")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--methods", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--workloads", default="python,cpp")
    args = parser.parse_args()
    keys = args.methods.split(",")
    scale = 1 if args.quick else 3
    # slow methods get fewer units, so that the whole run stays within a few minutes
    units = {
        "python": {"a": 40 * scale, "b": 8 * scale, "c": 20 * scale, "d": 40 * scale, "e": 40 * scale},
        "cpp": {"a": 4 * scale, "b": 2 * scale, "c": 4 * scale, "d": 4 * scale, "e": 4 * scale},
    }
    print(f"bench_sandbox: {os.cpu_count()} cores, concurrency {args.concurrency}")
    for key in keys:
        print(f"  {key}  {LEGEND[key]}")
    workdir = Path(tempfile.mkdtemp(prefix="rlvr-bench-"))
    workdir.chmod(0o755)
    try:
        for workload in args.workloads.split(","):
            results = {}
            for key in keys:
                method = METHODS[key](key, workdir)
                if isinstance(method, Backend):
                    method.concurrency = args.concurrency
                await method.setup()
                try:
                    results[key] = await measure(method, workload, units[workload][key], args.concurrency)
                finally:
                    await method.teardown()
            report(workload, results, units[workload], args.concurrency)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
