"""Shared test configuration.

Docker and bubblewrap tests need their backend. A newcomer without them sees those tests skipped with the
reason and how to enable them; CI sets RLVR_REQUIRE_SANDBOXES=1 so a missing backend fails loudly instead.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_SANDBOXES = os.environ.get("RLVR_REQUIRE_SANDBOXES") == "1"


def missing_backend(reason: str) -> None:
    """Skip (locally) or fail (CI) a test whose sandbox backend is not available."""
    hint = "; run `make sandboxes` (needs root: installs docker.io and bubblewrap, builds the runtime image)"
    if REQUIRE_SANDBOXES:
        pytest.fail(f"RLVR_REQUIRE_SANDBOXES=1 but {reason}{hint}", pytrace=False)
    pytest.skip(f"{reason}{hint}")


# -- a live rlvr service, shared by the service and SDK tests --------------------------------------------------

import contextlib  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402


@dataclass(frozen=True)
class LiveService:
    url: str
    app: object


def scored_per_checker(url: str) -> dict[str, float]:
    """``rlvr_items_total`` of the service at ``url``, summed over statuses, per checker: one per component of
    every item it has scored."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name == "rlvr_items_total":
                counts[sample.labels["checker"]] = counts.get(sample.labels["checker"], 0.0) + sample.value
    return counts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_service(**settings: object) -> tuple[LiveService, object, threading.Thread]:
    """Start a real uvicorn server with the real worker pool in a background thread."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    port = _free_port()
    app = create_app(Settings(port=port, **settings))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the rlvr service did not start")
        time.sleep(0.05)
    return LiveService(f"http://127.0.0.1:{port}", app), server, thread


def stop_service(server: object, thread: threading.Thread) -> None:
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=60)


@pytest.fixture(scope="session")
def live_service() -> Iterator[LiveService]:
    """The service as a user runs it: 2 workers, sandboxes chosen automatically."""
    backend = os.environ.get("RLVR_TEST_SANDBOX_BACKEND", "auto")
    service, server, thread = start_service(workers=2, sandbox={"backend": backend, "pool_size": 2})
    yield service
    stop_service(server, thread)


@pytest.fixture(scope="module")
def sandboxed(live_service: LiveService) -> LiveService:
    """The shared live service, when it found a code sandbox (a skip locally, a failure in CI otherwise)."""
    sandbox = httpx.get(f"{live_service.url}/readyz").json()["sandbox"]
    if not sandbox["available"]:
        missing_backend(f"the service found no code sandbox ({sandbox['reason']})")
    return live_service


class ServiceProcess:
    """`rlvr serve` in its own process group on a fixed port, as an operator runs it: ``terminate()`` is SIGTERM to
    the service process alone (as Kubernetes sends it), ``kill()`` SIGKILL to it and its workers mid-request,
    ``start()`` brings it back on the same port. With ``log_path`` its stderr goes to that file."""

    def __init__(self, *flags: str, log_path: Path | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flags = flags
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "service", "serve", "--port", str(self.port)]
        if self.log_path is None:  # nobody reads its log: only what goes wrong
            argv += ["--log-level", "warning"]
        with open(self.log_path, "ab") if self.log_path else contextlib.nullcontext() as stderr:
            self.proc = subprocess.Popen([*argv, *self.flags], stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 120
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the rlvr service did not start:\n{self.log_text()}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return "" if self.log_path is None else self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def items_scored(self) -> int:
        """Component results this process has produced so far (from its /metrics)."""
        return int(sum(scored_per_checker(self.url).values()))

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz").status_code == 200
        except httpx.TransportError:
            return False
