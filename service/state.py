"""What the app holds while it runs: settings, metrics, the worker pool, the scorer and the sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from sandboxes.base import Sandbox
from service.metrics import Metrics
from service.pool import WorkerPool
from service.scoring import Scorer
from service.settings import Settings

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    pool: WorkerPool | None = None
    scorer: Scorer | None = None
    sandbox: Sandbox | None = None
    sandbox_reason: str = "not started"
    ready: bool = False
