"""The resident runner's JSON protocol, spoken directly (no sandbox around it: benign programs only, and no
``--kill-strays``, which is only safe inside a sandbox's own PID namespace), plus the host side of it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes._pool import decode_result, encode_job, job_deadline
from sandboxes.base import ExecResult, Job, Limits, Run, RunStatus, SandboxError
from sandboxes.config import SandboxConfig
from sandboxes.languages import resolve_language

RUNNER = Path(__file__).parents[2] / "sandboxes" / "runner.py"
EXEC_FIELDS = {field.name for field in dataclasses.fields(ExecResult)}
CONFIG = SandboxConfig()


class RunnerProcess:
    def __init__(self, work_base: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(RUNNER), "--work-base", str(work_base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.hello = self.read()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.endswith(b"\n")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def send_raw(self, line: bytes) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(line)
        self.process.stdin.flush()
        return self.read()

    def send(self, job: Job, config: SandboxConfig = CONFIG) -> dict[str, Any]:
        return self.send_raw(encode_job(job, resolve_language(job.language), config))

    def close(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            return self.process.wait(timeout=10)
        finally:
            self.process.kill()
            self.process.wait()
            self.process.stdout.close()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunnerProcess]:
    process = RunnerProcess(tmp_path / "work")
    yield process
    process.close()


def _python(source: str, *runs: Run, **job: Any) -> Job:
    return Job(language="python", source=source, runs=list(runs) or [Run()], **job)


def test_the_runner_says_ready_first_and_exits_on_eof(runner: RunnerProcess) -> None:
    assert runner.hello["ready"] is True
    assert runner.hello["protocol"] == 1
    assert runner.hello["spawn"] == "shell"  # the fast path (no preexec_fn) works with this host's /bin/sh
    assert runner.close() == 0


LIMITS_OF_INTEREST = ("Max address space", "Max processes", "Max file size", "Max open files", "Max core file size")
SHOW_LIMITS = (
    f"for line in open('/proc/self/limits'):\n    if line.startswith({LIMITS_OF_INTEREST!r}):\n"
    "        print(line[:26].strip(), line[26:47].strip())\n"
)


def test_every_run_is_under_the_jobs_rlimits(runner: RunnerProcess) -> None:
    limits = Limits(memory_mb=300, file_size_mb=5, max_processes=7)
    answer = runner.send(_python(SHOW_LIMITS, limits=limits))
    assert answer["runs"][0]["stdout"].splitlines() == [
        f"Max file size {5 << 20}",
        "Max core file size 0",
        "Max processes 7",
        "Max open files 256",
        f"Max address space {300 << 20}",
    ]


def test_a_result_has_exactly_the_documented_shape(runner: RunnerProcess) -> None:
    answer = runner.send(_python("print(input()[::-1])", Run(stdin="abc\n")))
    assert set(answer) == {"compile", "runs", "dirty", "error"}
    (run,) = answer["runs"]
    assert set(run) == EXEC_FIELDS
    assert (run["status"], run["stdout"], run["exit_code"], answer["dirty"], answer["error"]) == (
        "OK",
        "cba\n",
        0,
        False,
        None,
    )


def test_every_run_gets_a_fresh_work_dir_with_the_job_files(runner: RunnerProcess) -> None:
    source = "import os\nprint(sorted(os.listdir('.')))\nopen('leftover', 'w').close()\n"
    job = _python(source, Run(), Run(files={"extra.txt": "x"}), files={"data/input.txt": "42"})
    listings = [run["stdout"] for run in runner.send(job)["runs"]]
    assert listings == ["['data', 'main.py']\n", "['data', 'extra.txt', 'main.py']\n"]


def test_argv_and_files_reach_the_program(runner: RunnerProcess) -> None:
    source = "import sys\nprint(sys.argv[1:], open('data/input.txt').read())\n"
    answer = runner.send(_python(source, Run(argv=("a", "b c")), files={"data/input.txt": "42"}))
    assert answer["runs"][0]["stdout"] == "['a', 'b c'] 42\n"


def test_stop_on_first_failure_leaves_the_rest_out(runner: RunnerProcess) -> None:
    source = "import sys\nsys.exit(int(input()))\n"
    runs = [Run(stdin="0"), Run(stdin="3"), Run(stdin="0")]
    stopped = runner.send(_python(source, *runs, stop_on_first_failure=True))
    assert [(run["status"], run["exit_code"]) for run in stopped["runs"]] == [("OK", 0), ("RE", 3)]
    every = runner.send(_python(source, *runs))
    assert [run["status"] for run in every["runs"]] == ["OK", "RE", "OK"]


def test_a_job_past_its_result_budget_stops_running(runner: RunnerProcess) -> None:
    source = "print('x' * 700_000)\n"
    answer = runner.send(_python(source, *[Run()] * 3), SandboxConfig(max_result_mb=1))
    assert [run["status"] for run in answer["runs"]] == ["OK", "OK", "SANDBOX_ERROR"]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"{not json\n", id="malformed_json"),
        pytest.param(b'{"source": "x"}\n', id="missing_fields"),
        pytest.param(
            encode_job(_python("pass", files={"../escape.txt": "x"}), resolve_language("python"), CONFIG),
            id="file_outside_the_work_dir",
        ),
        pytest.param(
            encode_job(_python("pass", files={"/etc/x": "x"}), resolve_language("python"), CONFIG),
            id="absolute_file_name",
        ),
    ],
)
def test_a_bad_job_gets_an_error_and_the_runner_goes_on(runner: RunnerProcess, line: bytes) -> None:
    answer = runner.send_raw(line)
    assert answer["error"]
    assert answer["runs"] == []
    assert runner.send(_python("print(6 * 7)"))["runs"][0]["stdout"] == "42\n"


def test_nul_and_invalid_utf8_cannot_break_a_line(runner: RunnerProcess) -> None:
    source = "import sys\nsys.stdout.buffer.write(b'\\x00\\n\\xff{\"\\n')\n"
    answer = runner.send(_python(source))
    assert answer["runs"][0]["stdout"] == '\x00\n\ufffd{"\n'


def test_a_compile_error_skips_the_runs(runner: RunnerProcess) -> None:
    answer = runner.send(Job(language="c", source="int main(void) { return nope; }\n", runs=[Run(), Run()]))
    assert answer["compile"]["status"] == "CE"
    assert "nope" in answer["compile"]["stderr"]
    assert answer["runs"] == []


def test_a_missing_toolchain_is_the_sandboxes_fault(runner: RunnerProcess) -> None:
    line = json.loads(encode_job(_python("pass"), resolve_language("python"), CONFIG))
    line["run"]["argv"] = ["no-such-interpreter", "main.py"]
    answer = runner.send_raw(json.dumps(line).encode() + b"\n")
    assert answer["runs"][0]["status"] == "SANDBOX_ERROR"
    assert "no-such-interpreter" in answer["runs"][0]["message"]


def test_the_host_decodes_a_runner_line() -> None:
    line = json.dumps(
        {
            "compile": None,
            "runs": [{"status": "RE", "exit_code": None, "signal": 11, "stdout": "", "stderr": "", "wall_s": 0.5}],
            "dirty": True,
            "error": None,
        }
    ).encode()
    result, dirty = decode_result(line)
    assert dirty is True
    assert result.compile is None
    assert result.runs == [ExecResult(status=RunStatus.RE, signal=11, wall_s=0.5)]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b'{"compile": null, "runs": [], "dirty": true, "error": "disk full"}', id="runner_error"),
        pytest.param(b"garbage", id="garbage"),
        pytest.param(b'{"compile": null}', id="missing_runs"),
        pytest.param(b"[]", id="not_an_object"),
    ],
)
def test_a_bad_runner_line_is_a_sandbox_error(line: bytes) -> None:
    with pytest.raises(SandboxError):
        decode_result(line)


def test_the_encoded_job_carries_the_languages_argv_and_the_limits() -> None:
    limits = Limits(timeout_s=2.0, memory_mb=300, output_bytes=1000, file_size_mb=5, max_processes=7)
    job = Job(language="java", source="class Main {}", runs=[Run(stdin="x", argv=("y",))], limits=limits)
    payload = json.loads(encode_job(job, resolve_language("java"), CONFIG))
    assert payload["source_file"] == "Main.java"
    assert payload["compile"]["argv"][0] == "javac"
    assert "-Xmx300m" in payload["run"]["argv"]
    run_limits = payload["run"]["limits"]
    assert (run_limits["timeout_s"], run_limits["memory_mb"], run_limits["output_bytes"]) == (2.0, 300, 1000)
    assert run_limits["address_space_mb"] > 300  # the JVM reserves address space beyond its heap
    assert run_limits["max_processes"] >= 7
    assert payload["runs"] == [{"stdin": "x", "argv": ["y"], "files": {}}]


def test_the_host_deadline_covers_compile_and_every_run() -> None:
    job = Job(language="cpp", source="", runs=[Run()] * 10, limits=Limits(timeout_s=2.0, compile_timeout_s=30.0))
    deadline = job_deadline(job, resolve_language("cpp"), CONFIG)
    assert deadline >= 30.0 + 10 * 2.0
    python_job = Job(language="python", source="", runs=[Run()], limits=Limits(timeout_s=2.0))
    assert job_deadline(python_job, resolve_language("python"), CONFIG) < deadline


def test_the_runner_starts_from_its_own_directory_without_isolation_flags(tmp_path: Path) -> None:
    # sandboxes/select.py sits beside the runner and must not shadow the stdlib's select module.
    process = subprocess.run(
        [sys.executable, "-S", str(RUNNER), "--work-base", str(tmp_path)],
        input=encode_job(_python("print('ok')"), resolve_language("python"), CONFIG),
        capture_output=True,
        timeout=30,
    )
    hello, answer = process.stdout.splitlines()
    assert json.loads(hello)["ready"] is True
    assert json.loads(answer)["runs"][0]["stdout"] == "ok\n"
