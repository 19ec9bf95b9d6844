"""The SDK's transport paths against `httpx.MockTransport`: retries, Retry-After, replicas, time-outs, chunking.

Every test runs both twins (sync and async): they share the logic and must behave the same. Waits are recorded,
not slept.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import rlvr._client
from rlvr import (
    APIError,
    AsyncRewardClient,
    OverloadedError,
    RequestTimeout,
    Retries,
    RewardClient,
    ScoreResult,
    Timeouts,
    TransportError,
)
from rlvr._base import pack_groups

Outcome = str | int | tuple[int, str]  # "ok", "refuse", "reset", "read_timeout", "short", status, (status, Retry-After)


@dataclass
class FakeService:
    """A scripted `/v1/score` per host: each request takes the host's next outcome, then "ok" forever.

    "ok" scores like the real service would for these items: 1.0 when the completion equals the reference,
    masked when the completion is "MASK", with the real group statistics."""

    script: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self.lock:
            self.calls.append((request.url.host, body["items"]))
            queue = self.script.get(request.url.host, [])
            outcome = queue.pop(0) if queue else "ok"
        return _answer(outcome, request, body)

    def hosts(self) -> list[str]:
        return [host for host, _ in self.calls]


def _answer(outcome: Outcome, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
    errors: dict[str, type[httpx.TransportError]] = {
        "refuse": httpx.ConnectError,
        "reset": httpx.RemoteProtocolError,
        "read_timeout": httpx.ReadTimeout,
    }
    if isinstance(outcome, str) and outcome in errors:
        raise errors[outcome]("scripted", request=request)
    if isinstance(outcome, int | tuple):
        status, retry_after = (outcome, None) if isinstance(outcome, int) else outcome
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return httpx.Response(status, json={"code": f"scripted_{status}", "message": "scripted"}, headers=headers)
    results = [_result(item) for item in body["items"]]
    groups = _groups(body["items"], results)
    if outcome == "short":
        results = results[:-1]
    return httpx.Response(200, json={"results": results, "groups": groups})


def _result(item: dict[str, Any]) -> dict[str, Any]:
    if item["completion"] == "MASK":
        return {"id": item["id"], "reward": None, "mask": True, "failure_kind": "sandbox_error"}
    return {"id": item["id"], "reward": float(item["completion"] == item.get("reference")), "mask": False}


def _groups(items: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    from rlvr.types import group_stats

    stats = group_stats([i.get("group") for i in items], [r["reward"] for r in results])
    return {name: s.model_dump() for name, s in stats.items()}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The waits the clients asked for, instead of sleeping them."""
    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(rlvr._client, "_sleep", recorded.append)
    monkeypatch.setattr(rlvr._client, "_async_sleep", async_sleep)
    yield recorded


Scorer = Callable[..., ScoreResult]


@pytest.fixture(params=["sync", "async"])
def score(request: pytest.FixtureRequest) -> Scorer:
    """score(service, urls, items, **client_options) with the sync or the async client."""

    def sync(service: FakeService, urls: Any, items: list[dict[str, Any]], **kw: Any) -> ScoreResult:
        http = httpx.Client(transport=httpx.MockTransport(service))
        with RewardClient(urls, http=http, rewards={"math": {}}, **kw) as client:
            return client.score(items, advantages=True)

    def async_(service: FakeService, urls: Any, items: list[dict[str, Any]], **kw: Any) -> ScoreResult:
        async def run() -> ScoreResult:
            http = httpx.AsyncClient(transport=httpx.MockTransport(service))
            async with AsyncRewardClient(urls, http=http, rewards={"math": {}}, **kw) as client:
                return await client.score(items, advantages=True)

        return asyncio.run(run())

    return sync if request.param == "sync" else async_


A, B = "http://a:8000", "http://b:8000"
ITEMS = [{"completion": "1", "reference": "1"}, {"completion": "2", "reference": "1"}]


@pytest.mark.parametrize(
    ("script", "expected_waits"),
    [
        pytest.param(["refuse"], "backoff", id="connection_refused"),
        pytest.param(["reset"], "backoff", id="connection_broken_mid_request"),
        pytest.param([503], "backoff", id="503_without_retry_after"),
        pytest.param([(429, "2")], [2.0], id="429_honours_retry_after"),
        pytest.param([(503, "0.5")], [0.5], id="503_honours_retry_after"),
        pytest.param([(502, "bogus")], "backoff", id="502_with_unreadable_retry_after"),
        pytest.param([(429, "3600")], [60.0], id="retry_after_is_capped"),
        pytest.param(["refuse", "refuse", 503], "backoff", id="three_failures_then_ok"),
    ],
)
def test_a_failed_try_is_retried_after_its_wait(
    score: Scorer, waits: list[float], script: list[Outcome], expected_waits: Any
) -> None:
    service = FakeService({"a": list(script)})
    result = score(service, A, ITEMS, retries=Retries(backoff_s=0.25, max_backoff_s=10))
    assert result.rewards == [1.0, 0.0]
    assert len(service.calls) == len(script) + 1
    if expected_waits == "backoff":  # doubling from 0.25, half of each fixed and half random
        assert len(waits) == len(script)
        for attempt, wait in enumerate(waits):
            # recorded as ready_at - now, a few microseconds after the wait was planned: 1 ms of slack below
            assert 0.125 * 2**attempt - 0.001 <= wait <= 0.25 * 2**attempt
    else:  # the wait left when the retry is planned, a hair under Retry-After
        assert waits == pytest.approx(expected_waits, abs=0.05)


@pytest.mark.parametrize(
    ("outcome", "error", "code", "calls"),
    [
        pytest.param("refuse", TransportError, None, 3, id="never_reachable"),
        pytest.param("reset", TransportError, None, 3, id="always_broken"),
        pytest.param((429, "1"), OverloadedError, "scripted_429", 3, id="always_overloaded"),
        pytest.param("read_timeout", RequestTimeout, None, 1, id="read_timeout_is_not_retried"),
        pytest.param(422, APIError, "scripted_422", 1, id="client_error_is_not_retried"),
        pytest.param(500, APIError, "scripted_500", 1, id="server_bug_is_not_retried"),
        pytest.param("short", APIError, "malformed_response", 1, id="missing_results"),
    ],
)
def test_what_cannot_be_answered_raises_one_error_and_returns_nothing(
    score: Scorer, waits: list[float], outcome: Outcome, error: type[Exception], code: str | None, calls: int
) -> None:
    service = FakeService({"a": [outcome] * 10})
    with pytest.raises(error) as caught:
        score(service, A, ITEMS, retries=Retries(attempts=3))
    assert len(service.calls) == calls
    if code is not None:
        assert isinstance(caught.value, APIError) and caught.value.code == code
    if isinstance(caught.value, OverloadedError):
        assert caught.value.retry_after_s == 1.0


def test_a_dead_replica_is_routed_around(score: Scorer, waits: list[float]) -> None:
    service = FakeService({"a": ["refuse"] * 100})
    items = [{"group": f"g{i}", "completion": "1", "reference": "1"} for i in range(16)]
    result = score(service, [A, B], items, batch_size=2)
    assert result.rewards == [1.0] * 16
    answered = [host for host, _ in service.calls if host == "b"]
    assert len(answered) == 8  # every chunk, once
    assert service.hosts().count("a") <= 2  # tried, then left alone while b answers
    assert waits == []  # nobody waited: b was ready


def test_chunks_spread_over_healthy_replicas(score: Scorer, waits: list[float]) -> None:
    service = FakeService()
    items = [{"group": f"g{i}", "completion": "1", "reference": "1"} for i in range(16)]
    score(service, [A, B, "http://c:8000"], items, batch_size=2)
    hosts = service.hosts()
    assert len(hosts) == 8 and set(hosts) == {"a", "b", "c"}


def test_an_overloaded_replica_hands_its_chunk_to_another_without_waiting(score: Scorer, waits: list[float]) -> None:
    service = FakeService({"a": [(429, "30")]})
    result = score(service, [A, B], ITEMS)
    assert result.rewards == [1.0, 0.0]
    assert service.hosts() == ["a", "b"] and waits == []


def test_the_total_timeout_bounds_retries(score: Scorer, waits: list[float]) -> None:
    service = FakeService({"a": [(503, "30")] * 10})
    with pytest.raises(RequestTimeout, match="Timeouts.total"):
        score(service, A, ITEMS, timeouts=Timeouts(total=5))
    assert len(service.calls) == 1 and waits == []


def test_results_come_back_in_input_order_with_global_ids_and_whole_group_statistics(
    score: Scorer, waits: list[float]
) -> None:
    # the report: a group split across chunks got the last chunk's statistics and ids restarted
    items = [{"group": "g", "completion": str(i), "reference": "1"} for i in range(3)]
    items += [{"group": "h", "completion": "1", "reference": "1"}, {"completion": "MASK"}]
    items.insert(1, {"group": "h", "completion": "0", "reference": "1"})
    service = FakeService()
    result = score(service, A, items, batch_size=2)
    assert [r.id for r in result.results] == ["0", "1", "2", "3", "4", "5"]
    assert result.rewards == [0.0, 0.0, 1.0, 0.0, 1.0, None]
    g, h = result.groups["g"], result.groups["h"]
    assert (g.size, g.mean, g.uniform) == (3, pytest.approx(1 / 3), False)
    assert (h.size, h.mean, h.uniform) == (2, 0.5, False)
    assert result.advantages is not None and result.advantages[5] is None  # masked: left out
    assert result.advantages[2] == pytest.approx((1 - 1 / 3) / (g.std + 1e-4))  # type: ignore[operator]


def test_a_uniform_group_carries_no_signal(score: Scorer, waits: list[float]) -> None:
    items = [{"group": "same", "completion": "1", "reference": "1"}] * 4
    items += [{"group": "mixed", "completion": c, "reference": "1"} for c in ("1", "2")]
    result = score(FakeService(), A, items)
    assert result.no_signal == ["same"]
    assert result.advantages is not None and result.advantages[:4] == [0.0] * 4


@pytest.mark.parametrize(
    ("groups", "size", "chunks"),
    [
        pytest.param(["g", "h", "g", "h"], 2, [[0, 2], [1, 3]], id="groups_kept_whole"),
        pytest.param(["g", "g", "g"], 2, [[0, 1], [2]], id="group_larger_than_a_chunk_is_split"),
        pytest.param([None, None, None], 2, [[0, 1], [2]], id="ungrouped_fill_chunks"),
        pytest.param(["a", "b", "b", "b"], 3, [[0], [1, 2, 3]], id="a_group_never_straddles_when_it_fits"),
        pytest.param([], 4, [[]], id="empty_batch_is_one_request"),
    ],
)
def test_pack_groups(groups: list[str | None], size: int, chunks: list[list[int]]) -> None:
    assert pack_groups(groups, size) == chunks


def test_a_group_is_sent_in_one_request_when_it_fits(score: Scorer, waits: list[float]) -> None:
    items = [{"group": f"g{i % 3}", "completion": "1", "reference": "1"} for i in range(12)]
    service = FakeService()
    score(service, A, items, batch_size=4)
    for _, sent in service.calls:
        assert len({item["group"] for item in sent}) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"urls": "ftp://x"}, "not an http", id="bad_scheme"),
        pytest.param({"urls": []}, "no service URL", id="no_url"),
        pytest.param({"batch_size": 0}, "batch_size", id="zero_batch"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RewardClient(**{"urls": A, **options})


def test_a_bad_item_is_named() -> None:
    with RewardClient(A, rewards={"math": {}}) as client, pytest.raises(TypeError, match=r"items\[1\]"):
        client.score([{"completion": "1"}, "not a mapping"])  # type: ignore[list-item]


def test_urls_come_from_rlvr_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_URL", "http://a:1, http://b:2/")
    assert RewardClient().urls == ["http://a:1", "http://b:2"]


def test_submit_returns_a_future_per_call(waits: list[float]) -> None:
    service = FakeService()
    http = httpx.Client(transport=httpx.MockTransport(service))
    with RewardClient(A, http=http, rewards={"math": {}}) as client:
        futures = [client.submit([{"group": f"g{k}", "completion": "1", "reference": str(k)}]) for k in range(4)]
        assert [f.result().rewards for f in futures] == [[0.0], [1.0], [0.0], [0.0]]


async def test_async_submit_returns_a_task() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(FakeService()))
    async with AsyncRewardClient(A, http=http, rewards={"math": {}}) as client:
        tasks = [client.submit([{"completion": "1", "reference": str(k)}]) for k in range(3)]
        assert [(await t).rewards for t in tasks] == [[0.0], [1.0], [0.0]]
