"""`rlvr serve`'s uvicorn server, with a drain on SIGTERM.

uvicorn's own answer to SIGTERM closes the listening socket at once and waits up to ``timeout_graceful_shutdown``
for the connections it has. This server first drains, with the socket still open:

1. SIGTERM (or SIGINT): new batches get 503 ``shutting_down`` (``/readyz`` too, so load balancers take the
   replica out) while the batches in flight are scored and answered;
2. when none is left, or ``RLVR_SHUTDOWN_GRACE_S`` has passed (the rest are cancelled and answered 503), it hands
   over to uvicorn's shutdown: the socket closes, the last responses are written, and the app's lifespan closes the
   engine (worker processes, every sandbox container) before the process exits 0.

A second signal cuts the batches in flight at once (the engine is still closed); a third is uvicorn's forced exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from service.lifecycle import Lifecycle
from service.logs import fields

__all__ = ["GracefulServer"]

log = logging.getLogger("rlvr.service")

_CUT_WAIT_S = 5.0  # how long cancelled batches get to send their 503


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._loop is None or self._signals > 2:
            super().handle_exit(sig, frame)
            return
        # A signal handler runs between two bytecodes of whatever the loop was doing: hand over to the loop.
        self._loop.call_soon_threadsafe(self._on_signal, signal.Signals(sig).name)

    def _on_signal(self, name: str) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(name))
        else:
            log.warning("%s again: cutting the %d batches in flight now", name, self.lifecycle.in_flight)
            self.lifecycle.abort()

    async def _drain(self, name: str) -> None:
        lifecycle, grace = self.lifecycle, self.lifecycle.grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        lifecycle.begin_drain()
        in_flight = lifecycle.in_flight
        log.info(
            "%s: draining, %d batches in flight, grace %g s", name, in_flight, grace, extra=fields(in_flight=in_flight)
        )
        if not await lifecycle.wait_idle(grace):
            cut = lifecycle.abort()
            log.warning(
                "the shutdown grace period (RLVR_SHUTDOWN_GRACE_S=%g) passed: %d batches in flight answered 503",
                grace,
                cut,
                extra=fields(cut=cut),
            )
            await lifecycle.wait_idle(_CUT_WAIT_S)
        # What is left are responses being written and probes: uvicorn's own wait covers them, within the grace.
        self.config.timeout_graceful_shutdown = max(1, round(deadline - loop.time()))
        self.should_exit = True
