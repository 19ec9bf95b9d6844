"""Choose and open a sandbox backend by name; there is no unsandboxed fallback, ever.

``BACKENDS`` maps a name to an import string, so a backend's optional dependency (the docker SDK) is imported
only when that backend is asked for. ``"auto"`` tries ``AUTO_ORDER`` (docker, then bubblewrap) and raises
``SandboxUnavailable`` naming why each one failed.
"""

from __future__ import annotations

import importlib
from typing import Any

from sandboxes.base import Sandbox, SandboxUnavailable
from sandboxes.config import SandboxConfig

__all__ = ["AUTO_ORDER", "BACKENDS", "load_backend", "open_sandbox"]

BACKENDS: dict[str, str] = {
    "docker": "sandboxes.docker:DockerSandbox",
    "bubblewrap": "sandboxes.bubblewrap:BubblewrapSandbox",
}
AUTO_ORDER: tuple[str, ...] = ("docker", "bubblewrap")


def load_backend(name: str) -> Any:
    """The backend class registered under ``name``; SandboxUnavailable if its module cannot be imported."""
    if name not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {name!r}; valid: auto, {', '.join(BACKENDS)}")
    module_name, _, attribute = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SandboxUnavailable(f"{name}: cannot import {module_name}: {exc}", backend=name) from exc
    return getattr(module, attribute)


async def _open_one(name: str, config: SandboxConfig) -> Sandbox:
    sandbox: Sandbox = load_backend(name)(config)
    await sandbox.start()
    return sandbox


async def open_sandbox(backend: str, config: SandboxConfig) -> Sandbox:
    """A started sandbox of the named backend (or the first that works for "auto")."""
    if backend != "auto":
        return await _open_one(backend, config)
    reasons = []
    for name in AUTO_ORDER:
        try:
            return await _open_one(name, config)
        except SandboxUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    raise SandboxUnavailable("no sandbox backend can run here; " + "; ".join(reasons))
