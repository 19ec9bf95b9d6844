"""What the app holds: its settings, metrics, engine (started and closed by the app's lifespan), the bearer tokens
it accepts and the batches it has in flight."""

from __future__ import annotations

from dataclasses import dataclass

from service.auth import TokenSet
from service.engine import Engine
from service.lifecycle import Lifecycle
from service.metrics import Metrics
from service.settings import Settings

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    engine: Engine
    tokens: TokenSet
    lifecycle: Lifecycle

    @property
    def ready(self) -> bool:
        return self.engine.started
