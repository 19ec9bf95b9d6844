"""Health, readiness, metrics, checker listing and docs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveService, start_service, stop_service


@pytest.mark.parametrize(
    ("path", "status", "contains"),
    [
        pytest.param("/healthz", 200, '"ok"', id="healthz"),
        pytest.param("/readyz", 200, '"ready"', id="readyz"),
        pytest.param("/metrics", 200, "rlvr_pool_size", id="metrics_pool"),
        pytest.param("/docs", 200, "swagger", id="docs"),
        pytest.param("/openapi.json", 200, "q17-s3", id="openapi_examples"),
        pytest.param("/nope", 404, "not_found", id="unknown_route"),
    ],
)
def test_operational_endpoints(live_service: LiveService, path: str, status: int, contains: str) -> None:
    response = httpx.get(live_service.url + path)
    assert response.status_code == status
    assert contains in response.text


@pytest.mark.parametrize(
    ("family", "kind"),
    [
        pytest.param("rlvr_pool_kills", "counter", id="worker_kills"),
        pytest.param("rlvr_pool_died_idle", "counter", id="workers_died_idle"),
        pytest.param("rlvr_pool_busy", "gauge", id="busy_workers"),
        pytest.param("rlvr_batches_refused_client_limit", "counter", id="refused_per_client"),
        pytest.param("rlvr_batches_cut_at_shutdown", "counter", id="cut_at_shutdown"),
        pytest.param("rlvr_batches_in_flight", "gauge", id="in_flight"),
        pytest.param("rlvr_sandbox_refused_batches", "counter", id="sandbox_refused"),
        pytest.param("rlvr_sandbox_admitted", "gauge", id="sandbox_admitted"),
    ],
)
def test_counts_that_only_grow_are_counters(live_service: LiveService, family: str, kind: str) -> None:
    """rate() and increase() read a restart as a counter reset, never as a drop: counts are exported as counters."""
    from prometheus_client.parser import text_string_to_metric_families

    kinds = {f.name: f.type for f in text_string_to_metric_families(httpx.get(f"{live_service.url}/metrics").text)}
    assert kinds.get(family) == kind


def test_checkers_lists_settings_and_defaults(live_service: LiveService) -> None:
    checkers = httpx.get(f"{live_service.url}/v1/checkers").json()["checkers"]
    assert {"math", "format", "language", "code"} <= set(checkers)
    assert checkers["math"]["defaults"]["float_rounding"] == 6
    assert "float_rounding" in checkers["math"]["settings"]["properties"]
    assert checkers["code"]["runs_in"] == "sandbox"


def test_readyz_names_the_sandbox_backend(live_service: LiveService) -> None:
    sandbox = httpx.get(f"{live_service.url}/readyz").json()["sandbox"]
    assert sandbox["available"] is (sandbox["backend"] is not None)
    if not sandbox["available"]:
        assert sandbox["reason"]


@pytest.fixture(scope="module")
def guarded() -> Iterator[LiveService]:
    service, server, thread = start_service(workers=1, api_token="s3cret", sandbox={"backend": "none"})
    yield service
    stop_service(server, thread)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no_token"),
        pytest.param({"Authorization": "Bearer wrong"}, 401, id="wrong_token"),
        pytest.param({"Authorization": "Bearer s3cret"}, 200, id="right_token"),
    ],
)
def test_bearer_token_guards_scoring(guarded: LiveService, headers: dict[str, str], status: int) -> None:
    body = {"rewards": {"format": {}}, "items": [{"id": "a", "completion": "x"}]}
    response = httpx.post(f"{guarded.url}/v1/score", json=body, headers=headers)
    assert response.status_code == status
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200


def test_docs_show_every_front_door_with_an_example_that_works(live_service: LiveService) -> None:
    spec = httpx.get(f"{live_service.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    doors = {
        path: op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method == "post" and "{" not in path
    }
    assert {"/v1/score", "/v1/run", "/get_reward", "/run_code", "/verify"} <= set(doors)
    for path, schema in doors.items():
        examples = schemas[schema].get("examples")
        assert examples, f"{path}: no request example in /docs"
        for example in examples:
            response = httpx.post(live_service.url + path, json=example, timeout=120)
            assert response.status_code == 200, (path, response.text)
