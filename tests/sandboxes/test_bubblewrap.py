"""The bubblewrap backend: what a program sees from inside, and the warm pool's behaviour around it (queue,
recycling, a hung runner, close with work in flight). Hostile programs are in test_hostile.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from sandboxes.base import Job, Limits, Run, RunStatus, Sandbox, SandboxError, SandboxOverloaded, SandboxUnavailable
from sandboxes.languages import UnknownLanguage
from sandboxes.select import open_sandbox
from tests.sandboxes.conftest import TEST_CONFIG, assert_healthy, close_and_check_clean, open_or_skip

pytestmark = pytest.mark.bwrap


@pytest.fixture
async def bwrap() -> AsyncIterator[Sandbox]:
    opened = await open_or_skip("bubblewrap")
    yield opened
    await close_and_check_clean(opened)


async def _stdout(sandbox: Sandbox, source: str) -> str:
    result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=Limits(timeout_s=5.0)))
    (run,) = result.runs
    assert run.status == RunStatus.OK, run
    return run.stdout


INSIDE_VIEW = [
    pytest.param("import os\nprint(os.getuid() != 0, os.getgid() != 0)", "True True\n", id="not_root"),
    pytest.param(
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))])",
        "['0000000000000000', '0000000000000000', '0000000000000000']\n",
        id="no_capabilities",
    ),
    pytest.param("import os\nprint(os.getppid())", "1\n", id="runner_is_pid_1"),
    pytest.param("import socket\nprint(socket.gethostname())", "sandbox\n", id="own_hostname"),
    pytest.param(
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))",
        "['lo']\n",
        id="no_network_interfaces",
    ),
    pytest.param(
        "import os\nprint([p for p in ('/etc/shadow', '/etc/passwd', '/root', '/home', '/work', '/var/run/docker.sock')"
        " if os.path.exists(p)])",
        "[]\n",
        id="no_host_secrets_or_homes",
    ),
    pytest.param(
        "import subprocess\nprint(subprocess.run(['unshare', '--user', 'true'], capture_output=True).returncode != 0)",
        "True\n",
        id="no_nested_user_namespaces",
    ),
    pytest.param(
        "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))", "2\n", id="sees_only_itself"
    ),
]


@pytest.mark.parametrize(("source", "expected"), INSIDE_VIEW)
async def test_what_a_program_sees_from_inside(bwrap: Sandbox, source: str, expected: str) -> None:
    assert await _stdout(bwrap, source) == expected


async def test_the_host_toolchains_are_there() -> None:
    sandbox = await open_or_skip("bubblewrap")
    try:
        assert {"python", "cpp", "c"} <= set(sandbox.languages)  # type: ignore[attr-defined]
        with pytest.raises(UnknownLanguage):
            await sandbox.run(Job(language="cobol", source="", runs=[Run()]))
    finally:
        await close_and_check_clean(sandbox)


async def test_no_bwrap_means_unavailable_not_unsandboxed() -> None:
    config = dataclasses.replace(TEST_CONFIG, bwrap_path="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="bwrap"):
        await open_sandbox("bubblewrap", config)


async def test_auto_names_why_each_backend_failed() -> None:
    config = dataclasses.replace(TEST_CONFIG, bwrap_path="/nonexistent/bwrap", image="rlvr-no-such-image:never")
    with pytest.raises(SandboxUnavailable) as raised:
        await open_sandbox("auto", config)
    assert "docker" in str(raised.value)
    assert "bubblewrap" in str(raised.value)


async def test_an_unknown_backend_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="firecracker"):
        await open_sandbox("firecracker", TEST_CONFIG)


async def test_stats_count_jobs_runs_and_recycles() -> None:
    sandbox = await open_or_skip("bubblewrap", dataclasses.replace(TEST_CONFIG, max_jobs_per_slot=2))
    try:
        limits = Limits(timeout_s=1.0)
        for _ in range(3):
            await sandbox.run(Job(language="python", source="print(1)", runs=[Run(), Run()], limits=limits))
        await sandbox.run(Job(language="python", source="while True: pass", runs=[Run()], limits=limits))
        stats = sandbox.stats()  # type: ignore[attr-defined]
        assert {"backend", "size", "live", "idle", "busy", "queue_depth", "jobs", "recycles"} <= set(stats)
        assert (stats["backend"], stats["size"], stats["jobs"]) == ("bubblewrap", 1, 4)
        assert stats["runs_by_status"] == {"OK": 6, "TLE": 1}
        assert stats["recycles"] == 2  # after the 2nd job (max_jobs_per_slot) and after the TLE
        await assert_healthy(sandbox)
    finally:
        await close_and_check_clean(sandbox)


SLEEPER = "import time\ntime.sleep(float(input()))\nprint('woke')\n"


async def test_a_full_queue_answers_overloaded_with_a_retry_hint() -> None:
    config = dataclasses.replace(TEST_CONFIG, queue_limit=0, retry_after_s=2.5)
    sandbox = await open_or_skip("bubblewrap", config)
    try:
        busy = asyncio.ensure_future(sandbox.run(Job(language="python", source=SLEEPER, runs=[Run(stdin="1")])))
        await asyncio.sleep(0.3)
        with pytest.raises(SandboxOverloaded) as raised:
            await sandbox.run(Job(language="python", source="print(1)", runs=[Run()]))
        assert raised.value.retry_after_s == 2.5
        assert (await busy).runs[0].stdout == "woke\n"
    finally:
        await close_and_check_clean(sandbox)


async def test_jobs_run_in_parallel_up_to_the_pool_size() -> None:
    sandbox = await open_or_skip("bubblewrap", dataclasses.replace(TEST_CONFIG, pool_size=3))
    try:
        jobs = [Job(language="python", source=SLEEPER, runs=[Run(stdin="1.5")]) for _ in range(3)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(sandbox.run(job) for job in jobs))
        assert [result.runs[0].stdout for result in results] == ["woke\n"] * 3
        assert loop.time() - started < 3 * 1.5  # not one after another
    finally:
        await close_and_check_clean(sandbox)


async def test_a_runner_that_misses_the_host_deadline_is_replaced() -> None:
    # A negative slack makes the host deadline shorter than the run's own limit: the runner looks hung.
    config = dataclasses.replace(TEST_CONFIG, deadline_slack_s=-4.0, per_run_overhead_s=0.0)
    sandbox = await open_or_skip("bubblewrap", config)
    try:
        slow = Job(language="python", source=SLEEPER, runs=[Run(stdin="30")], limits=Limits(timeout_s=5.0))
        with pytest.raises(SandboxError, match="no result within"):
            await sandbox.run(slow)
        quick = Job(language="python", source="print(input())", runs=[Run(stdin="fresh")], limits=Limits(timeout_s=5))
        assert (await sandbox.run(quick)).runs[0].stdout == "fresh\n"
        assert sandbox.stats()["sandbox_errors"] == 1  # type: ignore[attr-defined]
    finally:
        await close_and_check_clean(sandbox)


async def test_close_with_a_job_in_flight_leaves_nothing_behind() -> None:
    sandbox = await open_or_skip("bubblewrap")
    busy = asyncio.ensure_future(sandbox.run(Job(language="python", source=SLEEPER, runs=[Run(stdin="30")])))
    await asyncio.sleep(0.5)
    await close_and_check_clean(sandbox)
    with pytest.raises(SandboxError):
        await busy
    with pytest.raises(SandboxError):
        await sandbox.run(Job(language="python", source="print(1)", runs=[Run()]))
