"""Graceful shutdown: on SIGTERM the batches in flight are answered, new ones get 503, and the process exits 0
within RLVR_SHUTDOWN_GRACE_S, cutting (503) what is still in flight at its end."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.service.conftest import ServeProcess, gated_app, until

SCORE = {"rewards": {"format": {}}, "items": [{"id": "a", "completion": "quick"}]}
HOLD = {"rewards": {"format": {}}, "items": [{"id": "a", "completion": "hold"}]}


@pytest.mark.parametrize(
    ("method", "path", "status", "shown"),
    [
        pytest.param("POST", "/v1/score", 503, {"code": "shutting_down"}, id="score"),
        pytest.param("POST", "/get_reward", 503, {"code": "shutting_down"}, id="openrlhf"),
        pytest.param("POST", "/run_code", 504, {"code": "shutting_down"}, id="sandbox_fusion_retries_504"),
        pytest.param("GET", "/readyz", 503, {"status": "shutting_down"}, id="readyz_drains_the_replica"),
        pytest.param("GET", "/healthz", 200, {"status": "ok"}, id="healthz_still_alive"),
    ],
)
async def test_while_draining_new_batches_are_refused_with_retry_after(
    method: str, path: str, status: int, shown: dict[str, str]
) -> None:
    async with gated_app() as gated, gated.client() as client:
        gated.app.state.rlvr.lifecycle.begin_drain()
        response = await client.request(method, path, json=SCORE if method == "POST" else None)
    assert response.status_code == status
    assert shown.items() <= response.json().items()
    if method == "POST":
        assert response.headers["Retry-After"] == "1"


async def test_draining_answers_the_batches_already_in_flight() -> None:
    async with gated_app() as gated, gated.client() as client:
        held = asyncio.create_task(client.post("/v1/score", json=HOLD))
        await until(lambda: gated.held == 1)
        gated.app.state.rlvr.lifecycle.begin_drain()
        assert (await client.post("/v1/score", json=SCORE)).status_code == 503
        gated.release()
        answer = await held
    assert answer.status_code == 200 and answer.json()["results"][0]["reward"] == 1.0


async def test_at_the_end_of_the_grace_period_a_batch_in_flight_is_answered_503() -> None:
    async with gated_app(shutdown_grace_s=7) as gated, gated.client() as client:
        lifecycle = gated.app.state.rlvr.lifecycle
        held = asyncio.create_task(client.post("/v1/score", json=HOLD))
        await until(lambda: gated.held == 1)
        lifecycle.begin_drain()
        assert lifecycle.abort() == 1
        answer = await held
        assert lifecycle.in_flight == 0 and gated.held == 0  # the batch's work was cancelled, not left running
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["code"] == "shutting_down" and "RLVR_SHUTDOWN_GRACE_S=7" in answer.json()["message"]


# -- a real `rlvr serve` and a real SIGTERM ---------------------------------------------------------------------------

R1 = "<think>\nreduce the fraction\n</think>\n<answer>\n$\\boxed{{\\frac{{{n}}}{{{d}}}}}$\n</answer>"


def math_batch(size: int) -> dict[str, Any]:
    """Distinct items (no cache, no de-duplication): n/(n+1) against 2n/(2n+2), right on even n, wrong on odd."""
    items = [
        {"id": str(n), "completion": R1.format(n=n, d=n + 1 + n % 2), "reference": f"\\frac{{{2 * n}}}{{{2 * n + 2}}}"}
        for n in range(1, size + 1)
    ]
    return {"rewards": {"math": {}}, "items": items}


def batches_in_flight(served: ServeProcess) -> int:
    found = re.search(r"^rlvr_batches_in_flight ([0-9.]+)$", httpx.get(f"{served.url}/metrics").text, re.M)
    return int(float(found.group(1))) if found else 0


def readiness(served: ServeProcess) -> int | None:
    """/readyz's status, or None once the service no longer takes connections."""
    try:
        return httpx.get(f"{served.url}/readyz").status_code
    except httpx.ConnectError:
        return None


class Background:
    """One request in a thread of its own: its response, or the error it met."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._send, args=(url, body), daemon=True)
        self._thread.start()

    def _send(self, url: str, body: dict[str, Any]) -> None:
        try:
            self.response = httpx.post(url, json=body, timeout=300)
        except httpx.HTTPError as exc:
            self.error = exc

    @property
    def answered(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> httpx.Response:
        self._thread.join(timeout=300)
        assert self.response is not None, self.error
        return self.response


def wait_for(condition: Any, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigterm_answers_the_batch_in_flight_refuses_new_ones_and_exits_0(
    serve_process: Callable[..., ServeProcess],
) -> None:
    served = serve_process("--shutdown-grace-s", "120", "--cache-size", "0")
    body = math_batch(1500)  # seconds on one worker
    in_flight = Background(f"{served.url}/v1/score", body)
    wait_for(lambda: batches_in_flight(served) == 1)

    served.terminate()
    wait_for(lambda: readiness(served) != 200)  # the signal has arrived: load balancers take the replica out
    assert readiness(served) in (503, None)
    try:
        late = httpx.post(f"{served.url}/v1/score", json=math_batch(1), timeout=60)
    except httpx.ConnectError:
        late = None  # the socket closed: the drain was already over
    if not in_flight.answered:  # the service was still draining when it answered: that answer must be a 503
        assert late is not None
    if late is not None:
        assert late.status_code == 503 and late.headers["Retry-After"] == "1", late.text
        assert late.json()["code"] == "shutting_down"

    answer = in_flight.join()
    assert answer.status_code == 200, answer.text
    rewards = [result["reward"] for result in answer.json()["results"]]
    assert rewards == [1.0 if n % 2 == 0 else 0.0 for n in range(1, 1501)]
    assert served.proc.wait(timeout=120) == 0


@pytest.mark.slow
def test_the_grace_period_bounds_a_batch_that_would_take_too_long(serve_process: Callable[..., ServeProcess]) -> None:
    served = serve_process("--shutdown-grace-s", "1", "--cache-size", "0")
    too_long = Background(f"{served.url}/v1/score", math_batch(8000))  # about 16 s on one worker
    wait_for(lambda: batches_in_flight(served) == 1)

    served.terminate()
    answer = too_long.join()
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "shutting_down" and "RLVR_SHUTDOWN_GRACE_S=1" in answer.json()["message"]
    assert served.proc.wait(timeout=60) == 0
    assert "the shutdown grace period (RLVR_SHUTDOWN_GRACE_S=1) passed: 1 batches" in served.log_text()


@pytest.mark.docker
@pytest.mark.slow
def test_sigterm_answers_a_code_batch_and_removes_every_sandbox_container(
    serve_process: Callable[..., ServeProcess],
) -> None:
    from tests.conftest import missing_backend

    docker = pytest.importorskip("docker")
    served = serve_process("--sandbox-backend", "docker", "--sandbox-pool-size", "2")
    sandbox = httpx.get(f"{served.url}/readyz").json()["sandbox"]
    if not sandbox["available"]:
        missing_backend(f"the service found no docker sandbox ({sandbox['reason']})")
    client = docker.from_env()
    mine = {"label": f"rlvr.instance={sandbox['stats']['instance']}"}
    assert client.containers.list(all=True, filters=mine)
    program = "```python\nimport time\ntime.sleep(2)\nprint(int(input()) * 2)\n```"
    item = {"id": "a", "completion": program, "tests": [{"type": "stdin_stdout", "input": "3", "output": "6"}]}
    in_flight = Background(f"{served.url}/v1/score", {"rewards": {"code": {}}, "items": [item]})
    wait_for(lambda: batches_in_flight(served) == 1)

    served.terminate()
    answer = in_flight.join()
    assert answer.status_code == 200 and answer.json()["results"][0]["reward"] == 1.0, answer.text
    assert served.proc.wait(timeout=120) == 0
    assert client.containers.list(all=True, filters=mine) == []
    client.close()
