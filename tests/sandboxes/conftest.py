"""The ``sandbox`` fixture: each backend-generic test runs once per backend (bubblewrap, docker).

A backend that cannot run here skips the test locally and fails it under RLVR_REQUIRE_SANDBOXES=1 (see
``tests.conftest.missing_backend``). The fixture closes the sandbox after the test and checks that nothing was
left behind: no process of ours (bwrap) and no container of ours (docker).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandboxes.base import Job, Limits, Run, RunStatus, Sandbox, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.select import open_sandbox
from tests.conftest import missing_backend

BACKENDS = [
    pytest.param("bubblewrap", marks=pytest.mark.bwrap, id="bwrap"),
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
]

SANDBOX_MARKS = ("bwrap", "/opt/rlvr/runner.py", "docker")  # other suites' worker pools are not ours to judge

# Small on purpose: the hostile tests hit these limits, and a test run must stay short on a 2-core machine.
TEST_CONFIG = SandboxConfig(
    pool_size=1,
    work_tmpfs_mb=64,
    container_memory_mb=1024,
    container_pids=256,
    deadline_slack_s=15.0,
)


async def open_or_skip(backend: str, config: SandboxConfig = TEST_CONFIG) -> Sandbox:
    try:
        return await open_sandbox(backend, config)
    except SandboxUnavailable as exc:
        missing_backend(f"the {backend} sandbox is not available: {exc}")
        raise


def _descendants(root: int) -> list[str]:
    """Command lines of every live process below ``root`` (zombies excluded)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(name))
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return [_cmdline(pid) for pid in found]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"<pid {pid} gone>"


def _containers_of(owner: str) -> list[str]:
    import docker  # the docker SDK is an optional dependency: only the docker leg needs it

    client = docker.from_env()
    try:
        # the low-level call: containers.list() inspects each one and races with their removal
        return [c["Id"] for c in client.api.containers(all=True, filters={"label": f"rlvr.owner={owner}"})]
    finally:
        client.close()


async def close_and_check_clean(sandbox: Sandbox) -> None:
    stats: dict[str, Any] = sandbox.stats() if hasattr(sandbox, "stats") else {}
    await sandbox.close()
    leftovers = [cmd for cmd in _descendants(os.getpid()) if any(mark in cmd for mark in SANDBOX_MARKS)]
    assert leftovers == [], "processes left behind after close()"
    if sandbox.name == "docker" and stats.get("owner"):
        assert _containers_of(str(stats["owner"])) == [], "containers left behind after close()"


@pytest.fixture(params=BACKENDS)
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    opened = await open_or_skip(request.param)
    yield opened
    await close_and_check_clean(opened)


ADD_TWO = "a, b = map(int, input().split())\nprint(a + b)\n"


async def assert_healthy(sandbox: Sandbox) -> None:
    """The next job on the same sandbox gets the right answer."""
    result = await sandbox.run(Job(language="python", source=ADD_TWO, runs=[Run(stdin="2 3\n")], limits=Limits()))
    (run,) = result.runs
    assert (run.status, run.stdout, run.stderr) == (RunStatus.OK, "5\n", "")
