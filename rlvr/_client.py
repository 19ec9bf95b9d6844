"""`RewardClient` and `AsyncRewardClient`: twins that only post and sleep; the rest is `BaseClient`."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

from rlvr._base import BaseClient, Item, RewardSpec, _Call, _Delivery
from rlvr.types import ScoreResult

__all__ = ["AsyncRewardClient", "RewardClient"]

# How the twins wait before a retry (tests record the waits through these names instead of sleeping).
_sleep = time.sleep
_async_sleep = asyncio.sleep


class RewardClient(BaseClient):
    """Blocking client. ``RewardClient(url_or_urls, rewards={...}).score(items)``.

    Chunks of one call go out concurrently (at most ``concurrency`` requests at once per client); ``submit()``
    returns a `concurrent.futures.Future` so that scoring runs while the caller generates. Thread-safe.
    """

    def __init__(self, urls: str | Sequence[str] | None = None, *, http: httpx.Client | None = None, **kw: Any) -> None:
        super().__init__(urls, **kw)
        self._http = http or httpx.Client(limits=httpx.Limits(max_connections=4 * self.concurrency))
        self._gate = threading.BoundedSemaphore(self.concurrency)
        self._chunks = ThreadPoolExecutor(self.concurrency, thread_name_prefix="rlvr-chunk")
        self._calls = ThreadPoolExecutor(4 * self.concurrency, thread_name_prefix="rlvr-call")

    def score(
        self,
        items: Sequence[Item],
        rewards: RewardSpec | None = None,
        *,
        profile: str | None = None,
        advantages: bool = False,
    ) -> ScoreResult:
        """Every item's result, in input order, or an `RLVRError`."""
        call = self._plan(items, rewards, profile, advantages)
        if len(call.chunks) == 1:
            return call.finish([self._send(call, 0)])
        futures = [self._chunks.submit(self._send, call, index) for index in range(len(call.chunks))]
        try:
            return call.finish([future.result() for future in futures])
        finally:
            for future in futures:
                future.cancel()

    def submit(
        self,
        items: Sequence[Item],
        rewards: RewardSpec | None = None,
        *,
        profile: str | None = None,
        advantages: bool = False,
    ) -> Future[ScoreResult]:
        """Start scoring and return at once; ``.result()`` gives what ``score()`` would."""
        items = list(items)
        return self._calls.submit(self.score, items, rewards, profile=profile, advantages=advantages)

    def profiles(self) -> dict[str, Any]:
        """``GET /v1/profiles``: the server's profiles (name -> reward spec) and its default."""
        response = self._request(self._delivery("GET", "/v1/profiles", None, None))
        result: dict[str, Any] = response.json()
        return result

    def _send(self, call: _Call, index: int) -> ScoreResult:
        delivery = self._delivery("POST", "/v1/score", call.bodies[index], call.deadline)
        return call.decode(index, self._request(delivery))

    def _request(self, delivery: _Delivery) -> httpx.Response:
        while True:
            t = delivery.next()
            try:
                if t.wait_s:
                    _sleep(t.wait_s)
                with self._gate:
                    request = self._http.build_request(
                        delivery.method, t.url, content=delivery.body, headers=self.headers, timeout=t.timeout
                    )
                    response = self._http.send(request)
            except httpx.TransportError as exc:
                delivery.broke(t, exc)
                continue
            finally:
                delivery.release(t)
            if (answer := delivery.answered(t, response)) is not None:
                return answer

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._chunks.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRewardClient(BaseClient):
    """Async client. ``await AsyncRewardClient(url_or_urls, rewards={...}).score(items)``.

    Chunks go out concurrently; ``submit()`` returns an `asyncio.Task`. Use it from one event loop.
    """

    def __init__(
        self, urls: str | Sequence[str] | None = None, *, http: httpx.AsyncClient | None = None, **kw: Any
    ) -> None:
        super().__init__(urls, **kw)
        self._http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=4 * self.concurrency))
        self._gate = asyncio.Semaphore(self.concurrency)

    async def score(
        self,
        items: Sequence[Item],
        rewards: RewardSpec | None = None,
        *,
        profile: str | None = None,
        advantages: bool = False,
    ) -> ScoreResult:
        """Every item's result, in input order, or an `RLVRError`."""
        call = self._plan(items, rewards, profile, advantages)
        tasks = [asyncio.ensure_future(self._send(call, index)) for index in range(len(call.chunks))]
        try:
            return call.finish(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    def submit(
        self,
        items: Sequence[Item],
        rewards: RewardSpec | None = None,
        *,
        profile: str | None = None,
        advantages: bool = False,
    ) -> asyncio.Task[ScoreResult]:
        """Start scoring on the running loop and return at once; await the task for what ``score()`` gives."""
        return asyncio.ensure_future(self.score(list(items), rewards, profile=profile, advantages=advantages))

    async def profiles(self) -> dict[str, Any]:
        """``GET /v1/profiles``: the server's profiles (name -> reward spec) and its default."""
        response = await self._request(self._delivery("GET", "/v1/profiles", None, None))
        result: dict[str, Any] = response.json()
        return result

    async def _send(self, call: _Call, index: int) -> ScoreResult:
        delivery = self._delivery("POST", "/v1/score", call.bodies[index], call.deadline)
        return call.decode(index, await self._request(delivery))

    async def _request(self, delivery: _Delivery) -> httpx.Response:
        while True:
            t = delivery.next()
            try:
                if t.wait_s:
                    await _async_sleep(t.wait_s)
                async with self._gate:
                    request = self._http.build_request(
                        delivery.method, t.url, content=delivery.body, headers=self.headers, timeout=t.timeout
                    )
                    response = await self._http.send(request)
            except httpx.TransportError as exc:
                delivery.broke(t, exc)
                continue
            finally:
                delivery.release(t)
            if (answer := delivery.answered(t, response)) is not None:
                return answer

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
