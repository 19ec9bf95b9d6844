"""Fixtures of the service tests: a service that has no code sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LiveService, start_service, stop_service


@pytest.fixture(scope="module")
def no_sandbox() -> Iterator[LiveService]:
    """A service started with no sandbox backend at all."""
    service, server, thread = start_service(workers=1, sandbox={"backend": "none"})
    yield service
    stop_service(server, thread)
