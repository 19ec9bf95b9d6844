"""The rlvr client SDK: score completions against a running rlvr service."""

from rlvr._client import AsyncRewardClient, RewardClient
from rlvr._exceptions import APIError, OverloadedError, RLVRError, TransportError
from rlvr.types import Component, GroupStats, ItemResult, ScoreResult

__all__ = [
    "APIError",
    "AsyncRewardClient",
    "Component",
    "GroupStats",
    "ItemResult",
    "OverloadedError",
    "RLVRError",
    "RewardClient",
    "ScoreResult",
    "TransportError",
]
