"""The rlvr HTTP service: FastAPI app, settings, worker pool, metrics and CLI.

Imports are lazy so that worker processes (which import ``service.worker``) never load FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Settings", "create_app"]

_EXPORTS = {"Settings": "service.settings", "create_app": "service.app"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'service' has no attribute {name!r}")
