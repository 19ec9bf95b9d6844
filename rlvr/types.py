"""Typed results of the rlvr API, as the SDK returns them (mirrors the service's response, no server imports)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Component", "GroupStats", "ItemResult", "ScoreResult"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Component(_Model):
    score: float | None
    status: str
    details: dict[str, Any] = Field(default_factory=dict)
    failure_kind: str | None = None
    failure_reason: str | None = None


class ItemResult(_Model):
    id: str
    reward: float | None
    mask: bool
    failure_kind: str | None = None
    failure_reason: str | None = None
    components: dict[str, Component] = Field(default_factory=dict)


class GroupStats(_Model):
    size: int
    mean: float | None
    std: float | None
    uniform: bool


class ScoreResult(_Model):
    results: list[ItemResult]
    groups: dict[str, GroupStats] = Field(default_factory=dict)

    @property
    def rewards(self) -> list[float | None]:
        """One reward per item, None where the item is masked (TRL turns None into NaN and masks it)."""
        return [item.reward for item in self.results]
