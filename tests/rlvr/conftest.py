"""Real services in their own processes, for the tests that kill and restart one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ServiceProcess


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
