"""The math-verify conformance suite, every case through the HTTP API with its own options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveService

SUITE = Path(__file__).parents[1] / "data" / "math-verify-suite.jsonl"


def case_settings(case: dict[str, Any]) -> dict[str, Any]:
    if case["match_types"] == ["default"]:
        return {}
    return {
        "extract": case["match_types"],
        "boxed_priority": 0,
        "float_rounding": case["precision"],
        "strict": case["strict"],
        "allow_set_relation_comp": case["allow_set_relation_comp"],
    }


def test_all_270_cases_come_out_as_labelled(live_service: LiveService) -> None:
    cases = [json.loads(line) for line in SUITE.read_text().splitlines() if line.strip()]
    assert len(cases) == 270
    items = [
        {
            "id": case["nodeid"] + f"#{i}",
            "completion": case["pred"],
            "reference": case["gold"],
            "rewards": {"math": case_settings(case)},
        }
        for i, case in enumerate(cases)
    ]
    response = httpx.post(f"{live_service.url}/v1/score", json={"rewards": {"math": {}}, "items": items}, timeout=600)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    wrong = [
        (case["nodeid"], case["gold"], case["pred"], result["components"]["math"])
        for case, result in zip(cases, results, strict=True)
        if result["reward"] != float(case["expected"])
    ]
    assert not wrong, json.dumps(wrong[:5], indent=1)
