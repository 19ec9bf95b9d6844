"""The one protocol every sandbox backend speaks.

Exceptions::

    SandboxError                 our sandbox broke (never "the program failed": that is a RunStatus)
    ├── SandboxUnavailable       no backend can run here (no Docker engine, no bwrap, image missing)
    ├── SandboxOverloaded        the bounded queue is full; retry later
    ├── SandboxJobFailed         the instance failed while it held the job (its runner died, hung or answered
    │                            garbage): retried once on a fresh instance; if it happens again, the program
    │                            is the likely cause
    └── SandboxLost              the instance was taken away under the job by what runs it (the Docker engine
                                 restarted or went away, its container was removed or killed from outside):
                                 never the program's doing, so never held against it

A job is one program in one language: it is compiled once (for compiled languages), then every run of the
job executes the compiled program with its own stdin, in a fresh work dir, as a fresh process group, under the
job's limits. The result of each run says what happened to the process; judging its output (AC/WA) is the
checker's business, not the sandbox's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

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


class RunStatus:
    OK: Final = "OK"  # exited 0 within limits (the checker decides AC or WA)
    TLE: Final = "TLE"
    MLE: Final = "MLE"
    OLE: Final = "OLE"
    RE: Final = "RE"  # non-zero exit or killed by a signal (see exit_code / signal)
    CE: Final = "CE"  # compilation failed (only in JobResult.compile)
    SANDBOX_ERROR: Final = "SANDBOX_ERROR"


class SandboxError(Exception):
    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class SandboxUnavailable(SandboxError):
    pass


class SandboxJobFailed(SandboxError):
    pass


class SandboxLost(SandboxError):
    pass


class SandboxOverloaded(SandboxError):
    def __init__(self, message: str, *, backend: str | None = None, retry_after_s: float = 1.0) -> None:
        super().__init__(message, backend=backend)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0  # wall clock per run
    compile_timeout_s: float = 30.0
    memory_mb: int = 512  # address-space / cgroup cap per run
    output_bytes: int = 1 << 20  # cap on each of stdout and stderr; more -> OLE
    file_size_mb: int = 64  # RLIMIT_FSIZE; the work dir tmpfs is capped too
    max_processes: int = 64


@dataclass(frozen=True)
class Harness:
    """A judge process beside the program: another uid, a dir of its own, the only holder of the verdict pipe."""

    argv: tuple[str, ...]  # may hold {memory_mb}, like a language's run command
    files: Mapping[str, str] = field(default_factory=dict)  # its dir's files (its source, the test case)


@dataclass(frozen=True)
class Run:
    stdin: str = ""
    argv: tuple[str, ...] = ()  # extra arguments after the language's run command (or ``command``)
    files: Mapping[str, str] = field(default_factory=dict)  # extra files for this run only, beside the program
    command: tuple[str, ...] | None = None  # replaces the language's run command (may hold {memory_mb})
    report: bool = False  # the program gets a pipe of its own to report a value on (``ExecResult.report``)
    harness: Harness | None = None  # a judge process that drives the program and reports the verdict
    # files of the run's work dir to send back after it (plain relative names; see ``ExecResult.files``)
    fetch: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    language: str  # a name or alias from sandboxes.languages.LANGUAGES
    source: str
    runs: Sequence[Run]
    limits: Limits = Limits()
    files: Mapping[str, str] = field(default_factory=dict)  # extra files beside the source, for every run
    stop_on_first_failure: bool = False  # skip the remaining runs after the first non-OK run


@dataclass(frozen=True)
class ExecResult:
    status: str  # a RunStatus
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""  # decoded with errors="replace", capped at limits.output_bytes
    stderr: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_memory_kb: int = 0
    message: str = ""  # human note from the sandbox (why SANDBOX_ERROR, which limit was hit)
    report: str | None = None  # what the report pipe carried (Run.report, or the harness's verdict)
    harness_exit: int | None = None  # the harness's exit code (None: killed by a signal, or no harness)
    harness_stderr: str = ""
    # Run.fetch's files, name -> base64 of their bytes; absent: missing, not a regular file, a symlink on the way,
    # a name that is not plain, or over the job's result budget
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobResult:
    compile: ExecResult | None  # None for interpreted languages
    runs: Sequence[ExecResult]  # one per Job.runs, in order; skipped runs are absent at the end


@runtime_checkable
class Sandbox(Protocol):
    """A started backend. ``size`` is how many jobs it runs at once (callers bound their concurrency by it);
    ``languages`` are the ones its toolchains can run (empty before ``start``); ``stats()`` is for metrics and
    health pages only: nothing may take decisions from its keys."""

    name: str

    @property
    def size(self) -> int: ...

    @property
    def languages(self) -> tuple[str, ...]: ...

    def stats(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def run(self, job: Job) -> JobResult:
        """Run a job; raise SandboxError only when the sandbox itself failed."""
        ...

    async def close(self) -> None: ...
