"""`RewardClient` and `AsyncRewardClient`: everything but I/O lives in their shared base."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from rlvr._exceptions import APIError, OverloadedError, TransportError
from rlvr.types import ItemResult, ScoreResult

__all__ = ["AsyncRewardClient", "RewardClient"]

Item = Mapping[str, Any]
RewardSpec = Mapping[str, Mapping[str, Any]]

_RETRY_STATUS = {429, 503}


class _BaseClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        rewards: RewardSpec | None = None,
        token: str | None = None,
        timeout_s: float = 600.0,
        batch_size: int = 1024,
        retries: int = 5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rewards = dict(rewards or {})
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.retries = retries
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _payloads(self, items: Sequence[Item], rewards: RewardSpec | None) -> list[dict[str, Any]]:
        spec = dict(rewards if rewards is not None else self.rewards)
        if not spec:
            raise ValueError("no reward spec: pass rewards= to score() or to the client")
        chunks = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        return [{"rewards": spec, "items": [_item(item, i) for i, item in enumerate(chunk)]} for chunk in chunks]

    @staticmethod
    def _decode(response: httpx.Response) -> ScoreResult:
        _raise_for_error(response)
        return ScoreResult.model_validate_json(response.content)

    @staticmethod
    def _merge(parts: Iterable[ScoreResult]) -> ScoreResult:
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        results: list[ItemResult] = [item for part in parts for item in part.results]
        groups = {name: stats for part in parts for name, stats in part.groups.items()}
        return ScoreResult(results=results, groups=groups)

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
            return None
        return _retry_after(response) or min(2.0**attempt, 30.0)


class RewardClient(_BaseClient):
    """Blocking client: ``RewardClient(url).score(items, rewards={...})``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, http: httpx.Client | None = None, **kw: Any) -> None:
        super().__init__(base_url, **kw)
        self._http = http or httpx.Client(timeout=self.timeout_s)

    def score(self, items: Sequence[Item], rewards: RewardSpec | None = None) -> ScoreResult:
        return self._merge(self._send(payload) for payload in self._payloads(items, rewards))

    def _send(self, payload: dict[str, Any]) -> ScoreResult:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.post(f"{self.base_url}/v1/score", json=payload, headers=self.headers)
            except httpx.TransportError as exc:
                raise TransportError(f"cannot reach {self.base_url}: {exc}") from exc
            delay = self._retry_delay(response, attempt)
            if delay is None:
                return self._decode(response)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRewardClient(_BaseClient):
    """Async client: ``await AsyncRewardClient(url).score(items, rewards={...})``; chunks go out concurrently."""

    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", *, http: httpx.AsyncClient | None = None, **kw: Any
    ) -> None:
        super().__init__(base_url, **kw)
        self._http = http or httpx.AsyncClient(timeout=self.timeout_s)

    async def score(self, items: Sequence[Item], rewards: RewardSpec | None = None) -> ScoreResult:
        payloads = self._payloads(items, rewards)
        return self._merge(await asyncio.gather(*(self._send(payload) for payload in payloads)))

    async def _send(self, payload: dict[str, Any]) -> ScoreResult:
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.post(f"{self.base_url}/v1/score", json=payload, headers=self.headers)
            except httpx.TransportError as exc:
                raise TransportError(f"cannot reach {self.base_url}: {exc}") from exc
            delay = self._retry_delay(response, attempt)
            if delay is None:
                return self._decode(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _item(item: Item, index: int) -> dict[str, Any]:
    payload = {key: value for key, value in item.items() if value is not None}
    payload.setdefault("id", str(index))
    if not isinstance(payload["id"], str):
        payload["id"] = str(payload["id"])
    return payload


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        code, message = str(body.get("code", "http_error")), str(body.get("message", response.text))
    except ValueError:
        code, message = "http_error", response.text[:500]
    if response.status_code in _RETRY_STATUS:
        raise OverloadedError(response.status_code, code, message, _retry_after(response) or 1.0)
    raise APIError(response.status_code, code, message)
