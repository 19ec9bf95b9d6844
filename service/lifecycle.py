"""Batches in flight: the per-client limit, and the drain on shutdown.

Every POST is a batch (the scoring doors, ``/v1/run``, ``/run_code``); GETs (health, metrics, listings) never are.
``BatchGuard`` is the ASGI middleware in front of them:

- while the service drains (``Lifecycle.begin_drain``, on SIGTERM) a new batch gets 503 ``shutting_down`` with
  ``Retry-After``, so a client retries on another replica instead of meeting a closed socket;
- a client at ``RLVR_MAX_CONCURRENT_BATCHES_PER_CLIENT`` batches in flight gets 429 ``too_many_batches``;
- when the grace period ends (``Lifecycle.abort``) a batch still in flight is cancelled and answered 503.

A client is its bearer token when tokens are configured (one token per trainer keeps trainers apart; an invalid
token holds no slot, its request is refused 401 by the route), else its address as uvicorn reports it (behind a
proxy, uvicorn takes it from ``X-Forwarded-For`` when the proxy is in ``FORWARDED_ALLOW_IPS``). A header the
client chooses, such as ``X-Client-ID``, would let a client pick a fresh identity per request: it limits nothing.

SandboxFusion's ``/run_code`` answers 504 where the others answer 429 or 503: it is the one status veRL retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import TokenSet
from service.errors import send_error
from service.logs import request_header

__all__ = ["BatchGuard", "Lifecycle"]

_RETRY_AFTER = {"Retry-After": "1"}
_RETRYABLE_STATUS = {"/run_code": 504}  # veRL's sandbox_fusion client retries a 504 and nothing else


class Lifecycle:
    def __init__(self, max_per_client: int = 0, grace_s: float = 30.0) -> None:
        self.max_per_client = max_per_client
        self.grace_s = grace_s
        self.draining = False
        self._by_client: dict[str, int] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._aborted = asyncio.Event()
        self._refused = 0
        self._cut = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def refusal(self, client: str | None) -> str | None:
        """Why ``client`` may not start one more batch now (counted, for /metrics), or None; a None client (an
        invalid token, refused 401 by the route) holds no slot and is never refused here."""
        held = self._by_client.get(client, 0) if client is not None else 0
        if not self.max_per_client or held < self.max_per_client:
            return None
        self._refused += 1
        return (
            f"this client already has {held} batches in flight, the limit per client "
            f"(RLVR_MAX_CONCURRENT_BATCHES_PER_CLIENT={self.max_per_client}); send the next one when one is answered"
        )

    @contextmanager
    def admit(self, client: str | None) -> Iterator[None]:
        """Hold one of ``client``'s batch slots while the block runs (ask ``refusal`` first)."""
        if client is not None:
            self._by_client[client] = self._by_client.get(client, 0) + 1
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if client is not None:
                left = self._by_client[client] - 1
                if left:
                    self._by_client[client] = left
                else:
                    del self._by_client[client]
            if not self._in_flight:
                self._idle.set()

    def begin_drain(self) -> None:
        self.draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """True when no batch is in flight within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def abort(self) -> int:
        """Cut every batch in flight (each is answered 503); returns how many there were."""
        self._cut += self._in_flight
        self._aborted.set()
        return self._in_flight

    async def aborted(self) -> None:
        await self._aborted.wait()

    @property
    def is_aborted(self) -> bool:
        return self._aborted.is_set()

    def stats(self) -> dict[str, Any]:
        return {
            "in_flight": self._in_flight,
            "clients": len(self._by_client),
            "refused_client_limit": self._refused,
            "cut_at_shutdown": self._cut,
            "draining": int(self.draining),
        }


class BatchGuard:
    def __init__(self, app: ASGIApp, lifecycle: Lifecycle, tokens: TokenSet) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        retry_status = _RETRYABLE_STATUS.get(scope["path"])
        if self.lifecycle.draining:
            message = "the service is shutting down and takes no new batch: send it again (to another replica)"
            await send_error(send, retry_status or 503, "shutting_down", message, _RETRY_AFTER)
            return
        client = self._client(scope)
        refusal = self.lifecycle.refusal(client)
        if refusal is not None:
            await send_error(send, retry_status or 429, "too_many_batches", refusal, _RETRY_AFTER)
            return
        with self.lifecycle.admit(client):
            await self._until_aborted(scope, receive, send, retry_status or 503)

    def _client(self, scope: Scope) -> str | None:
        if self.tokens.enabled:
            return self.tokens.client_of(request_header(scope, b"authorization"))
        peer = scope.get("client")
        return f"peer:{peer[0]}" if peer else "peer:unknown"

    async def _until_aborted(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        """Run the app; if the grace period ends first, cancel it and answer 503 (when nothing was sent yet)."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        batch = asyncio.ensure_future(self.app(scope, receive, tracking_send))
        aborted = asyncio.ensure_future(self.lifecycle.aborted())
        try:
            await asyncio.wait({batch, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            if not batch.done():
                batch.cancel()
                await asyncio.wait({batch})
        if not (batch.cancelled() and self.lifecycle.is_aborted):
            batch.result()  # the app's own exception, if it raised one
            return
        if not started:
            grace = self.lifecycle.grace_s
            message = (
                f"the service shut down before this batch was scored (RLVR_SHUTDOWN_GRACE_S={grace:g}): "
                "send it again (to another replica)"
            )
            await send_error(send, status, "shutting_down", message, _RETRY_AFTER)
