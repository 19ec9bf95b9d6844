"""Code execution backends: docker (warm pool + resident runner) and bubblewrap."""

from sandboxes.base import (
    ExecResult,
    Job,
    JobResult,
    Limits,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxOverloaded,
    SandboxUnavailable,
)

__all__ = [
    "ExecResult",
    "Job",
    "JobResult",
    "Limits",
    "Run",
    "RunStatus",
    "Sandbox",
    "SandboxError",
    "SandboxOverloaded",
    "SandboxUnavailable",
]
