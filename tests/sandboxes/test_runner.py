"""The resident runner's JSON protocol, spoken directly (no sandbox around it: benign programs only, and no
``--kill-strays``, which is only safe inside a sandbox's own PID namespace), plus the host side of it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import runner as runner_module
from sandboxes._pool import RUNNER_PROTOCOL, decode_result, encode_job, job_deadline
from sandboxes.base import ExecResult, Harness, Job, Limits, Run, RunStatus, SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.docker import MAX_ARG_BYTES, runner_source
from sandboxes.languages import resolve_language

RUNNER = Path(__file__).parents[2] / "sandboxes" / "runner.py"
RESULT_FIELDS = {
    *("status", "exit_code", "signal", "stdout", "stderr", "report", "harness"),
    *("wall_s", "cpu_s", "peak_memory_kb", "message"),
}
CONFIG = SandboxConfig()
# As root the runner is started the way the backends start it: harness and program each as a uid of their own.
SEPARATION = ["--harness-uid", "40001", "--candidate-uid", "40002", "--gid", "40000"] if os.geteuid() == 0 else []


def _texts(run: dict[str, Any]) -> dict[str, Any]:
    """A run as the test reads it: its base64 streams decoded."""
    for key in ("stdout", "stderr", "report"):
        if run.get(key) is not None:
            run[key] = base64.b64decode(run[key]).decode("utf-8", "replace")
    return run


class RunnerProcess:
    def __init__(self, work_base: Path, separation: list[str] = SEPARATION) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(RUNNER), "--work-base", str(work_base), *separation],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.hello = self.read()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.endswith(b"\n")
        parsed: dict[str, Any] = json.loads(line)
        for run in [*parsed.get("runs", []), *([parsed["compile"]] if parsed.get("compile") else [])]:
            _texts(run)
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
def runner(work_root: Path) -> Iterator[RunnerProcess]:
    process = RunnerProcess(work_root / "work")
    yield process
    process.close()


@pytest.fixture
def work_root() -> Iterator[Path]:
    """A dir every uid can traverse (pytest's own tmp dirs are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="rlvr-runner-test-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _python(source: str, *runs: Run, **job: Any) -> Job:
    return Job(language="python", source=source, runs=list(runs) or [Run()], **job)


def test_the_runner_says_ready_first_and_exits_on_eof(runner: RunnerProcess) -> None:
    assert runner.hello["ready"] is True
    assert runner.hello["protocol"] == RUNNER_PROTOCOL == 3  # the host refuses a runner of another protocol
    assert runner.hello["spawn"] == "shell"  # the fast path (no preexec_fn) works with this host's /bin/sh
    assert runner.hello["separation"] == ("uid" if SEPARATION else "none")
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
    assert set(answer) == {"compile", "runs", "dirty", "error", "build"}
    assert answer["build"] is None  # the host asked for no build back
    (run,) = answer["runs"]
    assert set(run) == RESULT_FIELDS
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


def test_the_build_is_read_only_to_the_runs(runner: RunnerProcess) -> None:
    # run 1 tries to leave something for run 2 in its own files; run 2 must see the build as compiled
    source = (
        "import os\nfor name in ('main.py', 'data/input.txt'):\n    try:\n        open(name, 'a').write('#x')\n"
        "    except OSError as exc:\n        print(type(exc).__name__)\nprint(open('data/input.txt').read())\n"
    )
    answer = runner.send(_python(source, Run(), Run(), files={"data/input.txt": "42"}))
    outputs = [run["stdout"] for run in answer["runs"]]
    assert outputs[0] == outputs[1]
    assert outputs[1].endswith("42\n")


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
    source = "print('x' * 250_000)\n"
    job = _python(source, *[Run()] * 3, limits=Limits(output_bytes=300_000))
    answer = runner.send(job, SandboxConfig(max_result_mb=1))  # room for two runs that could print 600 kB
    # the program's own outputs exhausted the budget: its failure (OLE), not the sandbox's
    assert [run["status"] for run in answer["runs"]] == ["OK", "OK", "OLE"]


def test_nul_bytes_cost_no_more_than_base64_in_the_result_line(runner: RunnerProcess) -> None:
    assert runner.process.stdin is not None and runner.process.stdout is not None
    runner.process.stdin.write(encode_job(_python("import sys\nsys.stdout.write('\\0' * 500_000)"), *_config()))
    runner.process.stdin.flush()
    line = runner.process.stdout.readline()
    assert len(line) < 500_000 * 4 // 3 + 10_000
    assert base64.b64decode(json.loads(line)["runs"][0]["stdout"]) == b"\0" * 500_000


FETCHING = """
import os, sys
open('out.txt', 'w').write('written')
os.mkdir('sub')
open('sub/b.bin', 'wb').write(bytes(range(256)))
os.symlink('/etc/passwd', 'evil')
os.symlink('../../../secret.txt', 'up')
os.symlink('sub', 'linkdir')
os.mkfifo('fifo')
try:
    os.link('../../../secret.txt', 'hard')
except OSError:
    pass
open('half1', 'wb').write(b'1' * 600_000)
open('half2', 'wb').write(b'2' * 600_000)
open('big', 'wb').write(b'x' * 1_500_000)
sys.exit(3)
"""


def test_fetched_files_come_back_and_nothing_outside_the_work_dir_does(runner: RunnerProcess, work_root: Path) -> None:
    secret = work_root / "secret.txt"
    secret.write_text("secret")
    secret.chmod(0o600)
    wanted = ("out.txt", "sub/b.bin", "main.py", "missing.txt", "evil", "up", "linkdir/b.bin", "fifo", "hard")
    wanted += ("../secret.txt", str(secret), "/etc/passwd", "./out.txt", "sub/../out.txt", "half1", "half2", "big")
    job = _python(FETCHING, Run(fetch=wanted), limits=Limits(output_bytes=1000))
    (run,) = runner.send(job, SandboxConfig(max_result_mb=1))["runs"]
    assert run["status"] == "RE"  # fetched whatever the run's status
    files = {name: base64.b64decode(data) for name, data in run["files"].items()}
    # half2 no longer fits in the 1 MB budget after half1, big never did: absent, like every name that is not a
    # plain relative one, a symlink (to a file or on the way), a fifo, a missing file or another uid's secret
    assert files == {
        "out.txt": b"written",
        "sub/b.bin": bytes(range(256)),
        "main.py": FETCHING.encode(),
        "half1": b"1" * 600_000,
    }


@pytest.mark.skipif(not SEPARATION, reason="files of other uids need root")
def test_a_fetched_file_of_another_uid_comes_back_only_when_anyone_may_read_it(tmp_path: Path) -> None:
    # what a hard link the program made to someone else's file would look like (the runner reads as root)
    for name, uid, mode in (("own", 40002, 0o600), ("theirs", 40003, 0o600), ("public", 40003, 0o644)):
        path = tmp_path / name
        path.write_text(name)
        os.chown(path, uid, 40000)
        path.chmod(mode)
    names = ["own", "theirs", "public"]
    files, spent = runner_module.fetch_files(str(tmp_path), names, 1 << 20, runner_module.Identity(40002, 40000))
    assert {name: base64.b64decode(data) for name, data in files.items()} == {"own": b"own", "public": b"public"}
    assert spent >= len("own") + len("public")


def test_a_run_that_fetches_nothing_has_no_files(runner: RunnerProcess) -> None:
    (run,) = runner.send(_python("open('out.txt', 'w').write('x')"))["runs"]
    assert "files" not in run
    (run,) = runner.send(_python("pass", Run(fetch=("out.txt",))))["runs"]
    assert run["files"] == {}


def _config() -> tuple[Any, SandboxConfig]:
    return resolve_language("python"), CONFIG


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
    encoded = base64.b64encode("caf\xe9\n".encode()).decode()
    run = {"status": "RE", "exit_code": None, "signal": 11, "stdout": encoded, "stderr": "", "wall_s": 0.5}
    harness = {"exit_code": 3, "signal": None, "stderr": base64.b64encode(b"\xff").decode()}
    line = json.dumps({"compile": None, "runs": [run | {"harness": harness}], "dirty": True, "error": None}).encode()
    result, dirty = decode_result(line)
    assert dirty is True
    assert result.compile is None
    assert result.runs == [
        ExecResult(
            status=RunStatus.RE, signal=11, wall_s=0.5, stdout="caf\xe9\n", harness_exit=3, harness_stderr="\ufffd"
        )
    ]


def test_the_host_decodes_fetched_files() -> None:
    files = {"out.txt": base64.b64encode(b"\xff\x00").decode()}
    line = json.dumps({"compile": None, "runs": [{"status": "OK", "files": files}], "dirty": False, "error": None})
    result, _ = decode_result(line.encode())
    assert result.runs[0].files == files
    (bare,) = decode_result(line.replace(', "files": ' + json.dumps(files), "").encode())[0].runs
    assert bare.files == {}


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b'{"compile": null, "runs": [], "dirty": true, "error": "disk full"}', id="runner_error"),
        pytest.param(b"garbage", id="garbage"),
        pytest.param(b'{"compile": null}', id="missing_runs"),
        pytest.param(b"[]", id="not_an_object"),
        pytest.param(
            b'{"compile": null, "runs": [{"status": "OK", "stdout": "not base64!"}], "dirty": false, "error": null}',
            id="bad_base64",
        ),
        pytest.param(
            b'{"compile": null, "runs": [{"status": "OK", "files": {"a": "not base64!"}}], "dirty": false, '
            b'"error": null}',
            id="bad_fetched_file",
        ),
        pytest.param(
            b'{"compile": null, "runs": [{"status": "OK", "files": ["a"]}], "dirty": false, "error": null}',
            id="fetched_files_not_an_object",
        ),
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


def test_the_encoded_job_carries_commands_reports_and_harnesses() -> None:
    runs = [
        Run(command=("node", "--max-old-space-size={memory_mb}", "server.js"), report=True),
        Run(harness=Harness(argv=("python3", "h.py"), files={"h.py": "pass"})),
    ]
    job = Job(language="python", source="", runs=runs, limits=Limits(memory_mb=300))
    payload = json.loads(encode_job(job, resolve_language("python"), CONFIG))
    assert payload["runs"][0]["command"] == ["node", "--max-old-space-size=300", "server.js"]
    assert payload["runs"][0]["report"] is True
    assert payload["runs"][1]["harness"] == {"argv": ["python3", "h.py"], "files": {"h.py": "pass"}}
    assert "fetch" not in payload["runs"][0]


def test_the_encoded_job_carries_the_files_to_fetch() -> None:
    job = Job(language="python", source="", runs=[Run(fetch=("out.txt", "sub/a.bin"))])
    payload = json.loads(encode_job(job, resolve_language("python"), CONFIG))
    assert payload["runs"][0]["fetch"] == ["out.txt", "sub/a.bin"]


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
    assert _texts(json.loads(answer)["runs"][0])["stdout"] == "ok\n"


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(["-I", "-S", str(RUNNER)], id="from_its_file"),
        pytest.param(["-I", "-S", "-c", RUNNER.read_text()], id="from_its_source_inline_as_the_docker_backend"),
    ],
)
def test_the_runner_needs_no_file_of_its_own(tmp_path: Path, how: list[str]) -> None:
    process = subprocess.run(
        [sys.executable, *how, "--work-base", str(tmp_path)],
        input=encode_job(_python("print('ok')"), resolve_language("python"), CONFIG),
        capture_output=True,
        timeout=30,
        cwd=tmp_path,
    )
    hello, answer = process.stdout.splitlines()
    assert json.loads(hello)["ready"] is True
    assert _texts(json.loads(answer)["runs"][0])["stdout"] == "ok\n"


@pytest.mark.parametrize(
    ("size", "fits"),
    [
        pytest.param(None, True, id="the_runner_itself"),
        pytest.param(MAX_ARG_BYTES - 1, True, id="just_fits_with_its_nul"),
        pytest.param(MAX_ARG_BYTES, False, id="one_byte_too_many"),
    ],
)
def test_the_runner_fits_in_one_argument_of_a_command(tmp_path: Path, size: int | None, fits: bool) -> None:
    """The docker backend passes the source as one argument (Linux: MAX_ARG_STRLEN, 128 KiB with the NUL)."""
    path = RUNNER
    if size is not None:
        path = tmp_path / "runner.py"
        path.write_text("#" * (size - 1) + "\n")
    if fits:
        assert runner_source(path) == path.read_text()
    else:
        with pytest.raises(SandboxUnavailable, match="at most 131072 bytes in one; make it smaller"):
            runner_source(path)


PROBE = (
    "import os, signal\nprint(os.getuid(), os.getgid(), os.getgroups())\n"
    "for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGKILL):\n"
    "    try:\n        os.kill(os.getppid(), sig)\n    except OSError as exc:\n        print(exc.errno)\n"
)


@pytest.mark.skipif(not SEPARATION, reason="uid separation needs root")
def test_programs_run_as_the_candidate_uid_and_cannot_signal_the_runner(runner: RunnerProcess) -> None:
    answer = runner.send(_python(PROBE, Run(), Run()))
    assert [run["stdout"] for run in answer["runs"]] == ["40002 40000 []\n" + "1\n" * 5] * 2  # EPERM each time
    assert runner.process.poll() is None


def test_the_runner_survives_every_signal_a_same_uid_program_sends(work_root: Path) -> None:
    runner = RunnerProcess(work_root / "work", separation=[])
    try:
        source = "import os, signal\nfor sig in (2, 15, 1, 10, 12, 14, 3):\n    os.kill(os.getppid(), sig)\n"
        answer = runner.send(_python(source))
        assert answer["runs"][0]["status"] == "OK"
        assert runner.send(_python("print(6 * 7)"))["runs"][0]["stdout"] == "42\n"
    finally:
        runner.close()


HARNESS = (
    "import json, os\ncase = json.load(open('case.json'))\n"
    "os.write(int(os.environ['RLVR_OUT_FD']), b'ping\\n')\n"
    "reply = os.read(int(os.environ['RLVR_IN_FD']), 100)\n"
    "os.write(int(os.environ['RLVR_REPORT_FD']), json.dumps([case, reply.decode(), os.getuid()]).encode())\n"
)
SERVER = (
    "import os\nline = os.read(int(os.environ['RLVR_IN_FD']), 100)\n"
    "os.write(int(os.environ['RLVR_OUT_FD']), b'pong ' + line + str(os.getuid()).encode())\n"
    "print(len(os.listdir('/proc/self/fd')), 'RLVR_REPORT_FD' in os.environ, flush=True)\n"
    "import time\ntime.sleep(30)\n"
)


@pytest.mark.skipif(not SEPARATION, reason="uid separation needs root")
def test_a_harnessed_run_joins_program_and_harness_and_only_the_harness_holds_the_verdict(
    runner: RunnerProcess,
) -> None:
    harness = Harness(argv=("python3", "-S", "h.py"), files={"h.py": HARNESS, "case.json": '{"secret": 1}'})
    job = _python(SERVER, Run(harness=harness, command=("python3", "-S", "main.py")))
    (run,) = runner.send(job)["runs"]
    assert run["status"] == "OK"  # the program was still sleeping: stopped by the runner once the harness was done
    assert json.loads(run["report"]) == [{"secret": 1}, "pong ping\n40002", 40001]
    assert run["stdout"] == "6 False\n"  # stdio, its two pipe ends, the listing's own: never the verdict pipe
    assert run["harness"]["exit_code"] == 0


@pytest.mark.skipif(not SEPARATION, reason="uid separation needs root")
def test_the_program_cannot_read_the_harness_dir(runner: RunnerProcess) -> None:
    spy = (
        "import os\nfor look in (lambda: open('../harness-0/case.json').read(), lambda: os.listdir('../harness-0'),"
        " lambda: os.listdir('..')):\n"
        "    try:\n        print(look())\n    except OSError as exc:\n        print(exc.errno)\n"
    )
    harness = Harness(argv=("python3", "-S", "h.py"), files={"h.py": "import time\ntime.sleep(1)", "case.json": "{}"})
    (run,) = runner.send(_python(spy, Run(harness=harness, command=("python3", "-S", "main.py"))))["runs"]
    assert run["stdout"] == "13\n13\n13\n"  # EACCES: neither the harness's files nor the job dir's listing


def test_without_separation_a_harnessed_run_is_refused(work_root: Path) -> None:
    runner = RunnerProcess(work_root / "work", separation=[])
    try:
        harness = Harness(argv=("python3", "h.py"), files={"h.py": "pass"})
        answer = runner.send(_python("pass", Run(harness=harness)))
        assert "uid separation" in answer["error"]
    finally:
        runner.close()


def test_programs_are_the_oom_killers_first_choice(runner: RunnerProcess) -> None:
    answer = runner.send(_python("print(open('/proc/self/oom_score_adj').read().strip())"))
    assert answer["runs"][0]["stdout"] == "1000\n"


# -- the compile cache's side of the protocol (protocol 3) ------------------------------------------------------

ADD_C = '#include <stdio.h>\nint main(void) { int a, b; scanf("%d %d", &a, &b); printf("%d\\n", a + b); }\n'


def _c_job(source: str = ADD_C, stdin: str = "2 3\n") -> Job:
    return Job(language="c", source=source, runs=[Run(stdin=stdin)])


def test_a_kept_build_comes_back_on_a_line_of_its_own_and_runs_without_a_compile(runner: RunnerProcess) -> None:
    job = _c_job()
    kept = runner.send_raw(encode_job(job, resolve_language("c"), CONFIG, keep_build=1 << 20))
    assert (kept["compile"]["status"], kept["runs"][0]["stdout"]) == ("OK", "5\n")
    build = kept["build"]
    assert (build["cacheable"], build["follows"], build["files"]) == (True, True, 2)
    artifact = runner.read()["files"]  # the next line: the build dir's regular files
    assert sorted(artifact) == ["main", "main.c"] and artifact["main"]["x"] is True
    assert build["bytes"] == sum(len(base64.b64decode(entry["data"])) for entry in artifact.values())
    prebuilt = encode_job(_c_job(stdin="40 2\n"), resolve_language("c"), CONFIG, prebuilt=artifact)
    assert json.loads(prebuilt)["compile"] is None and json.loads(prebuilt)["source"] == ""
    answer = runner.send_raw(prebuilt)
    outcome = (answer["compile"], answer["runs"][0]["stdout"], answer["build"], answer["error"])
    assert outcome == (None, "42\n", None, None)


def test_a_compile_error_is_kept_without_files(runner: RunnerProcess) -> None:
    job = _c_job("int main(void) { return nope; }\n")
    answer = runner.send_raw(encode_job(job, resolve_language("c"), CONFIG, keep_build=1 << 20))
    assert answer["compile"]["status"] == "CE"
    assert (answer["build"]["cacheable"], answer["build"]["follows"]) == (True, False)
    assert runner.send(_python("print(6 * 7)"))["runs"][0]["stdout"] == "42\n"  # no artifact line came between


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        pytest.param(Limits(compile_timeout_s=0.05), "time", id="compile_time_limit"),
        pytest.param(Limits(), "bytes", id="larger_than_asked"),
    ],
)
def test_a_build_that_may_not_be_kept_says_why(runner: RunnerProcess, limits: Limits, reason: str) -> None:
    job = dataclasses.replace(_c_job(), limits=limits)
    answer = runner.send_raw(encode_job(job, resolve_language("c"), CONFIG, keep_build=1000))
    assert (answer["build"]["cacheable"], answer["build"]["follows"]) == (False, False)
    assert answer["build"]["reason"]
    assert runner.send(_python("print(6 * 7)"))["runs"][0]["stdout"] == "42\n"


@pytest.mark.parametrize(
    "artifact",
    [
        pytest.param({"../escape": {"x": True, "data": ""}}, id="dot_dot"),
        pytest.param({"/tmp/rlvr-escape": {"x": True, "data": ""}}, id="absolute"),
        pytest.param({"a/./b": {"x": True, "data": ""}}, id="dot"),
    ],
)
def test_a_bad_prebuilt_job_is_refused_and_the_runner_goes_on(
    runner: RunnerProcess, work_root: Path, artifact: dict[str, Any]
) -> None:
    answer = runner.send_raw(encode_job(_c_job(), resolve_language("c"), CONFIG, prebuilt=artifact))
    assert answer["error"] and "bad artifact" in answer["error"]
    assert not (work_root / "escape").exists() and not os.path.exists("/tmp/rlvr-escape")
    assert runner.send(_python("print(6 * 7)"))["runs"][0]["stdout"] == "42\n"
