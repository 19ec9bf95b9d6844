"""Reward profiles: configured on the server, named by `/v1/score` requests and items, listed by `/v1/profiles`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from service.app import create_app
from service.settings import Settings
from service.specs import ProfileError
from tests.conftest import LiveService, start_service, stop_service

R1 = "<think>\nOne half of one is a half.\n</think>\n<answer>\n$\\boxed{{{answer}}}$\n</answer>"
BARE = "So the answer is $\\boxed{{{answer}}}$."

CUSTOM = {
    "strict-math": {"math": {"weight": 2.0}, "format": {"weight": 0.5, "mode": "strict"}},
    "math": {"math": {"weight": 3.0}},  # replaces the built-in
}


@pytest.fixture(scope="module")
def custom_service() -> Iterator[LiveService]:
    service, server, thread = start_service(
        workers=1, profiles=CUSTOM, default_profile="strict-math", sandbox={"backend": "none"}
    )
    yield service
    stop_service(server, thread)


def post(service: LiveService, body: Any) -> httpx.Response:
    return httpx.post(f"{service.url}/v1/score", json=body, timeout=120)


def rewards_of(service: LiveService, body: Any) -> list[float | None]:
    response = post(service, body)
    assert response.status_code == 200, response.text
    return [r["reward"] for r in response.json()["results"]]


def item(item_id: str, completion: str, **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "completion": completion, "reference": "\\frac{1}{2}", **extra}


RIGHT_R1 = R1.format(answer="\\frac{1}{2}")
WRONG_R1 = R1.format(answer="3")
RIGHT_BARE = BARE.format(answer="0.5")

PROFILE_REQUESTS = [
    pytest.param({"profile": "r1-math"}, [RIGHT_R1, WRONG_R1, RIGHT_BARE], [1.2, 0.2, 1.0], id="r1_math_builtin"),
    pytest.param({"profile": "math"}, [RIGHT_R1, WRONG_R1], [1.0, 0.0], id="math_builtin"),
    pytest.param(
        {"profile": "r1-math", "rewards": {"format": {"weight": 1.0}}},
        [RIGHT_R1, RIGHT_BARE],
        [2.0, 1.0],
        id="override_one_setting_keeps_the_rest",
    ),
    pytest.param(
        {"profile": "r1-math", "rewards": {"format": None}}, [RIGHT_R1, WRONG_R1], [1.0, 0.0], id="null_drops_checker"
    ),
    pytest.param(
        {"profile": "math", "rewards": {"format": {"weight": 0.5}}},
        [RIGHT_R1, RIGHT_BARE],
        [1.5, 1.0],
        id="override_adds_checker",
    ),
    pytest.param(
        {"rewards": {"math": {}}},
        [RIGHT_R1, WRONG_R1],
        [1.0, 0.0],
        id="plain_rewards_unchanged",
    ),
]


@pytest.mark.parametrize(("spec", "completions", "expected"), PROFILE_REQUESTS)
def test_a_profile_stands_in_for_rewards(
    live_service: LiveService, spec: dict[str, Any], completions: list[str], expected: list[float]
) -> None:
    items = [item(str(i), c) for i, c in enumerate(completions)]
    assert rewards_of(live_service, {**spec, "items": items}) == pytest.approx(expected)


MIXED = [
    pytest.param(
        {"profile": "r1-math"},
        [item("a", RIGHT_R1), item("b", RIGHT_R1, profile="math")],
        [1.2, 1.0],
        id="item_names_its_own_profile",
    ),
    pytest.param(
        {},
        [item("a", RIGHT_R1, profile="math"), item("b", RIGHT_R1, profile="r1-math")],
        [1.0, 1.2],
        id="every_item_names_a_profile_no_batch_spec",
    ),
    pytest.param(
        {"profile": "r1-math"},
        [item("a", RIGHT_R1, rewards={"format": None, "language": None}), item("b", RIGHT_R1)],
        [1.0, 1.2],
        id="item_drops_batch_checkers_with_null",
    ),
    pytest.param(
        {"rewards": {"math": {}, "format": {"weight": 0.5}}},
        [item("a", RIGHT_R1, rewards={"format": None}), item("b", RIGHT_R1)],
        [1.0, 1.5],
        id="item_drops_checker_of_plain_rewards",
    ),
    pytest.param(
        {"profile": "math"},
        [item("a", RIGHT_R1, profile="r1-math", rewards={"math": {"weight": 2.0}})],
        [2.2],  # language has no prompt to take a target from: no score, not a mask
        id="item_profile_with_item_overrides",
    ),
]


@pytest.mark.parametrize(("batch", "items", "expected"), MIXED)
def test_mixed_batches(
    live_service: LiveService, batch: dict[str, Any], items: list[dict[str, Any]], expected: list[float]
) -> None:
    response = post(live_service, {**batch, "items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["reward"] for r in results] == pytest.approx(expected)


def test_a_dropped_checker_is_not_run_for_that_item(live_service: LiveService) -> None:
    items = [item("a", RIGHT_R1, rewards={"format": None, "language": None}), item("b", RIGHT_R1)]
    a, b = post(live_service, {"profile": "r1-math", "items": items}).json()["results"]
    assert set(a["components"]) == {"math"}
    assert set(b["components"]) == {"math", "format", "language"}


PROFILES_LISTED = "valid: code, math, r1-math"

BAD = [
    pytest.param({"profile": "r2-math", "items": []}, "body.profile", True, id="unknown_batch_profile"),
    pytest.param({"profile": "mathz", "items": [item("a", "x")]}, "body.profile", True, id="unknown_with_items"),
    pytest.param(
        {"profile": "math", "items": [item("a", "x", profile="nope")]}, "items.0.profile", True, id="unknown_item"
    ),
    pytest.param({"items": [item("a", "x")]}, "body.rewards", True, id="neither_rewards_nor_profile"),
    pytest.param(
        {"profile": "math", "items": [item("a", "x", rewards={"math": None})]},
        "items.0.rewards",
        False,
        id="item_drops_every_checker",
    ),
    pytest.param(
        {"profile": "math", "rewards": {"math": None}, "items": []}, "body.rewards", False, id="batch_drops_all"
    ),
    pytest.param(
        {"profile": "math", "rewards": {"math": {"weight": "heavy"}}, "items": []},
        "rewards.math.weight",
        False,
        id="bad_override_setting",
    ),
]


@pytest.mark.parametrize(("body", "mentions", "lists_profiles"), BAD)
def test_bad_profile_requests_are_422_naming_the_field(
    live_service: LiveService, body: dict[str, Any], mentions: str, lists_profiles: bool
) -> None:
    response = post(live_service, body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "invalid_spec"
    assert mentions in error["message"]
    assert (PROFILES_LISTED in error["message"]) is lists_profiles
    assert "Traceback" not in response.text


def test_profiles_are_listed_with_their_specs(live_service: LiveService) -> None:
    body = httpx.get(f"{live_service.url}/v1/profiles").json()
    assert body["default"] == "r1-math"
    assert set(body["profiles"]) == {"r1-math", "math", "code"}
    assert body["profiles"]["r1-math"]["format"] == {"weight": 0.2, "mode": "strict"}
    assert body["profiles"]["r1-math"]["language"]["weight"] == 0.1


def test_configured_profiles_add_to_and_replace_builtins(custom_service: LiveService) -> None:
    body = httpx.get(f"{custom_service.url}/v1/profiles").json()
    assert body["default"] == "strict-math"
    assert set(body["profiles"]) == {"r1-math", "math", "code", "strict-math"}
    items = [item("a", RIGHT_R1), item("b", RIGHT_BARE)]
    assert rewards_of(custom_service, {"profile": "strict-math", "items": items}) == pytest.approx([2.5, 2.0])
    assert rewards_of(custom_service, {"profile": "math", "items": items}) == pytest.approx([3.0, 3.0])


BAD_PROFILES = [
    pytest.param({"broken": {"maths": {}}}, "r1-math", "'broken'", "maths", id="unknown_checker"),
    pytest.param({"broken": {"math": {"precision": 3}}}, "r1-math", "'broken'", "precision", id="unknown_setting"),
    pytest.param({"broken": {"format": {"mode": "lenient"}}}, "r1-math", "'broken'", "mode", id="bad_value"),
    pytest.param({"broken": {}}, "r1-math", "'broken'", "no checkers", id="empty"),
    pytest.param({}, "nope", "RLVR_DEFAULT_PROFILE", PROFILES_LISTED, id="unknown_default"),
]


@pytest.mark.parametrize(("profiles", "default", "names", "mentions"), BAD_PROFILES)
def test_a_bad_profile_stops_startup_naming_it(
    profiles: dict[str, Any], default: str, names: str, mentions: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        create_app(Settings(profiles=profiles, default_profile=default))
    assert names in str(caught.value) and mentions in str(caught.value)


def test_profiles_from_env_json_text_or_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RLVR_PROFILES", json.dumps(CUSTOM))
    assert Settings().profiles == CUSTOM
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(CUSTOM))
    monkeypatch.setenv("RLVR_PROFILES", str(path))
    assert Settings().profiles == CUSTOM


@pytest.mark.parametrize("value", ["/no/such/profiles.json", "{not json"])
def test_unreadable_profiles_setting_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RLVR_PROFILES", value)
    with pytest.raises(ValidationError, match="profiles"):
        Settings()
