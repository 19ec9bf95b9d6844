"""`rlvr serve --log-format json`: JSON lines, request ids, one line per batch, no token, no completion text."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.logs import JsonFormatter, TextFormatter, fields
from tests.service.conftest import ServeProcess

TOKEN = "log-test-token-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
R1 = "<think>\nhalf of one\n</think>\n<answer>\n$\\boxed{{{answer}}}$\n</answer>"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    log_path = tmp_path_factory.mktemp("logs") / "serve.log"
    flags = ("--log-format", "json", "--log-level", "debug", "--api-tokens", f"other-token,{TOKEN}")
    process = ServeProcess(log_path, *flags)
    yield process
    process.stop()


def lines_of(served: ServeProcess, request_id: str) -> list[dict[str, Any]]:
    return [line for line in served.json_lines() if line.get("request_id") == request_id]


def test_every_line_is_one_json_object_with_time_level_logger_and_message(served: ServeProcess) -> None:
    httpx.post(f"{served.url}/v1/score", json={"rewards": {"format": {}}, "items": []}, headers=AUTH)
    text = served.log_text()
    lines = [json.loads(line) for line in text.splitlines()]  # a line that is not JSON fails here
    assert lines, text
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "rlvr.access"} <= loggers and "uvicorn.access" not in loggers


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        pytest.param("trainer-7/step-12/batch-3", True, id="given"),
        pytest.param(None, False, id="absent"),
        pytest.param("x" * 129, False, id="too_long"),
        pytest.param("two words", False, id="space"),
        pytest.param("caf\u00e9", False, id="not_ascii"),
    ],
)
def test_the_request_id_is_returned_and_on_every_line_of_its_request(
    served: ServeProcess, sent: str | None, echoed: bool
) -> None:
    headers = {b"Authorization": f"Bearer {TOKEN}".encode()}
    if sent is not None:
        headers[b"X-Request-ID"] = sent.encode("utf-8")
    body = {"rewards": {"format": {}}, "items": [{"id": "a", "completion": "x"}]}
    response = httpx.post(f"{served.url}/v1/score", json=body, headers=headers)
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert (request_id == sent) is echoed
    assert 1 <= len(request_id) <= 128 and request_id.isascii() and request_id.isprintable() and " " not in request_id
    assert {line["logger"] for line in lines_of(served, request_id)} == {"rlvr.service", "rlvr.access"}


Expected = tuple[int, int, dict[str, dict[str, int]]]  # what the answer shows: items, masked, statuses by checker


def _score(served: ServeProcess, request_id: str) -> Expected:
    items = [
        {"id": "right", "completion": R1.format(answer="\\frac{1}{2}"), "reference": "0.5"},
        {"id": "wrong", "completion": R1.format(answer="3"), "reference": "0.5"},
        {"id": "masked", "completion": R1.format(answer="3"), "reference": "???"},
    ]
    body = {"rewards": {"math": {}, "format": {"weight": 0.1}}, "items": items}
    response = httpx.post(f"{served.url}/v1/score", json=body, headers={**AUTH, "X-Request-ID": request_id})
    results = response.json()["results"]
    statuses: dict[str, Counter[str]] = {}
    for result in results:
        for name, component in result["components"].items():
            statuses.setdefault(name, Counter())[component["status"]] += 1
    return len(results), sum(r["mask"] for r in results), {name: dict(c) for name, c in statuses.items()}


def _get_reward(served: ServeProcess, request_id: str) -> Expected:
    body = {"query": ["Q: 1/2? A: \\boxed{0.5}", "Q: 1/3? A: 7"], "prompts": ["Q: 1/2? A: ", "Q: 1/3? A: "]}
    body["labels"] = ["1/2", "???"]
    response = httpx.post(f"{served.url}/get_reward/math", json=body, headers={**AUTH, "X-Request-ID": request_id})
    assert response.json()["extra_logs"]["rlvr_masked"] == [0.0, 1.0]
    return 2, 1, {"math": {"ok": 1, "bad_reference": 1}}


def _verify(served: ServeProcess, request_id: str) -> Expected:
    output = [{"type": "message", "content": [{"type": "output_text", "text": "\\boxed{2}"}]}]
    body = {"responses_create_params": {}, "response": {"output": output}, "expected_answer": "2"}
    response = httpx.post(f"{served.url}/verify", json=body, headers={**AUTH, "X-Request-ID": request_id})
    assert response.json()["reward"] == 1.0
    return 1, 0, {"math": {"ok": 1}}


@pytest.mark.parametrize(
    ("door", "send"),
    [
        pytest.param("/v1/score", _score, id="score"),
        pytest.param("/get_reward", _get_reward, id="get_reward"),
        pytest.param("/verify", _verify, id="verify"),
    ],
)
def test_each_scoring_batch_gets_one_line_with_its_counts(served: ServeProcess, door: str, send: Any) -> None:
    request_id = uuid.uuid4().hex
    items, masked, checkers = send(served, request_id)
    batch_lines = [line for line in lines_of(served, request_id) if line["logger"] == "rlvr.service"]
    assert len(batch_lines) == 1, batch_lines
    line = batch_lines[0]
    assert (line["door"], line["items"], line["masked"], line["checkers"]) == (door, items, masked, checkers)
    assert line["duration_ms"] >= 0


def test_no_completion_text_and_no_token_reaches_the_logs(served: ServeProcess) -> None:
    marker = "MARKER-" + uuid.uuid4().hex
    wrong = "wrong-token-" + uuid.uuid4().hex
    item = {"id": "a", "completion": f"{marker} \\boxed{{1}}", "prompt": marker, "reference": "1"}
    bodies_and_headers = [
        ({"rewards": {"math": {}, "format": {}, "language": {}}, "items": [item]}, AUTH),  # scored
        ({"rewards": {"math": {}}, "items": [item]}, {"Authorization": f"Bearer {wrong}"}),  # refused, 401
        ({"rewards": {"nope": {}}, "items": [item]}, AUTH),  # refused, 422
        ({"rewards": {"math": {"weight": marker}}, "items": [item]}, AUTH),  # 422 at the marker itself
    ]
    statuses = [
        httpx.post(f"{served.url}/v1/score", json=body, headers=headers).status_code
        for body, headers in bodies_and_headers
    ]
    assert statuses == [200, 401, 422, 422]
    text = served.log_text()
    assert "POST /v1/score 401" in text  # the requests were logged ...
    assert marker not in text and TOKEN not in text and wrong not in text  # ... without their secrets or text


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "rlvr.service", "levelname": "INFO", "msg": "scored %d items"})
    record.args = (3,)
    record.request_id = "req-1"
    for key, value in extra.items():
        setattr(record, key, value)
    return record


@pytest.mark.parametrize(
    ("formatter", "expected"),
    [
        pytest.param(JsonFormatter(), '"checkers": {"math": {"ok": 3}}', id="json"),
        pytest.param(
            TextFormatter(), 'scored 3 items door=/v1/score checkers={"math":{"ok":3}} request_id=req-1', id="text"
        ),
    ],
)
def test_structured_fields_show_in_both_formats(formatter: logging.Formatter, expected: str) -> None:
    line = formatter.format(_record(**fields(door="/v1/score", checkers={"math": {"ok": 3}})))
    assert expected in line
