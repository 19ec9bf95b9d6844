"""A warm pool of sandbox instances, each holding one resident runner (``sandboxes/runner.py``); both backends.

A backend supplies ``start_channel``: an async factory that starts one instance (a bwrap process, a container)
and returns a ``Channel`` over the runner's stdin / stdout. The pool owns everything else: it waits for the
runner's ready line, hands jobs to free slots through a bounded queue, resolves the language and encodes the
job (see the runner's docstring for the JSON), enforces a host-side deadline, and recycles an instance
(destroy, then start a fresh one in the background) after ``max_jobs_per_slot`` jobs, after a run breached a
limit (TLE / MLE / OLE), after the runner reported ``dirty`` (something escaped a run), and after any failure.

Errors: a runner that hangs past the deadline, dies, or answers garbage (an unreadable or oversized result)
raises ``SandboxJobFailed`` for that job (its slot is replaced; the caller may retry the job once on a fresh
one); a pool that is closed or dead before the job reached a runner raises a plain ``SandboxError``;
``SandboxOverloaded`` when more than ``queue_limit`` jobs already wait; an unknown or unavailable language
raises ``sandboxes.languages.UnknownLanguage`` (a ValueError: the caller's mistake).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from sandboxes.base import (
    ExecResult,
    Job,
    JobResult,
    Run,
    RunStatus,
    SandboxError,
    SandboxJobFailed,
    SandboxOverloaded,
    SandboxUnavailable,
)
from sandboxes.config import SandboxConfig
from sandboxes.languages import LanguageSpec, resolve_language

__all__ = ["Channel", "SlotPool", "encode_job", "decode_result", "job_deadline"]

logger = logging.getLogger(__name__)

BREACHES = frozenset({RunStatus.TLE, RunStatus.MLE, RunStatus.OLE})
COMPILE_OUTPUT_BYTES = 4 << 20
COMPILE_STACK_MB = 64  # compilers are threaded (go, rustc, javac): glibc gives each thread RLIMIT_STACK
COMPILE_PROCESSES = 256  # go build and rustc run many threads; a compiler is not the hostile party here
RECYCLE_ATTEMPTS = 5


class Channel(Protocol):
    """One resident runner in one sandbox instance."""

    async def write_line(self, data: bytes) -> None: ...

    async def read_line(self) -> bytes:
        """One line from the runner, newline included; raise EOFError when the runner is gone."""
        ...

    async def destroy(self) -> None:
        """Kill the runner and everything in its sandbox; idempotent."""
        ...


def _limits(
    timeout_s: float, memory_mb: int, address_mb: int, output: int, fsize: int, procs: int, stack_mb: int | None
) -> dict[str, Any]:
    return {
        "stack_mb": stack_mb if stack_mb is not None else min(memory_mb, 1024),
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "address_space_mb": address_mb,
        "output_bytes": output,
        "file_size_mb": fsize,
        "max_processes": procs,
    }


def _compile_section(job: Job, spec: LanguageSpec, config: SandboxConfig) -> dict[str, Any] | None:
    argv = spec.compile_argv(job.limits.memory_mb)
    if argv is None:
        return None
    memory = config.compile_memory_mb
    limits = job.limits
    procs = max(limits.max_processes, spec.min_processes, COMPILE_PROCESSES)
    output = max(limits.output_bytes, COMPILE_OUTPUT_BYTES)
    fsize = max(limits.file_size_mb, 256)
    address = memory + spec.compile_headroom_mb
    return {
        "argv": argv,
        "limits": _limits(limits.compile_timeout_s, memory, address, output, fsize, procs, spec.stack_mb),
    }


def _run_section(job: Job, spec: LanguageSpec) -> dict[str, Any]:
    limits = job.limits
    address = limits.memory_mb + spec.address_space_headroom_mb
    procs = max(limits.max_processes, spec.min_processes)
    run_limits = _limits(
        limits.timeout_s, limits.memory_mb, address, limits.output_bytes, limits.file_size_mb, procs, spec.stack_mb
    )
    return {"argv": spec.run_argv(limits.memory_mb), "limits": run_limits}


def _run_entry(run: Run, memory_mb: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"stdin": run.stdin, "argv": list(run.argv), "files": dict(run.files)}
    if run.command is not None:
        entry["command"] = [arg.format(memory_mb=memory_mb) for arg in run.command]
    if run.report:
        entry["report"] = True
    if run.harness is not None:
        argv = [arg.format(memory_mb=memory_mb) for arg in run.harness.argv]
        entry["harness"] = {"argv": argv, "files": dict(run.harness.files)}
    return entry


def encode_job(job: Job, spec: LanguageSpec, config: SandboxConfig) -> bytes:
    """The runner's JSON line for a job (newline included)."""
    payload = {
        "source_file": spec.source_file,
        "source": job.source,
        "files": dict(job.files),
        "env": spec.env,
        "compile": _compile_section(job, spec, config),
        "run": _run_section(job, spec),
        "runs": [_run_entry(run, job.limits.memory_mb) for run in job.runs],
        "stop_on_first_failure": job.stop_on_first_failure,
        "result_bytes": config.max_result_mb << 20,
    }
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def _text(encoded: Any) -> str:
    """A stream the runner sent base64-encoded, as text (invalid UTF-8 replaced)."""
    return base64.b64decode(encoded or "", validate=True).decode("utf-8", "replace")


def _exec_result(raw: dict[str, Any]) -> ExecResult:
    harness = raw.get("harness") or {}
    return ExecResult(
        status=str(raw["status"]),
        exit_code=raw.get("exit_code"),
        signal=raw.get("signal"),
        stdout=_text(raw.get("stdout")),
        stderr=_text(raw.get("stderr")),
        wall_s=float(raw.get("wall_s", 0.0)),
        cpu_s=float(raw.get("cpu_s", 0.0)),
        peak_memory_kb=int(raw.get("peak_memory_kb", 0)),
        message=str(raw.get("message", "")),
        report=None if raw.get("report") is None else _text(raw["report"]),
        harness_exit=harness.get("exit_code"),
        harness_stderr=_text(harness.get("stderr")),
    )


def decode_result(line: bytes) -> tuple[JobResult, bool]:
    """(the job's result, whether the instance is dirty). SandboxError when the runner refused the job (it was
    given wrong, or asks for what this sandbox cannot do: no retry helps); SandboxJobFailed when its answer is
    unreadable."""
    try:
        raw = json.loads(line)
        if raw.get("error"):
            raise SandboxError(f"runner failed on the job: {raw['error']}")
        compiled = None if raw["compile"] is None else _exec_result(raw["compile"])
        return JobResult(compile=compiled, runs=[_exec_result(run) for run in raw["runs"]]), bool(raw["dirty"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise SandboxJobFailed(f"unreadable runner result: {exc}") from exc


def job_deadline(job: Job, spec: LanguageSpec, config: SandboxConfig) -> float:
    """Seconds the host waits for a job's result before it declares the runner hung."""
    compile_s = job.limits.compile_timeout_s if spec.compile is not None else 0.0
    runs_s = len(job.runs) * (job.limits.timeout_s + config.per_run_overhead_s)
    return compile_s + runs_s + config.deadline_slack_s


def _breached(result: JobResult) -> bool:
    return any(run.status in BREACHES for run in result.runs)


class _Slot:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.jobs = 0


class SlotPool:
    """``config.pool_size`` warm instances; ``run`` sends one job to a free one."""

    def __init__(
        self,
        backend: str,
        start_channel: Callable[[], Awaitable[Channel]],
        config: SandboxConfig,
        *,
        languages: Iterable[str] | None = None,
    ) -> None:
        self.backend = backend
        self._start_channel = start_channel
        self._config = config
        self._languages = None if languages is None else tuple(languages)
        self._idle: asyncio.Queue[_Slot | None] = asyncio.Queue()
        self._all: set[_Slot] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = 0
        self._busy = 0
        self._live = 0
        self._closed = False
        self._dead_reason: str | None = None
        self._counts: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()

    @property
    def languages(self) -> tuple[str, ...] | None:
        return self._languages

    async def start(self) -> None:
        """Start every instance; SandboxUnavailable (nothing left running) if any cannot start."""
        results = await asyncio.gather(
            *(self._open_channel() for _ in range(self._config.pool_size)), return_exceptions=True
        )
        channels = [item for item in results if not isinstance(item, BaseException)]
        failures = [item for item in results if isinstance(item, BaseException)]
        if failures:
            await asyncio.gather(*(channel.destroy() for channel in channels), return_exceptions=True)
            raise SandboxUnavailable(f"{self.backend}: {failures[0]}", backend=self.backend) from failures[0]
        for channel in channels:
            self._add_slot(channel)

    def _add_slot(self, channel: Channel) -> None:
        slot = _Slot(channel)
        self._all.add(slot)
        self._live += 1
        self._idle.put_nowait(slot)

    async def _open_channel(self) -> Channel:
        channel = await asyncio.wait_for(self._start_channel(), self._config.start_timeout_s)
        try:
            line = await asyncio.wait_for(channel.read_line(), self._config.start_timeout_s)
            hello = json.loads(line)
            if not isinstance(hello, dict) or hello.get("ready") is not True:
                raise SandboxError(f"the runner did not say ready: {line[:200]!r}", backend=self.backend)
        except BaseException:
            await channel.destroy()
            raise
        return channel

    async def run(self, job: Job) -> JobResult:
        spec = resolve_language(job.language, self._languages)
        payload = encode_job(job, spec, self._config)
        slot = await self._acquire()
        recycle = True
        self._busy += 1
        try:
            result, dirty = await self._exchange(slot, payload, job_deadline(job, spec, self._config))
            slot.jobs += 1
            self._record(result)
            recycle = dirty or _breached(result) or slot.jobs >= self._config.max_jobs_per_slot
            return result
        finally:
            self._busy -= 1
            self._release(slot, recycle)

    async def _acquire(self) -> _Slot:
        if self._closed:
            raise SandboxError("the sandbox pool is closed", backend=self.backend)
        if self._dead_reason is not None:
            raise SandboxError(self._dead_reason, backend=self.backend)
        if self._idle.empty() and self._waiting >= self._config.queue_limit:
            raise SandboxOverloaded(
                f"{self._waiting} jobs already wait for a {self.backend} sandbox",
                backend=self.backend,
                retry_after_s=self._config.retry_after_s,
            )
        self._waiting += 1
        try:
            slot = await self._idle.get()
        finally:
            self._waiting -= 1
        if slot is None:  # the pool died or closed while we waited: pass the news on
            self._idle.put_nowait(None)
            raise SandboxError(self._dead_reason or "the sandbox pool is closed", backend=self.backend)
        return slot

    async def _exchange(self, slot: _Slot, payload: bytes, deadline_s: float) -> tuple[JobResult, bool]:
        try:
            async with asyncio.timeout(deadline_s):
                await slot.channel.write_line(payload)
                line = await slot.channel.read_line()
        except TimeoutError as exc:
            self._counts["sandbox_errors"] += 1
            message = f"the runner gave no result within {deadline_s:.1f}s"
            raise SandboxJobFailed(message, backend=self.backend) from exc
        except (EOFError, OSError) as exc:
            self._counts["sandbox_errors"] += 1
            raise SandboxJobFailed(f"the runner is gone: {exc}", backend=self.backend) from exc
        try:
            return decode_result(line)
        except SandboxJobFailed as exc:
            self._counts["sandbox_errors"] += 1
            exc.backend = self.backend
            raise

    def _record(self, result: JobResult) -> None:
        self._counts["jobs"] += 1
        if result.compile is not None:
            self._statuses[f"compile_{result.compile.status}"] += 1
        self._statuses.update(run.status for run in result.runs)

    def _release(self, slot: _Slot, recycle: bool) -> None:
        if self._closed:
            self._spawn(self._destroy(slot))
        elif recycle:
            self._counts["recycles"] += 1
            self._spawn(self._recycle(slot))
        else:
            self._idle.put_nowait(slot)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _destroy(self, slot: _Slot) -> None:
        self._all.discard(slot)
        self._live -= 1
        try:
            await slot.channel.destroy()
        except Exception as exc:  # a failed teardown must not stop the replacement
            logger.warning("%s: destroying a sandbox failed: %s", self.backend, exc)

    async def _recycle(self, slot: _Slot) -> None:
        await self._destroy(slot)
        delay = 0.2
        for attempt in range(RECYCLE_ATTEMPTS):
            if self._closed:
                return
            try:
                channel = await self._open_channel()
            except Exception as exc:  # whatever kept it from starting: retry, then give the slot up
                logger.warning("%s: starting a sandbox failed (attempt %d): %s", self.backend, attempt + 1, exc)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if self._closed:
                await channel.destroy()
                return
            self._add_slot(channel)
            return
        self._on_slot_lost()

    def _on_slot_lost(self) -> None:
        if self._live == 0 and not self._closed:
            self._dead_reason = f"{self.backend}: every sandbox instance failed to restart"
            self._idle.put_nowait(None)

    async def close(self) -> None:
        """Destroy every instance, idle or busy; waiting jobs get SandboxError."""
        self._closed = True
        self._idle.put_nowait(None)
        if self._tasks:  # recycles see _closed and stop; a start in flight is bounded by start_timeout_s
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._config.start_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        slots = list(self._all)
        self._all.clear()
        await asyncio.gather(*(slot.channel.destroy() for slot in slots), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "size": self._config.pool_size,
            "live": self._live,
            "idle": max(0, self._idle.qsize() - (self._closed or self._dead_reason is not None)),
            "busy": self._busy,
            "queue_depth": self._waiting,
            "jobs": self._counts["jobs"],
            "recycles": self._counts["recycles"],
            "sandbox_errors": self._counts["sandbox_errors"],
            "runs_by_status": dict(self._statuses),
        }
