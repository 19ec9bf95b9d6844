"""The compile cache: one compile per distinct build, shared by the jobs that send the same program again.

The pool tests run on both backends with real sandboxes (skipped locally, failed under RLVR_REQUIRE_SANDBOXES=1
when a backend is missing); what they observe is what a user of the pool sees: the compile result's message, the
pool's counters (``compile_OK`` in ``runs_by_status`` counts compiles that ran in a sandbox), and the programs'
outputs. The runner's artifact functions are tested directly: they are the line between a hostile build and the
next job's sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sandboxes import runner as runner_module
from sandboxes._pool import CACHED_MARK, RUNNER_PROTOCOL, CachedBuild, CompileCache, SlotPool, compile_key
from sandboxes.base import ExecResult, Job, JobResult, Limits, Run, RunStatus, Sandbox, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.languages import resolve_language
from tests.sandboxes.conftest import BACKENDS, TEST_CONFIG, close_and_check_clean, open_or_skip

ECHO_CPP = (
    "#include <iostream>\n#include <string>\n"
    'int main() { std::string word; std::cin >> word; std::cout << "{tag}:" << word << std::endl; }\n'
)
BROKEN_CPP = "int main() { return undefined_name; }\n"
# At run time: tries to replace its own binary, in its run dir and in the build dir, with a script.
POISON_CPP = r"""
#include <cstdio>
#include <iostream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
int main() {
    std::string word;
    std::cin >> word;
    if (word == "poison") {
        const char* script = "#!/bin/sh\necho pwned\n";
        const char* targets[] = {"main", "./main", "../build/main", "../build/main.cpp"};
        for (const char* target : targets) {
            FILE* out = std::fopen(target, "w");
            if (out) { std::fputs(script, out); std::fclose(out); chmod(target, 0755); }
        }
        unlink("main");
        FILE* out = std::fopen("main", "w");
        if (out) { std::fputs(script, out); std::fclose(out); chmod("main", 0755); }
        std::cout << "tried" << std::endl;
        return 0;
    }
    std::cout << "clean" << std::endl;
}
"""
# A binary of about {kb} kB: an initialised array lives in the file.
BIG_CPP = (
    "#include <cstdio>\nstatic volatile char blob[{kb} * 1024] = {{{tag}}};\n"
    'int main() {{ std::printf("%d\\n", (int)blob[0]); }}\n'
)


def _echo(tag: str = "a", **job: Any) -> Job:
    return Job(language="cpp", source=ECHO_CPP.replace("{tag}", tag), runs=[Run(stdin="hi\n")], **job)


def _cached(result: JobResult) -> bool:
    return result.compile is not None and CACHED_MARK in result.compile.message


def _stats(sandbox: Sandbox) -> dict[str, Any]:
    stats: dict[str, Any] = getattr(sandbox, "stats")()  # noqa: B009 (not part of the Sandbox protocol)
    return stats


def _compiles(sandbox: Sandbox) -> int:
    """Compiles that ran in a sandbox (a cached job runs none)."""
    by_status: dict[str, int] = _stats(sandbox)["runs_by_status"]
    return sum(count for status, count in by_status.items() if status.startswith("compile_"))


async def _open(backend: str, **config: Any) -> Sandbox:
    return await open_or_skip(backend, TEST_CONFIG.model_copy(update=config))


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Opens sandboxes of one backend with settings of the test's choosing; closes and checks them after."""
    opened: list[Sandbox] = []

    async def open_with(**config: Any) -> Sandbox:
        sandbox = await _open(request.param, **config)
        opened.append(sandbox)
        return sandbox

    yield open_with
    for sandbox in opened:
        await close_and_check_clean(sandbox)


# -- through the pool, on both backends ------------------------------------------------------------------------


async def test_the_same_program_twice_compiles_once(backend: Callable[..., Any]) -> None:
    sandbox = await backend()
    first = await sandbox.run(_echo())
    second = await sandbox.run(_echo())
    assert first.compile is not None and second.compile is not None
    assert [run.stdout for run in (*first.runs, *second.runs)] == ["a:hi\n", "a:hi\n"]
    assert not _cached(first) and _cached(second)
    assert dataclasses.replace(second.compile, message=first.compile.message) == first.compile  # the same compile
    assert _compiles(sandbox) == 1
    stats = _stats(sandbox)
    assert (stats["compile_cache_hits"], stats["compile_cache_misses"], stats["compile_cache_entries"]) == (1, 1, 1)


async def test_concurrent_identical_jobs_share_one_compile(backend: Callable[..., Any]) -> None:
    sandbox = await backend(pool_size=2)
    jobs = [dataclasses.replace(_echo(), runs=[Run(stdin=f"w{n}\n")]) for n in range(6)]
    results = await asyncio.gather(*(sandbox.run(job) for job in jobs))
    assert [result.runs[0].stdout for result in results] == [f"a:w{n}\n" for n in range(6)]
    assert [_cached(result) for result in results].count(False) == 1
    assert _compiles(sandbox) == 1
    assert _stats(sandbox)["compile_cache_hits"] == 5


DIFFERENT_BUILDS = {
    "other_source": _echo(tag="b"),
    "a_job_file": _echo(files={"data.txt": "1"}),
    "other_job_file": _echo(files={"data.txt": "2"}),
    "other_memory": _echo(limits=Limits(memory_mb=384)),
    "other_compile_time_limit": _echo(limits=Limits(compile_timeout_s=20.0)),
}


async def test_a_different_source_file_or_limit_is_a_different_compile(backend: Callable[..., Any]) -> None:
    sandbox = await backend()
    await sandbox.run(_echo())
    outcomes = {name: await sandbox.run(job) for name, job in DIFFERENT_BUILDS.items()}
    assert {name: _cached(result) for name, result in outcomes.items()} == dict.fromkeys(DIFFERENT_BUILDS, False)
    assert outcomes["other_source"].runs[0].stdout == "b:hi\n"
    assert _compiles(sandbox) == 1 + len(DIFFERENT_BUILDS)
    again = await sandbox.run(DIFFERENT_BUILDS["a_job_file"])  # each of them is kept under its own key
    assert _cached(again)


async def test_a_cache_of_zero_compiles_every_job(backend: Callable[..., Any]) -> None:
    sandbox = await backend(compile_cache_mb=0)
    results = [await sandbox.run(_echo()) for _ in range(3)]
    assert [result.runs[0].stdout for result in results] == ["a:hi\n"] * 3
    assert not any(_cached(result) for result in results)
    assert _compiles(sandbox) == 3
    assert _stats(sandbox)["compile_cache_entries"] == 0


async def test_a_compile_error_is_reported_the_same_from_the_cache(backend: Callable[..., Any]) -> None:
    sandbox = await backend()
    job = Job(language="cpp", source=BROKEN_CPP, runs=[Run(), Run()])
    first, second = await sandbox.run(job), await sandbox.run(job)
    assert first.compile is not None and second.compile is not None
    assert first.compile.status == RunStatus.CE and "undefined_name" in first.compile.stderr
    assert (first.runs, second.runs) == ([], [])
    assert dataclasses.replace(second.compile, message=first.compile.message) == first.compile
    assert _cached(second) and _compiles(sandbox) == 1


async def test_a_program_that_overwrites_its_binary_does_not_change_the_next_job(backend: Callable[..., Any]) -> None:
    sandbox = await backend()
    poisoner = Job(language="cpp", source=POISON_CPP, runs=[Run(stdin="poison\n"), Run(stdin="check\n")])
    first = await sandbox.run(poisoner)
    assert [run.stdout for run in first.runs] == ["tried\n", "clean\n"]  # the next run got the build as compiled
    second = await sandbox.run(dataclasses.replace(poisoner, runs=[Run(stdin="check\n")]))
    assert _cached(second)
    assert [(run.status, run.stdout) for run in second.runs] == [(RunStatus.OK, "clean\n")]


async def test_least_recently_used_builds_make_room_and_an_oversized_one_is_not_kept(
    backend: Callable[..., Any],
) -> None:
    sandbox = await backend(compile_cache_mb=1)

    def big(tag: int, kb: int = 600) -> Job:
        return Job(language="cpp", source=BIG_CPP.format(kb=kb, tag=tag), runs=[Run()])

    one, two = await sandbox.run(big(1)), await sandbox.run(big(2))  # 600 kB each (800 kB in base64): one fits
    assert [one.runs[0].stdout, two.runs[0].stdout] == ["1\n", "2\n"]
    assert not _cached(await sandbox.run(big(1)))  # two pushed one out
    assert _stats(sandbox)["compile_cache_evictions"] >= 1
    assert _cached(await sandbox.run(big(1)))
    huge = big(3, kb=1200)  # larger than the whole cache
    assert [_cached(await sandbox.run(huge)) for _ in range(2)] == [False, False]
    assert _cached(await sandbox.run(big(1)))  # an oversized build evicts nothing
    assert _compiles(sandbox) == 5


async def test_javascript_skips_its_syntax_check_when_cached(backend: Callable[..., Any]) -> None:
    sandbox = await backend()
    if "javascript" not in (getattr(sandbox, "languages", None) or ()):
        pytest.skip("no node in this sandbox")
    job = Job(language="javascript", source="console.log('js ok')\n", runs=[Run()])
    results = [await sandbox.run(job) for _ in range(2)]
    assert [result.runs[0].stdout for result in results] == ["js ok\n"] * 2
    assert [_cached(result) for result in results] == [False, True]


# -- the pool's single flight, against a scripted runner (no sandbox) -------------------------------------------


class ScriptedRunner:
    """Channels that answer like runners: a compile "builds" a file holding the source; ``fail_compiles`` of
    them lose their runner instead; ``keep`` is what every compile says about keeping its build."""

    def __init__(self, fail_compiles: int = 0, keep: bool = True, refuse_prebuilt: bool = False) -> None:
        self.compiles = 0
        self.prebuilt = 0
        self.fail_compiles = fail_compiles
        self.keep = keep
        self.refuse_prebuilt = refuse_prebuilt
        self.protocol = runner_module.PROTOCOL

    async def start(self) -> ScriptedChannel:
        return ScriptedChannel(self)


class ScriptedChannel:
    def __init__(self, script: ScriptedRunner) -> None:
        self.script = script
        self.lines: list[bytes] = [json.dumps({"ready": True, "protocol": script.protocol}).encode() + b"\n"]
        self.job: dict[str, Any] | None = None

    async def write_line(self, data: bytes) -> None:
        self.job = json.loads(data)

    async def destroy(self) -> None:
        self.lines, self.job = [], None

    def alive(self) -> bool:
        return True

    async def read_line(self) -> bytes:
        if not self.lines and self.job is not None:
            job, self.job = self.job, None
            await asyncio.sleep(0.01)  # the others arrive meanwhile
            self.lines = self.answer(job)
        if not self.lines:
            raise EOFError("the runner is gone")
        return self.lines.pop(0)

    def answer(self, job: dict[str, Any]) -> list[bytes]:
        script = self.script
        ran = {"status": "OK", "stdout": "", "stderr": ""}
        if job.get("prebuilt"):
            script.prebuilt += 1
            if script.refuse_prebuilt:
                return [json.dumps({"compile": None, "runs": [], "dirty": True, "error": "bad artifact"}).encode()]
            stdout = job["prebuilt"]["files"]["main"]["data"]
            return [json.dumps({"compile": None, "runs": [ran | {"stdout": stdout}], "dirty": False}).encode()]
        script.compiles += 1
        if script.fail_compiles:
            script.fail_compiles -= 1
            return []
        data = _b64(job["source"].encode())
        build = {"cacheable": script.keep, "follows": script.keep, "files": 1, "bytes": len(job["source"])}
        result = {"compile": ran, "runs": [ran | {"stdout": data}], "dirty": False, "build": build}
        artifact = {"files": {"main": {"x": True, "data": data}}}
        return [json.dumps(result).encode(), *([json.dumps(artifact).encode()] if script.keep else [])]


async def _scripted_pool(script: ScriptedRunner, **config: Any) -> SlotPool:
    settings = SandboxConfig(**{"pool_size": 2, **config})
    pool = SlotPool("scripted", script.start, settings, languages=["cpp", "python"])
    await pool.start()
    return pool


async def _all(pool: SlotPool, count: int, source: str = "int main() {}") -> list[JobResult | BaseException]:
    jobs = [Job(language="cpp", source=source, runs=[Run()]) for _ in range(count)]
    return await asyncio.gather(*(pool.run(job) for job in jobs), return_exceptions=True)


async def test_when_the_leaders_runner_dies_one_waiting_job_compiles_and_the_rest_share_it() -> None:
    script = ScriptedRunner(fail_compiles=1)
    pool = await _scripted_pool(script)
    outcomes = await _all(pool, 5)
    await pool.close()
    assert [type(outcome).__name__ for outcome in outcomes].count("SandboxJobFailed") == 1
    results = [outcome for outcome in outcomes if isinstance(outcome, JobResult)]
    assert [result.runs[0].stdout for result in results] == ["int main() {}"] * 4  # what the build holds
    assert (script.compiles, script.prebuilt) == (2, 3)


async def test_a_compile_that_may_not_be_kept_lets_every_waiting_job_compile() -> None:
    script = ScriptedRunner(keep=False)
    pool = await _scripted_pool(script)
    outcomes = await _all(pool, 4)
    stats = pool.stats()
    await pool.close()
    assert all(isinstance(outcome, JobResult) and not _cached(outcome) for outcome in outcomes)
    assert (script.compiles, stats["compile_cache_entries"]) == (4, 0)


async def test_a_cached_build_the_runner_refuses_is_dropped_and_the_job_compiles() -> None:
    script = ScriptedRunner()
    pool = await _scripted_pool(script)
    await _all(pool, 1)
    script.refuse_prebuilt = True
    (again,) = await _all(pool, 1)
    stats = pool.stats()
    await pool.close()
    assert isinstance(again, JobResult) and not _cached(again)
    assert (script.compiles, script.prebuilt, stats["compile_cache_entries"]) == (2, 1, 0)


async def test_jobs_waiting_for_a_compile_count_against_the_queue_limit() -> None:
    script = ScriptedRunner()
    pool = await _scripted_pool(script, queue_limit=1, pool_size=1)
    outcomes = await _all(pool, 4)
    await pool.close()
    # one compiles, one waits for it (the queue's one place), two are turned away while it compiles
    assert [type(outcome).__name__ for outcome in outcomes] == ["JobResult", "JobResult", *["SandboxOverloaded"] * 2]


async def test_a_runner_of_another_protocol_is_refused() -> None:
    script = ScriptedRunner()
    script.protocol = 2
    pool = SlotPool("scripted", script.start, SandboxConfig(pool_size=1))
    with pytest.raises(SandboxUnavailable, match="protocol 2"):
        await pool.start()
    assert runner_module.PROTOCOL == RUNNER_PROTOCOL


# -- the key ---------------------------------------------------------------------------------------------------


def test_the_key_covers_language_source_files_and_limits_but_not_the_runs() -> None:
    def key(job: Job) -> str | None:
        return compile_key(job, resolve_language(job.language), TEST_CONFIG)

    base = _echo(files={"b": "2", "a": "1"})
    keys = {key(job) for job in (base, *DIFFERENT_BUILDS.values(), _echo(), dataclasses.replace(base, language="c"))}
    assert len(keys) == 3 + len(DIFFERENT_BUILDS)
    assert key(dataclasses.replace(base, runs=[Run(stdin="x")] * 3, files={"a": "1", "b": "2"})) == key(base)
    assert key(Job(language="python", source="print(1)", runs=[Run()])) is None  # nothing to compile
    assert key(_echo()) != compile_key(_echo(), resolve_language("cpp"), SandboxConfig(compile_memory_mb=2048))


# -- the LRU ---------------------------------------------------------------------------------------------------


def _entry(size: int) -> CachedBuild:
    return CachedBuild(ExecResult(status=RunStatus.OK), {}, size)


def test_the_cache_drops_the_least_recently_used_first_within_its_bytes() -> None:
    cache = CompileCache(100)
    for key in "abc":
        assert cache.put(key, _entry(30))
    assert cache.get("a") is not None  # a is now the most recently used
    assert cache.put("d", _entry(30))  # 120 > 100: b goes
    assert [key for key in "abcd" if cache.get(key) is not None] == ["a", "c", "d"]
    assert (cache.size, cache.evictions) == (90, 1)
    assert not cache.put("huge", _entry(101))  # larger than the whole cache: kept out, nothing dropped
    assert (len(cache), cache.size) == (3, 90)
    assert cache.put("e", _entry(100))
    assert (len(cache), cache.size, cache.evictions) == (1, 100, 4)


# -- the runner's artifact functions ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _file(data: bytes = b"x", executable: bool = False) -> dict[str, Any]:
    return {"x": executable, "data": _b64(data)}


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    return build


def test_a_packed_build_installs_as_the_same_files_and_modes(tmp_path: Path, fresh: Path) -> None:
    source = tmp_path / "compiled"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "main").write_bytes(b"\x7fELF binary")
    (source / "main").chmod(0o755)
    (source / "main.cpp").write_text("int main() {}")
    (source / "sub" / "deeper" / "Main$1.class").write_bytes(b"\xca\xfe")
    files, size, reason = runner_module.pack_build(str(source), 1 << 20, 16)
    assert reason == "" and files is not None and size == 11 + 13 + 2
    assert sorted(files) == ["main", "main.cpp", "sub/deeper/Main$1.class"]
    runner_module.install_build(str(fresh), files)
    assert (fresh / "main").read_bytes() == b"\x7fELF binary"
    assert (fresh / "sub" / "deeper" / "Main$1.class").read_bytes() == b"\xca\xfe"
    assert os.access(fresh / "main", os.X_OK) and not os.access(fresh / "main.cpp", os.X_OK)


def test_packing_keeps_only_regular_files(tmp_path: Path) -> None:
    build = tmp_path / "b"
    build.mkdir()
    (build / "main").write_bytes(b"binary")
    (build / "to_passwd").symlink_to("/etc/passwd")
    (build / "to_dir").symlink_to("/etc")
    (build / "dangling").symlink_to("/nonexistent")
    os.mkfifo(build / "fifo")
    files, _, _ = runner_module.pack_build(str(build), 1 << 20, 16)
    assert files is not None and sorted(files) == ["main"]


def _odd_name(build: Path) -> None:
    (build / "evil\nname").write_bytes(b"x")


def _too_many_bytes(build: Path) -> None:
    (build / "big").write_bytes(b"x" * 2048)


def _too_many_files(build: Path) -> None:
    for n in range(5):
        (build / f"f{n}").write_bytes(b"x")


def _hard_link(build: Path) -> None:
    (build / "a").write_bytes(b"x")
    os.link(build / "a", build / "b")


ODD_BUILDS: dict[str, Callable[[Path], None]] = {
    "newline_in_a_name": _odd_name,
    "too_many_bytes": _too_many_bytes,
    "too_many_files": _too_many_files,
    "a_hard_link": _hard_link,
}


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in ODD_BUILDS.items()])
def test_an_odd_build_is_not_kept(tmp_path: Path, make: Callable[[Path], None]) -> None:
    build = tmp_path / "b"
    build.mkdir()
    make(build)
    files, _, reason = runner_module.pack_build(str(build), 1024, 4)
    assert files is None and reason


MALICIOUS_ARTIFACTS: dict[str, Any] = {
    "absolute_path": {"/tmp/rlvr-escape": _file()},
    "dot_dot": {"../escape": _file()},
    "dot_dot_inside": {"sub/../../escape": _file()},
    "dot_component": {"./main": _file()},
    "empty_component": {"sub//main": _file()},
    "nul_byte": {"ma\x00in": _file()},
    "control_character": {"ma\nin": _file()},
    "lone_surrogate": {"ma\udcffin": _file()},
    "too_deep": {"/".join(["d"] * 40): _file()},
    "file_then_dir_of_the_same_name": {"sub": _file(), "sub/main": _file()},
    "not_base64": {"main": {"x": True, "data": "not base64!"}},
    "mode_not_a_bool": {"main": {"x": 1, "data": _b64(b"x")}},
    "entry_not_an_object": {"main": "eA=="},
    "not_an_object": ["main"],
}


@pytest.mark.parametrize("artifact", [pytest.param(value, id=name) for name, value in MALICIOUS_ARTIFACTS.items()])
def test_the_runner_refuses_a_malicious_artifact(tmp_path: Path, fresh: Path, artifact: Any) -> None:
    with pytest.raises(ValueError):
        runner_module.install_build(str(fresh), artifact)
    assert [path for path in tmp_path.rglob("*") if not path.is_relative_to(fresh)] == []
    assert not os.path.exists("/tmp/rlvr-escape")


def test_the_runner_never_writes_through_a_symlink(tmp_path: Path, fresh: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (fresh / "sub").symlink_to(target)
    (fresh / "main").symlink_to(target / "main")
    for artifact in ({"sub/main": _file(b"pwned")}, {"main": _file(b"pwned")}):
        with pytest.raises(ValueError):
            runner_module.install_build(str(fresh), artifact)
    assert list(target.iterdir()) == []


def test_an_installed_build_is_sealed_like_a_compiled_one(fresh: Path) -> None:
    runner_module.install_build(str(fresh), {"main": _file(b"bin", True), "lib/data": _file(b"d")})
    runner_module.seal_tree(str(fresh), separated=os.geteuid() == 0)
    modes = {name: stat.S_IMODE(os.lstat(fresh / name).st_mode) for name in ("main", "lib", "lib/data")}
    assert modes == {"main": 0o555, "lib": 0o755, "lib/data": 0o444}
