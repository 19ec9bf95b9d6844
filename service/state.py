"""What the app holds: its settings, its metrics and its engine (started and closed by the app's lifespan)."""

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
    engine: Engine

    @property
    def ready(self) -> bool:
        return self.engine.started
