"""The rlvr client SDK: score completions against a running rlvr service.

``rlvr.trl`` and ``rlvr.verl`` plug it into those trainers; they import nothing of the trainers themselves.
"""

from rlvr._client import AsyncRewardClient, RewardClient
from rlvr._exceptions import APIError, OverloadedError, RequestTimeout, RLVRError, TransportError
from rlvr.config import Retries, Timeouts
from rlvr.types import Component, GroupStats, ItemResult, ScoreResult

__all__ = [
    "APIError",
    "AsyncRewardClient",
    "Component",
    "GroupStats",
    "ItemResult",
    "OverloadedError",
    "RLVRError",
    "RequestTimeout",
    "Retries",
    "RewardClient",
    "ScoreResult",
    "Timeouts",
    "TransportError",
]
