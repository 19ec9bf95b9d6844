"""Everything a client does that is not I/O: items to chunks, replicas, retries, decoding, merging.

The sync and async clients drive the same `_Delivery` (which replica, how long to wait, what an answer means) and
differ only in how they sleep and post.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from rlvr._exceptions import APIError, OverloadedError, RequestTimeout, TransportError
from rlvr.config import Retries, Timeouts
from rlvr.types import ScoreResult, group_stats, grpo_advantages, merge_spec

__all__ = ["BaseClient", "Item", "RewardSpec", "merged_spec"]

Item = Mapping[str, Any]
RewardSpec = Mapping[str, Mapping[str, Any] | None]

DEFAULT_URL = "http://127.0.0.1:8000"
_RETRY_STATUS = frozenset({429, 502, 503})


class BaseClient:
    """Configuration and the I/O-free half of `RewardClient` and `AsyncRewardClient`."""

    def __init__(
        self,
        urls: str | Sequence[str] | None = None,
        *,
        rewards: RewardSpec | None = None,
        profile: str | None = None,
        token: str | None = None,
        timeouts: Timeouts | None = None,
        retries: Retries | None = None,
        batch_size: int = 512,
        concurrency: int = 8,
        advantage_eps: float = 1e-4,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")
        self.urls = _urls(urls)
        self.rewards = dict(rewards) if rewards is not None else None
        self.profile = profile
        self.timeouts = timeouts or Timeouts()
        self.retries = retries or Retries()
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.advantage_eps = advantage_eps
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._replicas = _Replicas(self.urls)

    def _plan(self, items: Sequence[Item], rewards: RewardSpec | None, profile: str | None, advantages: bool) -> _Call:
        payloads = [_item(item, index) for index, item in enumerate(items)]
        spec = _spec(rewards, profile) or _spec(self.rewards, self.profile)
        if not spec and not any("profile" in p or "rewards" in p for p in payloads):
            raise ValueError("no reward spec: pass rewards= or profile= to score() or to the client")
        groups = [p.get("group") for p in payloads]
        chunks = pack_groups(groups, self.batch_size)
        bodies = [_body({**spec, "items": [payloads[i] for i in chunk]}) for chunk in chunks]
        deadline = None if self.timeouts.total is None else time.monotonic() + self.timeouts.total
        return _Call(chunks, bodies, groups, deadline, self.advantage_eps if advantages else None)

    def _delivery(self, method: str, path: str, body: bytes | None, deadline: float | None) -> _Delivery:
        return _Delivery(self._replicas, self.retries, self.timeouts, method, path, body, deadline)


@dataclass
class _Call:
    """One ``score()``: its chunks (indices into the input) and how to put their answers back together."""

    chunks: list[list[int]]
    bodies: list[bytes]
    groups: list[str | None]
    deadline: float | None
    advantage_eps: float | None

    def decode(self, index: int, response: httpx.Response) -> ScoreResult:
        try:
            part = ScoreResult.model_validate_json(response.content)
        except ValidationError as exc:
            raise APIError(response.status_code, "malformed_response", f"not a score response: {exc}") from None
        if len(part.results) != len(self.chunks[index]):
            raise APIError(
                response.status_code,
                "malformed_response",
                f"{len(part.results)} results for {len(self.chunks[index])} items",
            )
        return part

    def finish(self, parts: Sequence[ScoreResult]) -> ScoreResult:
        results: list[Any] = [None] * len(self.groups)
        for chunk, part in zip(self.chunks, parts, strict=True):
            for index, result in zip(chunk, part.results, strict=True):
                results[index] = result
        rewards = [r.reward for r in results]
        groups = group_stats(self.groups, rewards)  # the server's definition, over whole groups however chunked
        advantages = None
        if self.advantage_eps is not None:
            advantages = grpo_advantages(self.groups, rewards, groups, self.advantage_eps)
        return ScoreResult(results=results, groups=groups, advantages=advantages)


def pack_groups(groups: Sequence[str | None], size: int) -> list[list[int]]:
    """Chunks of at most ``size`` item indices that keep each group whole (in first-seen order); only a group
    larger than ``size`` is split, and its statistics are then merged exactly from the rewards."""
    units: dict[object, list[int]] = {}
    for index, group in enumerate(groups):
        units.setdefault(index if group is None else ("group", group), []).append(index)
    chunks: list[list[int]] = []
    current: list[int] = []
    for unit in units.values():
        if len(current) + len(unit) > size and current:
            chunks.append(current)
            current = []
        while len(unit) > size:
            chunks.append(unit[:size])
            unit = unit[size:]
        current.extend(unit)
    if current or not chunks:
        chunks.append(current)
    return chunks


# ------------------------------------------------------------------------------------------------- replicas


@dataclass
class _Replica:
    url: str
    ready_at: float = 0.0
    in_flight: int = 0


class _Replicas:
    """Which replica takes the next request: the soonest ready, then the least busy, then in turn.

    A replica that failed is not ready again until its wait is over; meanwhile requests go to the others.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        self._replicas = [_Replica(url) for url in urls]
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def take(self, avoid: _Replica | None) -> tuple[_Replica, float]:
        with self._lock:
            now, turn, n = time.monotonic(), next(self._turn), len(self._replicas)

            def rank(pair: tuple[int, _Replica]) -> tuple[float, bool, int, int]:
                index, replica = pair
                return (max(replica.ready_at - now, 0.0), replica is avoid, replica.in_flight, (index - turn) % n)

            _, replica = min(enumerate(self._replicas), key=rank)
            replica.in_flight += 1
            return replica, max(replica.ready_at - now, 0.0)

    def release(self, replica: _Replica) -> None:
        with self._lock:
            replica.in_flight -= 1

    def hold_off(self, replica: _Replica, wait_s: float) -> None:
        with self._lock:
            replica.ready_at = max(replica.ready_at, time.monotonic() + wait_s)


# ------------------------------------------------------------------------------------------------- delivery


@dataclass
class Try:
    """One attempt: post to ``url`` after sleeping ``wait_s``, within ``timeout``."""

    replica: _Replica
    url: str
    wait_s: float
    timeout: httpx.Timeout


@dataclass
class _Delivery:
    """The way of one request to an answer across replicas and retries (sans I/O).

    The I/O side loops: ``t = next()``, sleep ``t.wait_s``, send, then ``answered(t, response)`` (the response, or
    None to go again) or ``broke(t, exc)``; and ``release(t)`` whatever happened.
    """

    replicas: _Replicas
    retries: Retries
    timeouts: Timeouts
    method: str
    path: str
    body: bytes | None
    deadline: float | None
    attempt: int = 0
    last: _Replica | None = None
    error: Exception | None = field(default=None)

    def next(self) -> Try:
        if self.attempt >= self.retries.attempts:
            assert self.error is not None
            raise self.error
        replica, wait_s = self.replicas.take(avoid=self.last)
        left = None if self.deadline is None else self.deadline - time.monotonic() - wait_s
        if left is not None and left <= 0:
            self.replicas.release(replica)
            raise RequestTimeout(f"no answer within Timeouts.total ({self.error or 'waiting to retry'})", 0.0)
        self.attempt += 1
        self.last = replica
        return Try(replica, replica.url + self.path, wait_s, self.timeouts.for_request(left))

    def release(self, t: Try) -> None:
        self.replicas.release(t.replica)

    def answered(self, t: Try, response: httpx.Response) -> httpx.Response | None:
        if response.status_code in _RETRY_STATUS:
            code, message = _error_of(response)
            retry_after = _retry_after(response, self.retries.max_retry_after_s)
            self.replicas.hold_off(t.replica, retry_after if retry_after is not None else self._backoff())
            self.error = OverloadedError(response.status_code, code, message, retry_after or 1.0)
            return None
        if not response.is_success:
            raise APIError(response.status_code, *_error_of(response))
        return response

    def broke(self, t: Try, exc: httpx.TransportError) -> None:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            seconds = t.timeout.read or 0.0
            raise RequestTimeout(f"{t.url}: no answer within {seconds:g}s ({type(exc).__name__})", seconds) from exc
        self.replicas.hold_off(t.replica, self._backoff())
        self.error = TransportError(f"{t.url}: {type(exc).__name__}: {exc}")

    def _backoff(self) -> float:
        limit: float = min(self.retries.max_backoff_s, self.retries.backoff_s * 2.0 ** (self.attempt - 1))
        return limit / 2 + random.uniform(0, limit / 2)


# ------------------------------------------------------------------------------------------------- payloads


def _urls(urls: str | Sequence[str] | None) -> list[str]:
    if urls is None:
        urls = os.environ.get("RLVR_URL") or DEFAULT_URL
    if isinstance(urls, str):
        urls = [u for u in urls.split(",") if u.strip()]
    cleaned = [u.strip().rstrip("/") for u in urls]
    if not cleaned:
        raise ValueError("no service URL given")
    for url in cleaned:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
    return cleaned


def _spec(rewards: RewardSpec | None, profile: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rewards is not None:
        spec["rewards"] = dict(rewards)
    if profile is not None:
        spec["profile"] = profile
    return spec


def merged_spec(
    profiles: Mapping[str, Mapping[str, Any]], profile: str | None, rewards: RewardSpec | None
) -> dict[str, dict[str, Any]]:
    """What the server scores for ``profile`` (from ``GET /v1/profiles``) with ``rewards`` laid over it, merged as
    ``/v1/score`` merges them: per checker and per setting, a None override dropping its checker."""
    if profile is not None and profile not in profiles:
        raise ValueError(f"the server has no profile {profile!r}; it has {sorted(profiles)}")
    return merge_spec(profiles[profile] if profile is not None else {}, rewards)


def _item(item: Item, index: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise TypeError(f"items[{index}] is a {type(item).__name__}, not a mapping")
    payload = {str(key): value for key, value in item.items() if value is not None}
    payload["id"] = str(payload.get("id", index))
    if "group" in payload:
        payload["group"] = str(payload["group"])
    return payload


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, default=_plain).encode()


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (dataset columns) as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    try:
        return min(max(float(response.headers["Retry-After"]), 0.0), cap)
    except (KeyError, ValueError):
        return None


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        return str(body.get("code", "http_error")), str(body.get("message", response.text))
    except (ValueError, AttributeError):
        return "http_error", response.text[:500]
