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


# Processes that already ran when a sandbox was opened (another suite's session service, a module-scoped
# sandbox): only what appeared after it is this sandbox's to clean up.
_BASELINES: dict[int, set[int]] = {}


async def open_or_skip(backend: str, config: SandboxConfig = TEST_CONFIG) -> Sandbox:
    before = set(_descendants(os.getpid()))
    try:
        opened = await open_sandbox(backend, config)
    except SandboxUnavailable as exc:
        missing_backend(f"the {backend} sandbox is not available: {exc}")
        raise
    _BASELINES[id(opened)] = before
    return opened


def _descendants(root: int) -> dict[int, str]:
    """Command lines of every live process below ``root`` (zombies excluded), by pid."""
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
    return {pid: _cmdline(pid) for pid in found}


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"<pid {pid} gone>"


def _containers_of(owner: str, instance: str) -> list[str]:
    from sandboxes.docker import connect_engine

    client = connect_engine()
    try:
        # the low-level call: containers.list() inspects each one and races with their removal
        return [
            c["Id"]
            for c in client.api.containers(
                all=True, filters={"label": [f"rlvr.owner={owner}", f"rlvr.instance={instance}"]}
            )
        ]
    finally:
        client.close()


async def close_and_check_clean(sandbox: Sandbox) -> None:
    stats: dict[str, Any] = sandbox.stats() if hasattr(sandbox, "stats") else {}
    before = _BASELINES.pop(id(sandbox), set())
    await sandbox.close()
    now = _descendants(os.getpid())
    leftovers = [cmd for pid, cmd in now.items() if pid not in before and any(m in cmd for m in SANDBOX_MARKS)]
    assert leftovers == [], "processes left behind after close()"
    if sandbox.name == "docker" and stats.get("owner"):
        left = _containers_of(str(stats["owner"]), str(stats["instance"]))
        assert left == [], "containers left behind after close()"


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
