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
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from sandboxes._pool import Channel
from sandboxes.bubblewrap import _BwrapChannel
from sandboxes.config import SandboxConfig
from sandboxes.docker import _AttachChannel

LIMIT = 1 << 18
CHUNK = 1 << 14


async def _nothing() -> None:
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
    channel = _AttachChannel("0" * 64, reader, writer, _nothing, LIMIT)
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
