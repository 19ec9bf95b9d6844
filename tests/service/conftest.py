"""Fixtures of the service tests that need a code sandbox, or a service that has none."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveService, missing_backend, start_service, stop_service


@pytest.fixture(scope="module")
def sandboxed(live_service: LiveService) -> LiveService:
    """The shared live service, when it found a code sandbox (a skip locally, a failure in CI otherwise)."""
    sandbox = httpx.get(f"{live_service.url}/readyz").json()["sandbox"]
    if not sandbox["available"]:
        missing_backend(f"the service found no code sandbox ({sandbox['reason']})")
    return live_service


@pytest.fixture(scope="module")
def no_sandbox() -> Iterator[LiveService]:
    """A service started with no sandbox backend at all."""
    service, server, thread = start_service(workers=1, sandbox={"backend": "none"})
    yield service
    stop_service(server, thread)
