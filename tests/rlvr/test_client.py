"""The SDK against the real service."""

from __future__ import annotations

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
