"""The docker backend: the lock-down a program sees from inside, the limits the cgroup enforces, the reaper.

The hostile programs (fork bombs, output floods, escapes) are in test_hostile.py, run on both backends; this
file checks what only the docker backend promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from sandboxes._claims import CLAIM_LABEL
from sandboxes._reaper import OWNER_LABEL, SANDBOX_LABEL, container_candidates, own_container
from sandboxes.base import Job, Limits, Run, RunStatus, Sandbox, SandboxLost, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.docker import INSTANCE_LABEL, DockerSandbox, connect_engine
from sandboxes.select import open_sandbox
from tests.conftest import missing_backend

pytestmark = pytest.mark.docker

CONFIG = SandboxConfig(pool_size=1, container_memory_mb=256, container_pids=48, work_tmpfs_mb=64)


@pytest.fixture
def client() -> Iterator[Any]:
    try:
        engine = connect_engine()
    except SandboxUnavailable as exc:
        missing_backend(str(exc))
    yield engine
    engine.close()


async def _open(config: SandboxConfig) -> Sandbox:
    try:
        return await open_sandbox("docker", config)
    except SandboxUnavailable as exc:
        missing_backend(str(exc))
        raise


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    opened = await _open(CONFIG)
    yield opened
    await opened.close()


async def _python(sandbox: Sandbox, source: str, limits: Limits | None = None) -> tuple[str, str]:
    result = await sandbox.run(Job(language="python", source=source, runs=[Run()], limits=limits or Limits()))
    (run,) = result.runs
    return run.status, run.stdout.strip()


def _own_containers(client: Any, sandbox: Sandbox) -> list[Any]:
    assert isinstance(sandbox, DockerSandbox)
    stats = sandbox.stats()
    labels = [f"{OWNER_LABEL}={stats['owner']}", f"{INSTANCE_LABEL}={stats['instance']}"]
    return list(client.containers.list(all=True, filters={"label": labels}))


INSIDE = {
    "no_network_interfaces": ("import os; print(sorted(os.listdir('/sys/class/net')))", "['lo']"),
    "no_route_out": (
        "import socket\ntry:\n socket.create_connection(('1.1.1.1', 53), timeout=2); print('connected')\n"
        "except OSError as e: print(type(e).__name__)",
        "OSError",
    ),
    "read_only_root": (
        "import errno\ntry:\n open('/usr/evil', 'w'); print('wrote')\n"
        "except OSError as e: print(errno.errorcode[e.errno])",
        "EROFS",
    ),
    "non_root_user": ("import os; print(os.getuid() != 0 and os.getgid() != 0, os.getgroups())", "True []"),
    "no_capabilities": (  # the bounding set is the runner's six; no-new-privileges keeps a program from them
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))])",
        "['0000000000000000', '0000000000000000', '00000000000000eb']",
    ),
    "runner_has_exactly_six_capabilities": (  # CHOWN DAC_OVERRIDE FOWNER KILL SETGID SETUID
        "print([l.split()[1] for l in open('/proc/1/status') if l.startswith(('Uid', 'CapEff', 'CapPrm', 'CapBnd'))])",
        "['0', '00000000000000eb', '00000000000000eb', '00000000000000eb']",
    ),
    "two_uids_of_its_own": (
        "import os; a = open('/proc/1/cmdline').read().split(chr(0)); h = int(a[a.index('--harness-uid') + 1])\n"
        "print(len({0, h, os.getuid()}), int(a[a.index('--candidate-uid') + 1]) == os.getuid())",
        "3 True",
    ),
    "small_ipc_limits": (
        "print([open('/proc/sys/' + n).read().strip() for n in ('kernel/shmmax', 'kernel/shmmni',"
        " 'kernel/shm_rmid_forced', 'kernel/msgmni', 'fs/mqueue/queues_max')])",
        f"['{64 << 20}', '64', '1', '32', '16']",
    ),
    "mqueue_mounted": (
        "print([l.split(' - ')[1].split()[0] for l in open('/proc/self/mountinfo') if l.split()[4] == '/dev/mqueue'])",
        "['mqueue']",
    ),
    "no_new_privileges": (
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')])",
        "['1']",
    ),
    "runner_is_pid_1_from_its_inline_source": (  # no file of the service's is mounted
        "a = open('/proc/1/cmdline').read().split(chr(0))\n"
        "print(a[:4], 'rlvr resident runner' in a[4], [l for l in open('/proc/self/mountinfo') if 'runner' in l])",
        "['python3', '-I', '-S', '-c'] True []",
    ),
}


@pytest.mark.parametrize(("source", "expected"), [pytest.param(*case, id=name) for name, case in INSIDE.items()])
async def test_a_program_sees_a_locked_down_container(sandbox: Sandbox, source: str, expected: str) -> None:
    assert await _python(sandbox, source) == (RunStatus.OK, expected)


CGROUP_LIMITS = """
import os
def read(*paths):
    for path in paths:
        if os.path.exists(path):
            return open(path).read().strip()
    return None
memory = read('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes')
swap = read('/sys/fs/cgroup/memory.swap.max')
if swap is None:  # cgroup v1: memsw is memory + swap
    swap = str(int(read('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')) - int(memory))
pids = read('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max')
print(memory, swap, pids)
"""


async def test_the_container_has_a_memory_cap_without_swap_and_a_pids_cap(sandbox: Sandbox) -> None:
    assert await _python(sandbox, CGROUP_LIMITS) == (RunStatus.OK, f"{256 << 20} 0 48")


async def test_the_cgroup_stops_a_program_that_the_job_limits_would_allow(sandbox: Sandbox) -> None:
    hog = "b = bytearray(600 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')"
    status, stdout = await _python(sandbox, hog, Limits(memory_mb=2048))
    assert status in (RunStatus.MLE, RunStatus.RE)
    assert stdout == ""
    assert await _python(sandbox, "print(6 * 7)") == (RunStatus.OK, "42")


SHARED_MEMORY = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print([libc.shmget(0, size, 0o1600) >= 0 for size in (1 << 20, 65 << 20)])  # IPC_CREAT | 0600
"""


async def test_a_program_cannot_pin_more_shared_memory_than_the_ipc_limits(sandbox: Sandbox) -> None:
    assert await _python(sandbox, SHARED_MEMORY, Limits(memory_mb=1024)) == (RunStatus.OK, "[True, False]")


FORK_COUNT = """
import os, time
count = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        count += 1
except OSError:
    pass
print(count)
"""


async def test_the_pids_cap_bounds_processes_beyond_the_job_limit(sandbox: Sandbox) -> None:
    status, stdout = await _python(sandbox, FORK_COUNT, Limits(max_processes=10_000, timeout_s=10))
    assert status == RunStatus.OK
    assert 0 < int(stdout) < 48
    assert await _python(sandbox, "print(6 * 7)") == (RunStatus.OK, "42")


async def test_close_leaves_no_container(client: Any) -> None:
    opened = await _open(SandboxConfig(pool_size=2))
    await opened.run(Job(language="python", source="print(1)", runs=[Run()]))
    assert len(_own_containers(client, opened)) == 2
    assert opened.stats()["runs_by_status"] == {RunStatus.OK: 1}
    await opened.close()
    assert _own_containers(client, opened) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _labelled_container(client: Any, owner: str) -> Any:
    labels = {SANDBOX_LABEL: "1", OWNER_LABEL: owner}
    return client.containers.create(CONFIG.image, ["sleep", "60"], labels=labels, network_mode="none")


@pytest.mark.parametrize(
    ("owner", "reaped"),
    [
        pytest.param("{host}/{dead_pid}/1", True, id="dead_owner_on_this_host"),
        pytest.param("garbage", True, id="unreadable_owner"),
        pytest.param("another-host.example/1/1", False, id="owner_on_another_host"),
    ],
)
async def test_start_reaps_orphans_of_dead_owners(client: Any, owner: str, reaped: bool) -> None:
    orphan = _labelled_container(client, owner.format(host=socket.gethostname(), dead_pid=_dead_pid()))
    try:
        opened = await _open(CONFIG)
        await opened.close()
        still_there = bool(client.containers.list(all=True, filters={"id": orphan.id}))
        assert still_there is not reaped
    finally:
        if not reaped:
            orphan.remove(force=True)


def _owner_container(client: Any, state: str) -> str:
    """The id of a container in ``state`` (running, stopped, removed), as a containerised service's would be."""
    container = client.containers.create(CONFIG.image, ["sleep", "60"], network_mode="none", stop_signal="SIGKILL")
    if state in ("running", "stopped"):
        container.start()
    if state == "stopped":
        container.stop(timeout=0)
    if state == "removed":
        container.remove(force=True)
    return str(container.id)


@pytest.mark.parametrize(
    ("state", "reaped"),
    [
        pytest.param("stopped", True, id="its_container_stopped"),
        pytest.param("removed", True, id="its_container_removed"),
        pytest.param("running", False, id="its_container_runs"),
    ],
)
async def test_orphans_of_a_service_in_a_container_are_reaped_when_its_container_stops(
    client: Any, state: str, reaped: bool
) -> None:
    owner_container = _owner_container(client, state)
    orphan = _labelled_container(client, f"container:{owner_container}/1/1")
    try:
        opened = await _open(CONFIG)
        await opened.close()
        still_there = bool(client.api.containers(all=True, filters={"id": orphan.id}))
        assert still_there is not reaped
    finally:
        for container in (orphan.id, owner_container):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container, force=True)


PRINT_WHERE_I_RUN = "cat /proc/self/mountinfo; echo ==; cat /proc/self/cgroup; echo ==; hostname; sleep 60"


def test_a_process_in_a_container_finds_its_container_on_the_engine(client: Any) -> None:
    container = client.containers.run(CONFIG.image, ["sh", "-c", PRINT_WHERE_I_RUN], detach=True, network_mode="none")
    try:
        # it prints where it runs, then stays up (the engine must see it running): poll its logs, however slow the host
        deadline, seen = time.monotonic() + 120, ""
        while not (seen.count("==\n") == 2 and seen.rpartition("==\n")[2].strip()):
            assert time.monotonic() < deadline, f"the container never printed where it runs: {seen[-300:]!r}"
            time.sleep(0.1)
            seen = container.logs().decode()
        mountinfo, cgroup, hostname = seen.split("==\n")
        candidates = container_candidates(mountinfo, cgroup, hostname.strip())
        assert candidates[0] == container.id  # from the engine's bind mounts, in full
        assert own_container(client, candidates, hostname.strip()) == container.id
    finally:
        container.remove(force=True)


CRASH = """
import asyncio, os
from sandboxes.config import SandboxConfig
from sandboxes.docker import DockerSandbox
async def crash():
    sandbox = DockerSandbox(SandboxConfig(pool_size=2))
    await sandbox.start()
    print(sandbox.stats()["owner"], flush=True)
    os._exit(0)  # no close(): the containers are orphans now
asyncio.run(crash())
"""


async def test_containers_of_a_crashed_service_are_reaped_by_the_next(client: Any) -> None:
    repo = Path(__file__).resolve().parents[2]
    crashed = subprocess.run([sys.executable, "-c", CRASH], cwd=repo, capture_output=True, text=True, check=True)
    owner = crashed.stdout.strip()
    orphans = client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    claims = [orphan for orphan in orphans if CLAIM_LABEL in orphan["Labels"]]
    assert (len(orphans), len(claims)) == (3, 1)  # two sandboxes and the claim of its uid block
    opened = await _open(CONFIG)
    await opened.close()
    assert client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner}"}) == []
    assert opened.stats()["orphans_reaped"] >= 3


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        pytest.param(SandboxConfig(image="rlvr-runtime:no-such-tag"), "image rlvr-runtime:no-such-tag", id="image"),
        pytest.param(SandboxConfig(docker_base_url="unix:///nonexistent/docker.sock"), "no Docker engine", id="engine"),
    ],
)
async def test_unavailable_backend_says_why(client: Any, config: SandboxConfig, reason: str) -> None:
    with pytest.raises(SandboxUnavailable, match=reason):
        await open_sandbox("docker", config)


async def test_parallel_slots_do_not_share_a_process_budget() -> None:
    """A fork bomb in one slot must not make fork fail in another (RLIMIT_NPROC counts per uid, host-wide)."""
    opened = await _open(SandboxConfig(pool_size=2))
    try:
        hold = FORK_COUNT + "time.sleep(5)\n"
        bomb = Job(language="python", source=hold, runs=[Run()], limits=Limits(timeout_s=10))
        threads = "import threading\nts = [threading.Thread(target=lambda: None) for _ in range(40)]\n"
        threads += "[t.start() for t in ts]\n[t.join() for t in ts]\nprint('ok')"
        worker = Job(language="python", source=threads, runs=[Run()] * 5)
        first_bomb = asyncio.create_task(opened.run(bomb))
        await asyncio.sleep(1.0)  # let the bomb fill its process budget first
        result = await opened.run(worker)
        await first_bomb
        assert [(run.status, run.stdout) for run in result.runs] == [(RunStatus.OK, "ok\n")] * 5
    finally:
        await opened.close()


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        pytest.param("kill", "killed from outside", id="killed_by_an_operator"),
        # the runner's stream may end before the removal does: killed, then removed
        pytest.param("remove", "removed|killed from outside", id="removed_by_an_operator"),
    ],
)
async def test_a_container_taken_away_under_a_job_is_lost_not_the_programs_fault(
    client: Any, how: str, reason: str
) -> None:
    opened = await _open(CONFIG)
    try:
        job = Job(language="python", source="import time\ntime.sleep(30)", runs=[Run()], limits=Limits(timeout_s=40))
        running = asyncio.create_task(opened.run(job))
        await asyncio.sleep(1.0)
        (container,) = _own_containers(client, opened)
        if how == "kill":
            container.kill()
        else:
            container.remove(force=True)
        with pytest.raises(SandboxLost, match=reason):
            await asyncio.wait_for(running, 30)
        assert await _python(opened, "print(6 * 7)") == (RunStatus.OK, "42")  # a fresh slot took its place
    finally:
        await opened.close()


HELLO = {
    "python": 'print("hi")',
    "cpp": '#include <iostream>\nint main() { std::cout << "hi" << std::endl; }',
    "c": '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }',
    "java": 'public class Main { public static void main(String[] a) { System.out.println("hi"); } }',
    "javascript": 'console.log("hi")',
    "go": 'package main\nimport "fmt"\nfunc main() { fmt.Println("hi") }',
    "rust": 'fn main() { println!("hi"); }',
}


@pytest.mark.parametrize(("language", "source"), [pytest.param(*case, id=case[0]) for case in HELLO.items()])
async def test_the_runtime_image_runs_every_language(sandbox: Sandbox, language: str, source: str) -> None:
    result = await sandbox.run(Job(language=language, source=source, runs=[Run()]))
    assert result.compile is None or result.compile.status == RunStatus.OK, result.compile
    assert [(run.status, run.stdout) for run in result.runs] == [(RunStatus.OK, "hi\n")]
