"""What the app holds while it runs: its settings, its metrics and the engine (once started)."""

from __future__ import annotations

from dataclasses import dataclass

from service.engine import Engine
from service.metrics import Metrics
from service.settings import Settings

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.engine.started
