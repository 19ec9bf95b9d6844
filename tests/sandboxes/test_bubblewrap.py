"""The bubblewrap backend: what a program sees from inside (both modes: uid separation as root, one uid without),
the slot's cgroup, and the warm pool's behaviour around it (queue, recycling, a hung runner, close with work in
flight). Hostile programs are in test_hostile.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandboxes import bubblewrap
from sandboxes._cgroup import CgroupUnavailable, find_cgroup_tree
from sandboxes.base import (
    Job,
    Limits,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxJobFailed,
    SandboxOverloaded,
    SandboxUnavailable,
)
from sandboxes.config import SandboxConfig
from sandboxes.languages import UnknownLanguage
from sandboxes.select import open_sandbox
from tests.sandboxes.conftest import TEST_CONFIG, assert_healthy, close_and_check_clean, open_or_skip

pytestmark = pytest.mark.bwrap


MODES = [pytest.param("uid", id="uid_separation"), pytest.param("none", id="one_uid")]


async def _open_in_mode(mode: str, monkeypatch: pytest.MonkeyPatch, config: SandboxConfig = TEST_CONFIG) -> Sandbox:
    """A bubblewrap sandbox in ``mode``: "uid" needs root; "none" is what a service without root gets."""
    if mode == "uid" and not bubblewrap.can_separate_uids():
        pytest.skip("uid separation needs a service running as root with CAP_SYS_ADMIN")
    if mode == "none":
        monkeypatch.setattr(bubblewrap, "can_separate_uids", lambda: False)
    opened = await open_or_skip("bubblewrap", config)
    assert opened.stats()["separation"] == mode  # type: ignore[attr-defined]
    return opened


@pytest.fixture(params=MODES)
async def bwrap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    opened = await _open_in_mode(request.param, monkeypatch)
    yield opened
    await close_and_check_clean(opened)


async def _stdout(sandbox: Sandbox, source: str) -> str:
    result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=Limits(timeout_s=5.0)))
    (run,) = result.runs
    assert run.status == RunStatus.OK, run
    return run.stdout


CAPS = "print({l.split(':')[0]: l.split()[1] for l in open('/proc/{pid}/status') if l.startswith(('Cap', 'NoNew'))})"
NO_CAPS = "0000000000000000"
SIX_CAPS = "00000000000000eb"  # CHOWN DAC_OVERRIDE FOWNER KILL SETGID SETUID


def _caps(effective: str, bounding: str) -> str:
    fields = {"CapInh": NO_CAPS, "CapPrm": effective, "CapEff": effective, "CapBnd": bounding, "CapAmb": NO_CAPS}
    return f"{fields | {'NoNewPrivs': '1'}}\n"


INSIDE_VIEW = [
    pytest.param("import os\nprint(os.getuid() != 0, os.getgid() != 0)", "True True\n", id="not_root"),
    pytest.param("import os\nprint(os.getgroups())", "[]\n", id="no_supplementary_groups"),
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
    pytest.param("import os\nprint(os.listdir('/usr/local'))", "[]\n", id="usr_local_is_hidden"),
    pytest.param(
        "import os\nprint([p for p in ('/etc/ssl', '/etc/hosts', '/etc/hostname', '/etc/group', '/etc/environment',"
        " '/etc/apt', '/etc/docker', '/etc/ssh', '/usr/local/etc', '/usr/local/bin') if os.path.exists(p)])",
        "[]\n",
        id="no_host_configuration",
    ),
    pytest.param(
        "mounts = {l.split()[4]: l.split(' - ')[1].split()[0] for l in open('/proc/self/mountinfo')}\n"
        "print(mounts.get('/dev/mqueue'), mounts.get('/usr/local'))",
        "mqueue tmpfs\n",
        id="mqueue_mounted_and_usr_local_masked",
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


@pytest.mark.parametrize(
    ("mode", "pid", "expected"),
    [
        pytest.param("uid", "self", _caps(NO_CAPS, SIX_CAPS), id="uid_separation-program_has_none"),
        pytest.param("uid", "1", _caps(SIX_CAPS, SIX_CAPS), id="uid_separation-runner_has_exactly_six"),
        pytest.param("none", "self", _caps(NO_CAPS, NO_CAPS), id="one_uid-program_has_none"),
        pytest.param("none", "1", _caps(NO_CAPS, NO_CAPS), id="one_uid-runner_has_none"),
    ],
)
async def test_capabilities_of_the_runner_and_the_program(
    monkeypatch: pytest.MonkeyPatch, mode: str, pid: str, expected: str
) -> None:
    sandbox = await _open_in_mode(mode, monkeypatch)
    try:
        assert await _stdout(sandbox, CAPS.replace("{pid}", pid)) == expected
    finally:
        await close_and_check_clean(sandbox)


SLOT_UIDS = """
import os, time
args = open('/proc/1/cmdline').read().split(chr(0))
harness = args[args.index('--harness-uid') + 1] if '--harness-uid' in args else None
print(os.getuid(), harness, os.getgid())
time.sleep(1.0)  # hold the slot, so that the other jobs go to the other slots
"""


async def test_every_slot_of_every_sandbox_has_two_uids_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TEST_CONFIG.model_copy(update={"pool_size": 2})
    sandboxes = [await _open_in_mode("uid", monkeypatch, config) for _ in range(2)]
    try:
        job = Job(language="python", source=SLOT_UIDS, runs=[Run()])
        results = await asyncio.gather(*(sandbox.run(job) for sandbox in sandboxes for _ in range(2)))
        seen = [result.runs[0].stdout.split() for result in results]
        uids = [int(uid) for candidate, harness, _ in seen for uid in (candidate, harness)]
        assert len(set(uids)) == 8  # 4 slots x (candidate, harness), none shared
        assert 0 not in uids
        assert {gid for _, _, gid in seen} == {str(config.gid)}
    finally:
        for sandbox in reversed(sandboxes):  # the last opened first: the first one's check sees every process
            await close_and_check_clean(sandbox)


async def test_without_root_everything_runs_as_one_unprivileged_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = await _open_in_mode("none", monkeypatch)
    try:
        assert await _stdout(sandbox, SLOT_UIDS) == f"{TEST_CONFIG.uid} None {TEST_CONFIG.gid}\n"
    finally:
        await close_and_check_clean(sandbox)


def _cgroup_file(path: Path, *names: str) -> str:
    return next((path / name).read_text().strip() for name in names if (path / name).exists())


def _slot_cgroups() -> tuple[str, list[Path]]:
    try:
        tree = find_cgroup_tree(TEST_CONFIG.cgroup_parent)
    except CgroupUnavailable as exc:
        pytest.skip(f"this service cannot make cgroups here: {exc}")
    return tree.version, sorted(path for parent in tree.parents for path in parent.glob(f"rlvr-{os.getpid()}-*"))


async def test_each_slot_is_capped_by_a_cgroup_of_its_own_that_close_removes() -> None:
    version, before = _slot_cgroups()
    config = TEST_CONFIG.model_copy(update={"pool_size": 2, "container_memory_mb": 300, "container_pids": 77})
    sandbox = await open_or_skip("bubblewrap", config)
    made: list[Path] = []
    try:
        assert sandbox.stats()["cgroup"] == version  # type: ignore[attr-defined]
        made += sorted(set(_slot_cgroups()[1]) - set(before))
        assert len(made) == 2 * (1 if version == "v2" else 2)  # a slot's dir in each hierarchy (v1: memory, pids)
        for path in made:
            if "pids" in path.parts:
                assert _cgroup_file(path, "pids.max") == "77"
            else:
                assert _cgroup_file(path, "memory.max", "memory.limit_in_bytes") == str(300 << 20)
                assert _cgroup_file(path, "memory.swap.max", "memory.memsw.limit_in_bytes") in ("0", str(300 << 20))
            members = _cgroup_file(path, "cgroup.procs").split()
            assert {_cmdline(pid).split()[0].rsplit("/", 1)[-1] for pid in members} == {"bwrap", "python3"}
    finally:
        await close_and_check_clean(sandbox)
    assert not any(path.exists() for path in made)


def _cmdline(pid: str) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


PIN_SHARED_MEMORY = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
size = 400 << 20
segment = libc.shmget(0, size, 0o1600)  # IPC_CREAT | 0600
address = libc.shmat(segment, None, 0)
print('attached', segment >= 0 and address not in (None, ctypes.c_void_p(-1).value), flush=True)
ctypes.memset(address, 1, size)
print('filled', flush=True)
"""


async def test_memory_of_a_whole_slot_is_capped_by_its_cgroup() -> None:
    _slot_cgroups()
    # the job's own limit allows 1 GB; the slot's cgroup allows 300 MB for everything, shared memory included
    sandbox = await open_or_skip("bubblewrap", TEST_CONFIG.model_copy(update={"container_memory_mb": 300}))
    try:
        limits = Limits(timeout_s=10.0, memory_mb=1024)
        result = await sandbox.run(Job(language="python", source=PIN_SHARED_MEMORY, runs=[Run()], limits=limits))
        (run,) = result.runs
        assert (run.status, run.stdout) in [(RunStatus.RE, "attached True\n"), (RunStatus.MLE, "attached True\n")]
        await assert_healthy(sandbox)
    finally:
        await close_and_check_clean(sandbox)


async def test_the_host_toolchains_are_there() -> None:
    sandbox = await open_or_skip("bubblewrap")
    try:
        assert {"python", "cpp", "c"} <= set(sandbox.languages)  # type: ignore[attr-defined]
        with pytest.raises(UnknownLanguage):
            await sandbox.run(Job(language="cobol", source="", runs=[Run()]))
    finally:
        await close_and_check_clean(sandbox)


async def test_no_bwrap_means_unavailable_not_unsandboxed() -> None:
    config = TEST_CONFIG.model_copy(update={"bwrap_path": "/nonexistent/bwrap"})
    with pytest.raises(SandboxUnavailable, match="bwrap"):
        await open_sandbox("bubblewrap", config)


async def test_auto_names_why_each_backend_failed() -> None:
    config = TEST_CONFIG.model_copy(update={"bwrap_path": "/nonexistent/bwrap", "image": "rlvr-no-such-image:never"})
    with pytest.raises(SandboxUnavailable) as raised:
        await open_sandbox("auto", config)
    assert "docker" in str(raised.value)
    assert "bubblewrap" in str(raised.value)


async def test_an_unknown_backend_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="firecracker"):
        await open_sandbox("firecracker", TEST_CONFIG)


async def test_stats_count_jobs_runs_and_recycles() -> None:
    sandbox = await open_or_skip("bubblewrap", TEST_CONFIG.model_copy(update={"max_jobs_per_slot": 2}))
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
    config = TEST_CONFIG.model_copy(update={"queue_limit": 0, "retry_after_s": 2.5})
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
    sandbox = await open_or_skip("bubblewrap", TEST_CONFIG.model_copy(update={"pool_size": 3}))
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
    # A negative slack makes the host deadline (5 s run - 3 s) shorter than the run's own limit: the runner looks
    # hung.
    config = TEST_CONFIG.model_copy(update={"deadline_slack_s": -3.0, "per_run_overhead_s": 0.0})
    sandbox = await open_or_skip("bubblewrap", config)
    try:
        limits = Limits(timeout_s=5.0)
        slow = Job(language="python", source=SLEEPER, runs=[Run(stdin="30")], limits=limits)
        with pytest.raises(SandboxJobFailed, match="no result within"):
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
    with pytest.raises(SandboxJobFailed):  # the job was in a runner's hands: a fresh slot may retry it
        await busy
    with pytest.raises(SandboxError) as raised:
        await sandbox.run(Job(language="python", source="print(1)", runs=[Run()]))
    assert not isinstance(raised.value, SandboxJobFailed)  # it never reached a runner
