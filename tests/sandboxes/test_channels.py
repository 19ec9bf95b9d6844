"""The host's end of a runner's stdout, on both backends: a result line is read whole up to
``SandboxConfig.result_line_bytes`` and refused past it, without buffering what the runner keeps sending.

The runner bounds its own outputs; this is the host's guard for a runner that does not (NUL-heavy output once grew
the service to 3 GB). The channels are driven directly, with a stand-in runner on the other end.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import docker.errors
import pytest

from sandboxes import docker as docker_backend
from sandboxes._pool import Channel
from sandboxes.base import SandboxLost
from sandboxes.bubblewrap import _BwrapChannel
from sandboxes.config import SandboxConfig
from sandboxes.docker import DockerSandbox, _AttachChannel

LIMIT = 1 << 18
CHUNK = 1 << 14


async def _nothing() -> None:
    return None


async def _the_runners_own_end() -> str | None:
    return None


@asynccontextmanager
async def _bwrap_channel(line: bytes) -> AsyncIterator[Channel]:
    """A child process that writes ``line`` and then waits, as a runner would wait for the next job."""
    script = "import sys, time\nsys.stdout.buffer.write(sys.stdin.buffer.read(int(sys.argv[1])))\nsys.stdout.flush()\n"
    script += "time.sleep(60)\n"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", script, str(len(line))),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=LIMIT,
    )
    channel = _BwrapChannel(process, LIMIT, _nothing)
    assert process.stdin is not None
    process.stdin.write(line)
    try:
        yield channel
    finally:
        await channel.destroy()


def _frames(data: bytes) -> bytes:
    """Docker's attach stream: stdout in 8-byte-header frames (with a stderr frame between, as the engine may)."""
    out = bytearray(struct.pack(">BxxxL", 2, 5) + b"noise")
    for start in range(0, len(data), CHUNK):
        chunk = data[start : start + CHUNK]
        out += struct.pack(">BxxxL", 1, len(chunk)) + chunk
    return bytes(out)


@asynccontextmanager
async def _docker_channel(line: bytes) -> AsyncIterator[Channel]:
    """An attach socket whose other end sends ``line`` framed and then keeps it open."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=ours, limit=1 << 20)
    channel = _AttachChannel("0" * 64, reader, writer, _nothing, LIMIT, _the_runners_own_end)
    sender = asyncio.create_task(asyncio.get_running_loop().sock_sendall(theirs, _frames(line)))
    try:
        yield channel
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await channel.destroy()
        theirs.close()


CHANNELS: dict[str, Callable[[bytes], AbstractAsyncContextManager[Channel]]] = {
    "bubblewrap": _bwrap_channel,
    "docker": _docker_channel,
}


@pytest.mark.parametrize("backend", list(CHANNELS))
@pytest.mark.parametrize(
    ("size", "whole"),
    [
        pytest.param(LIMIT // 2, True, id="half_the_limit"),
        pytest.param(LIMIT - 1, True, id="just_under"),
        pytest.param(LIMIT * 4, False, id="four_times_the_limit"),
        pytest.param(LIMIT * 64, False, id="a_flood"),
    ],
)
async def test_a_result_line_is_read_whole_up_to_the_limit_and_refused_past_it(
    backend: str, size: int, whole: bool
) -> None:
    line = b"\0" * (size - 1) + b"\n"
    async with CHANNELS[backend](line) as channel:
        if whole:
            assert await asyncio.wait_for(channel.read_line(), 30) == line
        else:
            with pytest.raises(EOFError, match="oversized result line"):
                await asyncio.wait_for(channel.read_line(), 30)


def test_the_line_limit_leaves_room_for_the_result_budget_in_base64() -> None:
    config = SandboxConfig()
    assert config.max_result_mb == 64
    assert config.result_line_bytes == (64 << 20) * 4 // 3 + (1 << 20)
    assert SandboxConfig(max_result_mb=1).result_line_bytes == (1 << 20) * 4 // 3 + (1 << 20)


def _engine_says(reason: str | None) -> Callable[[], Awaitable[str | None]]:
    async def why_gone() -> str | None:
        return reason

    return why_gone


@pytest.mark.parametrize(
    ("reason", "raised"),
    [
        pytest.param(None, EOFError, id="the_runners_own_end_may_be_the_programs_doing"),
        pytest.param("the Docker engine does not answer", SandboxLost, id="the_engine_took_it_away"),
    ],
)
async def test_a_docker_runner_whose_stream_ends_is_diagnosed(reason: str | None, raised: type[Exception]) -> None:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours, limit=1 << 20)
    channel = _AttachChannel("0" * 64, reader, writer, _nothing, LIMIT, _engine_says(reason))
    try:
        assert channel.alive()
        theirs.close()  # the container died: its attach stream ends
        for _ in range(100):
            if not channel.alive():
                break
            await asyncio.sleep(0.01)
        assert not channel.alive()  # an idle slot is known dead before a job is sent to it
        with pytest.raises(raised, match=reason or "the runner is gone"):
            await asyncio.wait_for(channel.read_line(), 30)
    finally:
        await channel.destroy()


class InspectingEngine:
    """client.api.inspect_container answering one container's state, or failing as ``error`` says."""

    def __init__(self, state: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.api = self
        self._state = state or {}
        self._error = error

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if self._error is not None:
            raise self._error
        return {"Id": container_id, "State": self._state}


@pytest.mark.parametrize(
    ("engine", "lost"),
    [
        pytest.param(InspectingEngine(error=docker.errors.NotFound("gone")), "container was removed", id="removed"),
        pytest.param(InspectingEngine(error=ConnectionError("refused")), "does not answer", id="engine_down"),
        pytest.param(InspectingEngine({"ExitCode": 137}), "killed from outside", id="killed"),
        pytest.param(InspectingEngine({"ExitCode": 143}), "killed from outside", id="terminated"),
        pytest.param(InspectingEngine({"ExitCode": 137, "OOMKilled": True}), None, id="its_memory_cap"),
        pytest.param(InspectingEngine({"ExitCode": 1}), None, id="the_runner_exited"),
        pytest.param(InspectingEngine({"Running": True}), None, id="still_running_its_stream_broke"),
    ],
)
def test_a_docker_runners_end_is_the_engines_doing_only_when_the_engine_says_so(
    monkeypatch: pytest.MonkeyPatch, engine: InspectingEngine, lost: str | None
) -> None:
    """Only what nothing inside a container can cause is SandboxLost; the rest may be the program's doing."""
    monkeypatch.setattr(docker_backend, "GONE_SETTLE_S", 0.05)
    sandbox = DockerSandbox(SandboxConfig(pool_size=1, docker_base_url="tcp://127.0.0.1:1"))
    sandbox._client = engine
    reason = sandbox._why_gone("0" * 64)
    assert reason is None if lost is None else lost in (reason or "")
