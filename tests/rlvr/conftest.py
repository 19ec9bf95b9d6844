"""Real services in their own processes, for the tests that kill and restart one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import _free_port


class ServiceProcess:
    """`rlvr serve` in its own process group on a fixed port: ``kill()`` is SIGKILL to the service and its
    workers, mid-request; ``start()`` brings it back on the same port."""

    def __init__(self, *flags: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flags = flags
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "service", "serve", "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen([*argv, *self.flags], start_new_session=True)
        deadline = time.monotonic() + 120
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the rlvr service did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def items_scored(self) -> int:
        """Component results this process has produced so far (from its /metrics)."""
        text = httpx.get(f"{self.url}/metrics").text
        return int(sum(float(v) for v in re.findall(r"^rlvr_items_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)))

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz").status_code == 200
        except httpx.TransportError:
            return False


@pytest.fixture
def service_process() -> Iterator[type[ServiceProcess]]:
    """Make ServiceProcess(*flags); every one made is stopped after the test."""
    made: list[ServiceProcess] = []

    class Tracked(ServiceProcess):
        def __init__(self, *flags: str) -> None:
            super().__init__("--workers", "1", "--sandbox-backend", "none", *flags)
            made.append(self)

    yield Tracked
    for service in made:
        service.stop()
