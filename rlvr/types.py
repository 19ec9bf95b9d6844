"""Typed results of the rlvr API, as the SDK returns them (mirrors the service's response, no server imports)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Component", "GroupStats", "ItemResult", "ScoreResult", "group_stats", "merge_spec"]


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
    advantages: list[float | None] | None = Field(
        default=None,
        description="With advantages=True: (reward - group mean) / (group std + eps) per item; None where masked; "
        "0 for an item without a group.",
    )

    @property
    def rewards(self) -> list[float | None]:
        """One reward per item, None where the item is masked (TRL turns None into NaN and masks it)."""
        return [item.reward for item in self.results]

    @property
    def no_signal(self) -> list[str]:
        """The groups whose judged members all got the same reward: they carry no GRPO signal."""
        return [name for name, stats in self.groups.items() if stats.uniform]


def group_stats(groups: Sequence[str | None], rewards: Sequence[float | None]) -> dict[str, GroupStats]:
    """The service's group statistics, over whole groups: size counts every member, mean and the population std
    only the judged (unmasked) ones; ``uniform`` when they all got the same reward."""
    members: dict[str, list[float | None]] = {}
    for group, reward in zip(groups, rewards, strict=True):
        if group is not None:
            members.setdefault(group, []).append(reward)
    return {group: _stats(values) for group, values in members.items()}


def _stats(values: list[float | None]) -> GroupStats:
    judged = [v for v in values if v is not None]
    if not judged:
        return GroupStats(size=len(values), mean=None, std=None, uniform=True)
    mean = sum(judged) / len(judged)
    std = math.sqrt(sum((v - mean) ** 2 for v in judged) / len(judged))
    return GroupStats(size=len(values), mean=mean, std=std, uniform=max(judged) - min(judged) < 1e-12)


def grpo_advantages(
    groups: Sequence[str | None], rewards: Sequence[float | None], stats: dict[str, GroupStats], eps: float
) -> list[float | None]:
    """``(r - mean) / (std + eps)`` over each item's group; masked items are left out (None)."""
    out: list[float | None] = []
    for group, reward in zip(groups, rewards, strict=True):
        if reward is None:
            out.append(None)
        elif group is None:
            out.append(0.0)
        else:
            g = stats[group]
            out.append((reward - (g.mean or 0.0)) / ((g.std or 0.0) + eps))
    return out


def merge_spec(
    base: Mapping[str, Mapping[str, Any] | None], overrides: Mapping[str, Mapping[str, Any] | None] | None
) -> dict[str, dict[str, Any]]:
    """``overrides`` on top of ``base``, per checker and per setting; a None override drops that checker. The
    service's definition (a profile with a request's ``rewards``), so that the SDK's view of it cannot differ."""
    merged = {name: dict(settings or {}) for name, settings in base.items()}
    for name, override in (overrides or {}).items():
        if override is None:
            merged.pop(name, None)
        else:
            merged[name] = {**merged.get(name, {}), **override}
    return merged
