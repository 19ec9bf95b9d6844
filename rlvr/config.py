"""How a client waits: `Timeouts` (every time limit in one place) and `Retries` (backoff and replicas)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

__all__ = ["Retries", "Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """Every time limit of a client, in seconds.

    ``connect``: to open a connection to one replica. ``request``: one HTTP request, from the first byte sent to
    the last byte of the answer (httpx's read, write and pool time-outs). ``total``: one ``score()`` call, retries
    and backoff included; ``None`` bounds it only by ``Retries.attempts``.
    """

    connect: float = 5.0
    request: float = 600.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "request", "total"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Timeouts.{name} must be > 0, got {value}")

    def for_request(self, left_s: float | None) -> httpx.Timeout:
        request = self.request if left_s is None else max(min(self.request, left_s), 1e-3)
        return httpx.Timeout(request, connect=min(self.connect, request))


@dataclass(frozen=True)
class Retries:
    """When to try a chunk again, and how long to wait.

    A chunk is tried up to ``attempts`` times (the first included) on a connection error, a connection broken
    mid-request, 429, 502 or 503. Waits double from ``backoff_s`` up to ``max_backoff_s``, each with jitter (half
    fixed, half random), so that clients that failed together do not come back together. A ``Retry-After`` from
    the service replaces the computed wait, up to ``max_retry_after_s``. A replica that failed is left alone for
    that wait; chunks go to another replica meanwhile, when there is one.
    """

    attempts: int = 8
    backoff_s: float = 0.25
    max_backoff_s: float = 10.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Retries.attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError("Retries needs 0 <= backoff_s <= max_backoff_s")
