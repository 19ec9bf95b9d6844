"""Code execution backends: docker (warm pool + resident runner) and bubblewrap."""

from sandboxes.base import (
    ExecResult,
    Harness,
    Job,
    JobResult,
    Limits,
    Run,
    RunStatus,
    Sandbox,
    SandboxError,
    SandboxJobFailed,
    SandboxLost,
    SandboxOverloaded,
    SandboxUnavailable,
)

__all__ = [
    "ExecResult",
    "Harness",
    "Job",
    "JobResult",
    "Limits",
    "Run",
    "RunStatus",
    "Sandbox",
    "SandboxError",
    "SandboxJobFailed",
    "SandboxLost",
    "SandboxOverloaded",
    "SandboxUnavailable",
]
