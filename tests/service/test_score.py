"""`POST /v1/score` end to end: a real server, real worker processes, real math-verify."""

from __future__ import annotations

import json
import math
import secrets
import sys
import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService

R1 = "<think>\nOne half of one is a half.\n</think>\n<answer>\n$\\boxed{{{answer}}}$\n</answer>"


def r1(answer: str) -> str:
    return R1.format(answer=answer)


def post(service: LiveService, body: Any) -> httpx.Response:
    # json.dumps escapes lone surrogates (valid JSON); httpx's own encoder would refuse them.
    raw = json.dumps(body).encode()
    return httpx.post(f"{service.url}/v1/score", content=raw, headers={"content-type": "application/json"}, timeout=120)


def score(service: LiveService, rewards: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    response = post(service, {"rewards": rewards, "items": items})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_results_in_order_with_weighted_rewards_and_groups(live_service: LiveService) -> None:
    rewards = {"math": {"weight": 1.0}, "format": {"weight": 0.2, "mode": "strict"}}
    items = [
        {"id": "q1-s0", "group": "q1", "completion": r1("\\frac{1}{2}"), "reference": "\\frac{1}{2}"},
        {"id": "q1-s1", "group": "q1", "completion": "The answer is $\\boxed{0.5}$", "reference": "\\frac{1}{2}"},
        {"id": "q1-s2", "group": "q1", "completion": r1("3"), "reference": "\\frac{1}{2}"},
        {"id": "q2-s0", "group": "q2", "completion": r1("7"), "reference": 7},
        {"id": "q2-s1", "group": "q2", "completion": r1("7"), "reference": 7},
    ]
    body = score(live_service, rewards, items)
    assert [r["id"] for r in body["results"]] == [i["id"] for i in items]
    assert [r["reward"] for r in body["results"]] == pytest.approx([1.2, 1.0, 0.2, 1.2, 1.2])
    assert [r["mask"] for r in body["results"]] == [False] * 5
    first = body["results"][0]["components"]
    assert first["math"]["status"] == "ok" and first["math"]["details"]
    assert body["groups"]["q1"]["size"] == 3 and body["groups"]["q1"]["uniform"] is False
    assert body["groups"]["q1"]["mean"] == pytest.approx((1.2 + 1.0 + 0.2) / 3)
    assert body["groups"]["q2"] == {"size": 2, "mean": pytest.approx(1.2), "std": pytest.approx(0.0), "uniform": True}


def test_unparseable_reference_is_masked_not_punished(live_service: LiveService) -> None:
    items = [
        {"id": "bad", "completion": r1("2"), "reference": "???"},
        {"id": "good", "completion": r1("2"), "reference": "2"},
    ]
    bad, good = score(live_service, {"math": {}}, items)["results"]
    assert (bad["reward"], bad["mask"], bad["failure_kind"]) == (None, True, "bad_reference")
    assert bad["failure_reason"]
    assert (good["reward"], good["mask"]) == (1.0, False)


def test_per_item_override_changes_only_that_item(live_service: LiveService) -> None:
    items = [
        {"id": "a", "completion": "#### 1,234", "reference": "1234", "rewards": {"math": {"answer_mode": "gsm8k"}}},
        {"id": "b", "completion": "#### 1,234", "reference": "1234"},
    ]
    a, b = score(live_service, {"math": {}}, items)["results"]
    assert a["reward"] == 1.0
    assert a["components"]["math"]["details"] != b["components"]["math"]["details"]


BAD_REQUESTS = [
    pytest.param(b"{not json", "invalid_request", None, id="malformed_json"),
    pytest.param(
        {"rewards": {"math": {}}, "items": [{"id": "a", "completion": 5}]},
        "invalid_request",
        "completion",
        id="wrong_field_type",
    ),
    pytest.param({"rewards": {"math": {}}, "items": [{"completion": "x"}]}, "invalid_request", "id", id="missing_id"),
    pytest.param({"rewards": {"maths": {}}, "items": []}, "invalid_spec", "math", id="unknown_checker_lists_valid"),
    pytest.param(
        {"rewards": {"math": {"precision": 3}}, "items": []},
        "invalid_spec",
        "float_rounding",
        id="unknown_setting_lists_valid",
    ),
    pytest.param(
        {"rewards": {"math": {}}, "items": [{"id": "a", "completion": "x", "rewards": {"math": {"x": 1}}}]},
        "invalid_spec",
        "items.0.rewards.math.x",
        id="unknown_item_setting",
    ),
    pytest.param(
        {"rewards": {"format": {"mode": "lenient"}}, "items": []}, "invalid_spec", "mode", id="bad_setting_value"
    ),
    # json.dumps writes NaN and Infinity as the literals Python's json (and so FastAPI) reads back.
    *[
        pytest.param(
            {"rewards": {name: {setting: value}}, "items": []},
            "invalid_spec",
            f"rewards.{name}.{setting}",
            id=f"non_finite_{name}_{setting}_{value}",
        )
        for name, setting, value in [
            ("math", "weight", math.nan),
            ("format", "weight", math.inf),
            ("language", "weight", -math.inf),
            ("math", "weight", "NaN"),
            ("math", "timeout_s", math.nan),
            ("code", "float_tolerance", math.inf),
            ("code", "timeout_s", math.nan),
        ]
    ],
    pytest.param(
        {"rewards": {"math": {}}, "items": [{"id": "a", "completion": "x", "rewards": {"math": {"weight": math.nan}}}]},
        "invalid_spec",
        "items.0.rewards.math.weight",
        id="non_finite_item_weight",
    ),
    pytest.param(
        {
            "rewards": {"math": {}},
            "items": [{"id": "a", "completion": "x", "rewards": {"format": {"weight": math.inf}}}],
        },
        "invalid_spec",
        "items.0.rewards.format.weight",
        id="non_finite_item_weight_of_a_checker_only_the_item_runs",
    ),
]


@pytest.mark.parametrize(("body", "code", "mentions"), BAD_REQUESTS)
def test_bad_requests_get_422_naming_the_field(
    live_service: LiveService, body: Any, code: str, mentions: str | None
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{live_service.url}/v1/score", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == code
    if mentions:
        assert mentions in json.dumps(error)
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param(
            {"rewards": {"language": {"detector": "lingua", "min_words": 3}}, "items": []},
            "rewards.language.detector",
            id="request_spec",
        ),
        pytest.param(
            {
                "rewards": {"language": {"min_words": 3}},
                "items": [{"id": "a", "completion": "x", "rewards": {"language": {"detector": "lingua"}}}],
            },
            "items.0.rewards.language.detector",
            id="item_override",
        ),
    ],
)
def test_lingua_without_its_extra_is_422_naming_the_extra(
    live_service: LiveService, monkeypatch: pytest.MonkeyPatch, body: Any, mentions: str
) -> None:
    # The service runs in this process: it now finds no lingua package, as a server installed without the extra.
    monkeypatch.setitem(sys.modules, "lingua", None)
    response = post(live_service, body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "invalid_spec"
    assert mentions in error["message"] and "rlvr[lingua]" in error["message"]


def test_too_many_bytes_is_413(live_service: LiveService) -> None:
    limit = live_service.app.state.rlvr.settings.max_body_bytes  # type: ignore[attr-defined]
    body = {"rewards": {"math": {}}, "items": [{"id": "a", "completion": "x" * (limit + 10)}]}
    response = post(live_service, body)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_too_many_items_is_413(live_service: LiveService) -> None:
    limit = live_service.app.state.rlvr.settings.max_items  # type: ignore[attr-defined]
    items = [{"id": str(i), "completion": ""} for i in range(limit + 1)]
    response = post(live_service, {"rewards": {"format": {}}, "items": items})
    assert response.status_code == 413
    assert response.json()["code"] == "too_many_items"


BAD_ITEMS = [
    pytest.param({"completion": r1("1"), "reference": None}, "invalid_item", True, id="missing_reference"),
    pytest.param({"completion": "x" * 1_000_000, "reference": "1"}, "no_answer", False, id="1MB_garbage"),
    pytest.param({"completion": "\\boxed{" + "1+" * 1000, "reference": "1"}, None, False, id="unclosed_boxed"),
    pytest.param({"completion": "\ud800 answer \\boxed{\udfff1}", "reference": "1"}, None, False, id="lone_surrogates"),
    pytest.param(
        {"completion": "\\boxed{" + "(" * 300 + "1" + ")" * 300 + "}", "reference": "1"},
        None,
        False,
        id="300_nested_parens",
    ),
]


@pytest.mark.parametrize(("item", "status", "masked"), BAD_ITEMS)
def test_one_bad_item_never_spoils_the_batch(
    live_service: LiveService, item: dict[str, Any], status: str | None, masked: bool
) -> None:
    items = [
        {"id": "before", "completion": r1("\\frac{3}{4}"), "reference": "0.75"},
        {"id": "bad", **item},
        {"id": "after", "completion": r1("\\sqrt{2}"), "reference": "2^{1/2}"},
    ]
    before, bad, after = score(live_service, {"math": {}}, items)["results"]
    assert (before["reward"], after["reward"]) == (1.0, 1.0)
    assert bad["id"] == "bad" and bad["mask"] is masked
    if status:
        assert bad["components"]["math"]["status"] == status
    if not masked:
        assert bad["reward"] in (0.0, 1.0)


HANGS = [
    pytest.param("9^{9^{9}}", "9^{9^{9}}+1", id="power_tower_vs_plus_one"),
    pytest.param("(10^{7})!", "1", id="factorial_of_ten_million"),
    pytest.param("2^{2^{2^{2^{2^{2}}}}}", "2", id="tower_of_twos"),
    pytest.param("+".join(f"{i}" for i in range(20_001)), "200010000", id="sum_of_20001_terms"),
    pytest.param("(" * 300 + "1" + ")" * 300, "1", id="300_nested_parentheses"),
    pytest.param("7" * 100_000, "7", id="100000_digit_integer"),
    pytest.param(None, "1", id="200kB_no_answer"),
    pytest.param("1 " * 20_000, "1", id="twenty_thousand_ones"),
    pytest.param("\\dfrac{5^{(5^{(5^{(5^5)})} - 4)} - 5}{16}", "1", id="math_verify_issue_65"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "reference"), HANGS)
def test_hang_list_is_answered_within_its_timeout(
    live_service: LiveService, answer: str | None, reference: str
) -> None:
    settings = {"timeout_s": 1.0}
    completion = (
        "Reasoning without an answer. " * 7_000 if answer is None else f"So the answer is $\\boxed{{{answer}}}$."
    )
    items = [
        {"id": "ok-1", "completion": r1("42"), "reference": "42"},
        {"id": "hang", "completion": completion, "reference": reference, "rewards": {"math": settings}},
        {"id": "ok-2", "completion": r1("x^2"), "reference": "x^2"},
    ]
    budget = 1.0 + 0.5 + live_service.app.state.rlvr.settings.hard_grace_s  # type: ignore[attr-defined]
    started = time.monotonic()
    results = score(live_service, {"math": {}}, items)["results"]
    elapsed = time.monotonic() - started
    assert elapsed <= budget + 2.0, f"answered after {elapsed:.1f} s"
    assert [r["reward"] for r in (results[0], results[2])] == [1.0, 1.0]
    hang = results[1]
    assert hang["mask"] is False and hang["reward"] == 0.0
    assert hang["components"]["math"]["status"] in {"timeout", "ok", "no_answer"}
    assert httpx.get(f"{live_service.url}/healthz").status_code == 200
    follow_up = score(live_service, {"math": {}}, [{"id": "z", "completion": r1("5"), "reference": "5"}])
    assert follow_up["results"][0]["reward"] == 1.0


def test_identical_answers_are_scored_once(live_service: LiveService) -> None:
    metrics = httpx.get(f"{live_service.url}/metrics").text
    before = _metric(metrics, 'rlvr_cache_total{result="dedup"}')
    # A value no other test scores: on the shared service, an earlier batch would make these cache hits.
    unique = secrets.randbelow(10**12) + 10**12
    items = [
        {"id": str(i), "group": "g", "completion": r1(f"\\frac{{{unique}}}{{3}}"), "reference": f"{unique}/3"}
        for i in range(16)
    ]
    body = score(live_service, {"math": {}}, items)
    assert [r["reward"] for r in body["results"]] == [1.0] * 16
    assert body["groups"]["g"]["uniform"] is True
    after = _metric(httpx.get(f"{live_service.url}/metrics").text, 'rlvr_cache_total{result="dedup"}')
    assert after - before == 15


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
