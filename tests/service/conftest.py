"""Fixtures of the service tests: a service that has no code sandbox, `rlvr serve` in a process of its own, and
the app in this process with executors that hold batches in flight until told to let them go."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rewards import CheckResult, Status
from service.app import create_app
from service.engine import Engine
from service.executors import Work
from service.settings import Settings
from tests.conftest import LiveService, ServiceProcess, start_service, stop_service


@pytest.fixture(scope="module")
def no_sandbox() -> Iterator[LiveService]:
    """A service started with no sandbox backend at all."""
    service, server, thread = start_service(workers=1, sandbox={"backend": "none"})
    yield service
    stop_service(server, thread)


class ServeProcess(ServiceProcess):
    """`python -m service serve` as an operator runs it (one worker, no sandbox), its stderr kept in a file."""

    def __init__(self, log_path: Path, *flags: str) -> None:
        super().__init__("--workers", "1", "--sandbox-backend", "none", *flags, log_path=log_path)
        self.start()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Make ``serve_process(*flags)``; each one made is stopped after the test."""
    made: list[ServeProcess] = []

    class Tracked(ServeProcess):
        def __init__(self, *flags: str) -> None:
            super().__init__(tmp_path / f"serve-{len(made)}.log", *flags)
            made.append(self)

    yield Tracked
    for process in made:
        process.stop()


# -- the app in this process, with batches held in flight ----------------------------------------------------------


class Gate:
    """An executor that scores everything 1.0, but holds a batch holding a "hold" completion until ``release``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.held = 0
        self._open = asyncio.Event()

    @contextmanager
    def admit(self, jobs: int) -> Iterator[None]:
        yield

    async def run(self, work: Sequence[Work]) -> list[CheckResult]:
        if any(unit.sample.completion == "hold" for unit in work):
            self.held += 1
            try:
                await self._open.wait()
            finally:
                self.held -= 1
        return [CheckResult(score=1.0, status=Status.OK) for _ in work]

    def release(self) -> None:
        self._open.set()

    def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        self.release()


class GatedApp:
    def __init__(self, app: FastAPI, gates: dict[str, Gate]) -> None:
        self.app = app
        self.gates = gates

    @property
    def held(self) -> int:
        return sum(gate.held for gate in self.gates.values())

    def client(self, token: str | None = None, address: str = "10.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.AsyncClient(transport=transport, base_url="http://rlvr", headers=headers, timeout=30)

    def release(self) -> None:
        for gate in self.gates.values():
            gate.release()


@asynccontextmanager
async def gated_app(**settings: Any) -> AsyncIterator[GatedApp]:
    """The real app (routes, middleware, engine) whose executors are gates: no worker process, no sandbox."""
    model = Settings(**{"workers": 1, "cache_size": 0, "sandbox": {"backend": "none"}, **settings})
    app = create_app(model)
    gates = {name: Gate(name) for name in ("cpu", "sandbox")}
    engine = app.state.rlvr.engine = Engine(model, executors=list(gates.values()))
    await engine.start()
    gated = GatedApp(app, gates)
    try:
        yield gated
    finally:
        gated.release()
        await engine.close()


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)
