"""The SDK against the real service."""

from __future__ import annotations

import time

import pytest

import rlvr
from rlvr import APIError, AsyncRewardClient, Retries, RewardClient, ScoreResult, TransportError
from tests.conftest import LiveService

ITEMS = [
    {"id": "a", "group": "g", "completion": "so $\\boxed{\\frac{1}{2}}$", "reference": "0.5"},
    {"id": "b", "group": "g", "completion": "so $\\boxed{3}$", "reference": "0.5"},
    {"id": "c", "group": "h", "completion": "so $\\boxed{x+1}$", "reference": "1+x"},
]


def test_public_surface() -> None:
    assert set(rlvr.__all__) == {
        "APIError",
        "AsyncRewardClient",
        "Component",
        "GroupStats",
        "ItemResult",
        "OverloadedError",
        "RLVRError",
        "RequestTimeout",
        "Retries",
        "RewardClient",
        "ScoreResult",
        "Timeouts",
        "TransportError",
    }


@pytest.mark.parametrize("batch_size", [pytest.param(1024, id="one_request"), pytest.param(2, id="chunked")])
def test_sync_client_returns_typed_results_in_order(live_service: LiveService, batch_size: int) -> None:
    with RewardClient(live_service.url, batch_size=batch_size) as client:
        result = client.score(ITEMS, rewards={"math": {"weight": 1.0}})
    assert isinstance(result, ScoreResult)
    assert [r.id for r in result.results] == ["a", "b", "c"]
    assert result.rewards == [1.0, 0.0, 1.0]
    assert result.results[0].components["math"].status == "ok"
    assert set(result.groups) == {"g", "h"}


async def test_async_client_matches_sync(live_service: LiveService) -> None:
    async with AsyncRewardClient(live_service.url, rewards={"math": {}}, batch_size=1) as client:
        result = await client.score(ITEMS)
    assert result.rewards == [1.0, 0.0, 1.0]


def test_ids_default_to_positions(live_service: LiveService) -> None:
    with RewardClient(live_service.url) as client:
        result = client.score([{"completion": "\\boxed{2}", "reference": "2"}], rewards={"math": {}})
    assert result.results[0].id == "0"


@pytest.mark.parametrize(
    ("rewards", "code"),
    [
        pytest.param({"nope": {}}, "invalid_spec", id="unknown_checker"),
        pytest.param({"math": {"bogus": 1}}, "invalid_spec", id="unknown_setting"),
    ],
)
def test_service_errors_raise_api_error(
    live_service: LiveService, rewards: dict[str, dict[str, object]], code: str
) -> None:
    with RewardClient(live_service.url) as client, pytest.raises(APIError) as caught:
        client.score(ITEMS, rewards=rewards)
    assert caught.value.status_code == 422 and caught.value.code == code


def test_unreachable_service_raises_transport_error() -> None:
    with RewardClient("http://127.0.0.1:9", retries=Retries(attempts=1)) as client, pytest.raises(TransportError):
        client.score(ITEMS, rewards={"math": {}})


def test_missing_spec_is_a_clear_error() -> None:
    with RewardClient("http://127.0.0.1:9") as client, pytest.raises(ValueError, match="reward spec"):
        client.score(ITEMS)


# -- chunking against the real service: what a trainer reads must not depend on batch_size ------------------------


def test_a_group_split_across_chunks_gets_the_statistics_of_the_whole_group(live_service: LiveService) -> None:
    items = [{"group": "g", "completion": f"$\\boxed{{{i}}}$", "reference": "1"} for i in range(3)]
    with RewardClient(live_service.url, rewards={"math": {}}) as client:
        whole = client.score(items, advantages=True)
    with RewardClient(live_service.url, rewards={"math": {}}, batch_size=2) as client:
        chunked = client.score(items, advantages=True)
    assert [r.id for r in chunked.results] == ["0", "1", "2"]
    assert chunked.groups == whole.groups
    assert chunked.groups["g"].size == 3 and not chunked.groups["g"].uniform
    assert chunked.advantages == whole.advantages


def mixed_items(n: int) -> list[dict[str, object]]:
    """Distinct math items (nothing comes from the service's cache), every third one wrong."""
    return [
        {"group": f"q{i // 8}", "completion": f"so $\\boxed{{{i}}}$", "reference": str(i if i % 3 else i + 1)}
        for i in range(n)
    ]


def expected_rewards(n: int) -> list[float]:
    return [1.0 if i % 3 else 0.0 for i in range(n)]


@pytest.mark.slow
def test_a_service_killed_and_restarted_mid_batch_is_survived_by_retry(service_process: type) -> None:
    service = service_process()
    service.start()
    n = 2400
    with RewardClient(service.url, rewards={"math": {}}, batch_size=80, concurrency=2) as client:
        future = client.submit(mixed_items(n))
        while service.items_scored() < 200:
            time.sleep(0.05)
        assert not future.done()
        service.kill()
        service.start()
        result = future.result(timeout=300)
    assert [r.id for r in result.results] == [str(i) for i in range(n)]
    assert result.rewards == expected_rewards(n)
    assert service.items_scored() > 0  # the new process scored what the old one never answered


@pytest.mark.slow
def test_a_replica_killed_while_a_batch_is_spread_over_two_is_routed_around(service_process: type) -> None:
    a, b = service_process(), service_process()
    a.start()
    b.start()
    n = 2400
    with RewardClient([a.url, b.url], rewards={"math": {}}, batch_size=80, concurrency=4) as client:
        future = client.submit(mixed_items(n))
        while a.items_scored() < 100 or b.items_scored() < 100:
            time.sleep(0.05)
        assert not future.done()
        a.kill()
        result = future.result(timeout=300)
    assert [r.id for r in result.results] == [str(i) for i in range(n)]
    assert result.rewards == expected_rewards(n)
    assert b.items_scored() > n // 2  # b took its share and what a left behind


def test_two_replicas_share_a_batch(live_service: LiveService) -> None:
    from tests.conftest import scored_per_checker, start_service, stop_service

    other, server, thread = start_service(workers=1, sandbox={"backend": "none"})
    try:
        with RewardClient([live_service.url, other.url], rewards={"math": {}}, batch_size=8) as client:
            result = client.score(mixed_items(64))
        assert result.rewards == expected_rewards(64)
        assert sum(scored_per_checker(other.url).values()) > 0
    finally:
        stop_service(server, thread)


def test_profiles_lists_the_server_profiles(live_service: LiveService) -> None:
    with RewardClient(live_service.url) as client:
        profiles = client.profiles()
    assert profiles["profiles"]["math"] == {"math": {"weight": 1.0}}


def test_the_sdk_imports_nothing_of_the_server_or_the_trainers() -> None:
    import subprocess
    import sys

    heavy = "{'service', 'rewards', 'sandboxes', 'fastapi', 'trl', 'torch', 'transformers', 'verl'}"
    code = f"import sys, rlvr, rlvr.trl, rlvr.verl; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
