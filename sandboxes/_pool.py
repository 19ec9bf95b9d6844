"""A warm pool of sandbox instances, each holding one resident runner (``sandboxes/runner.py``); both backends.

A backend supplies ``start_channel``: an async factory that starts one instance (a bwrap process, a container)
and returns a ``Channel`` over the runner's stdin / stdout. The pool owns everything else: it waits for the
runner's ready line, hands jobs to free slots through a bounded queue, resolves the language and encodes the
job (see the runner's docstring for the JSON), enforces a host-side deadline, and recycles an instance
(destroy, then start a fresh one in the background) after ``max_jobs_per_slot`` jobs, after a run breached a
limit (TLE / MLE / OLE), after the runner reported ``dirty`` (something escaped a run), and after any failure.

Compile cache: ``config.compile_cache_mb`` (0 disables) bounds an LRU of compiled builds, keyed by
``compile_key``, a sha256 over everything that changes a build (the language, its compile command and limits,
its environment, the job's memory cap, the source and the job's files). Jobs with one key share one compile:
the first (the leader) compiles and asks its runner to send the build back (``keep_build``); jobs with the same
key that arrive meanwhile wait for it instead of compiling in parallel, then take the artifact to whichever slot
is free (``prebuilt``: the runner installs it as the build dir and skips the compiler). Their ``compile`` is
the leader's ExecResult with ``CACHED_MARK`` added to its message. A compile error that the compiler reached by
itself is kept too (its jobs never reach a sandbox); a compile that ran out of time, memory or output, was
killed, failed in the sandbox, came back dirty, or whose slot failed, is never kept: the jobs that waited for it
compile on their own. An artifact larger than ``min(ARTIFACT_MAX_BYTES, the cache, max_result_mb)`` is not kept.
Interpreted languages have no compile step and no key; JavaScript's ``node --check`` step is kept like a
compile (its "build" is the source), so a repeated script skips that extra process.

Errors: a runner that hangs past the deadline, dies, or answers garbage (an unreadable or oversized result)
raises ``SandboxJobFailed`` for that job (its slot is replaced; the caller may retry the job once on a fresh
one); an instance its backend says was taken away from outside (``SandboxLost``: a restarted Docker engine)
raises that, and is replaced too; a pool that is closed or down before the job reached a runner raises a plain
``SandboxError``;
``SandboxOverloaded`` when more than ``queue_limit`` jobs already wait; an unknown or unavailable language
raises ``sandboxes.languages.UnknownLanguage`` (a ValueError: the caller's mistake).

Recovery: a slot whose instance died while idle (``Channel.alive``) is replaced instead of being given a job. A
slot that fails to start is tried again, backing off to every ``RESTART_MAX_DELAY_S``, for as long as the pool is
open; after ``RECYCLE_ATTEMPTS`` failures over at least ``RESTART_GRACE_S`` (a restarting engine is away for a few
seconds: the jobs waiting meanwhile run late rather than fail) it counts as lost, and when no live slot is left
the pool is down: jobs fail fast with ``SandboxError`` until a start succeeds again (the Docker engine is back),
which brings the pool back up without a restart of the service.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol

from sandboxes.base import (
    ExecResult,
    Job,
    JobResult,
    Run,
    RunStatus,
    SandboxError,
    SandboxJobFailed,
    SandboxLost,
    SandboxOverloaded,
    SandboxUnavailable,
)
from sandboxes.config import SandboxConfig
from sandboxes.languages import LanguageSpec, resolve_language

__all__ = [
    "RUNNER_PROTOCOL",
    "CachedBuild",
    "Channel",
    "CompileCache",
    "SlotPool",
    "compile_key",
    "decode_result",
    "encode_job",
    "job_deadline",
]

logger = logging.getLogger(__name__)

BREACHES = frozenset({RunStatus.TLE, RunStatus.MLE, RunStatus.OLE})
COMPILE_OUTPUT_BYTES = 4 << 20
COMPILE_STACK_MB = 64  # compilers are threaded (go, rustc, javac): glibc gives each thread RLIMIT_STACK
COMPILE_PROCESSES = 256  # go build and rustc run many threads; a compiler is not the hostile party here
RECYCLE_ATTEMPTS = 5  # failed starts before a slot counts as lost (and the pool, with no live slot, is down)
# ... and for at least this long: a restarting Docker engine is away for a few seconds, and the jobs that wait
# for its slots meanwhile had better run late than fail
RESTART_GRACE_S = 10.0
RESTART_FIRST_DELAY_S = 0.2
RESTART_MAX_DELAY_S = 5.0  # a lost slot is tried this often: a pool is back this soon after its engine
RUNNER_PROTOCOL = 3  # sandboxes/runner.py's PROTOCOL: a runner that speaks another one is refused at start
ARTIFACT_MAX_BYTES = 64 << 20  # a build larger than this (or than the cache) is not kept
ARTIFACT_MAX_FILES = 256
ENTRY_OVERHEAD_BYTES = 512  # what a cache entry costs besides its artifact and its compile output
CACHED_MARK = "compiled once, cached"


class Channel(Protocol):
    """One resident runner in one sandbox instance."""

    async def write_line(self, data: bytes) -> None: ...

    async def read_line(self) -> bytes:
        """One line from the runner, newline included; raise EOFError when the runner is gone."""
        ...

    async def destroy(self) -> None:
        """Kill the runner and everything in its sandbox; idempotent."""
        ...

    def alive(self) -> bool:
        """False when the runner is known to be gone (its stream ended): a job sent to it could only fail."""
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
    if run.fetch:
        entry["fetch"] = list(run.fetch)
    return entry


def encode_job(
    job: Job,
    spec: LanguageSpec,
    config: SandboxConfig,
    *,
    keep_build: int | None = None,
    prebuilt: dict[str, Any] | None = None,
) -> bytes:
    """The runner's JSON line for a job (newline included). ``keep_build``: ask for the build back, up to that
    many bytes; ``prebuilt``: an artifact to install instead of writing the source and compiling it."""
    payload: dict[str, Any] = {
        "source_file": spec.source_file,
        "source": job.source if prebuilt is None else "",
        "files": dict(job.files) if prebuilt is None else {},
        "env": spec.env,
        "compile": _compile_section(job, spec, config) if prebuilt is None else None,
        "run": _run_section(job, spec),
        "runs": [_run_entry(run, job.limits.memory_mb) for run in job.runs],
        "stop_on_first_failure": job.stop_on_first_failure,
        "result_bytes": config.max_result_mb << 20,
    }
    if keep_build is not None:
        payload["keep_build"] = {"max_bytes": keep_build, "max_files": ARTIFACT_MAX_FILES}
    if prebuilt is not None:
        payload["prebuilt"] = {"files": prebuilt}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def compile_key(job: Job, spec: LanguageSpec, config: SandboxConfig) -> str | None:
    """The compile cache's key of a job: a sha256 over everything that changes its build; None when the
    language compiles nothing."""
    section = _compile_section(job, spec, config)
    if section is None:
        return None
    canonical = {
        "language": spec.name,
        "source_file": spec.source_file,
        "compile": section,  # the command and its limits (time, memory, output, processes)
        "env": spec.env,
        "memory_mb": job.limits.memory_mb,
        "compile_timeout_s": job.limits.compile_timeout_s,
        "source": job.source,
        "files": sorted(job.files.items()),
    }
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclasses.dataclass(frozen=True)
class CachedBuild:
    """A kept compile: its result and, when it succeeded, the build's files (the runner's artifact)."""

    compile: ExecResult
    files: dict[str, Any] | None  # None: a compile error, nothing to run
    size: int  # bytes it holds, as the cache counts them


class CompileCache:
    """Kept builds by key, least recently used dropped first, within ``capacity`` bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self.evictions = 0
        self._entries: OrderedDict[str, CachedBuild] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedBuild | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CachedBuild) -> bool:
        """Keep an entry (dropping the least recently used ones to make room); False when it alone is too big."""
        if entry.size > self.capacity:
            return False
        self.discard(key)
        while self._entries and self.size + entry.size > self.capacity:
            _, dropped = self._entries.popitem(last=False)
            self.size -= dropped.size
            self.evictions += 1
        self._entries[key] = entry
        self.size += entry.size
        return True

    def discard(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size


def _artifact(raw: Any, max_bytes: int) -> tuple[dict[str, Any], int]:
    """A runner's artifact line checked for shape (the runner checks names again when it installs one):
    (the files, the bytes they hold encoded). ValueError when it is not one."""
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict) or len(files) > ARTIFACT_MAX_FILES:
        raise ValueError("not an artifact")
    size = 0
    for name, entry in files.items():
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, str) or not isinstance(entry.get("x"), bool) or not name:
            raise ValueError(f"a bad artifact entry {name!r}")
        size += len(name) + len(data)
    if size > max_bytes * 4 // 3 + ARTIFACT_MAX_FILES * 1100:
        raise ValueError("an artifact larger than asked for")
    return files, size


def _marked(compiled: ExecResult) -> ExecResult:
    message = f"{compiled.message} ({CACHED_MARK})" if compiled.message else CACHED_MARK
    return dataclasses.replace(compiled, message=message)


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
        files=_fetched(raw.get("files")),
    )


def _fetched(files: Any) -> dict[str, str]:
    """A run's fetched files as the runner sent them (name -> base64), checked for shape and encoding."""
    if files is None:
        return {}
    if not isinstance(files, dict):
        raise TypeError("files is not an object")
    for name, data in files.items():
        if not isinstance(data, str):
            raise TypeError(f"fetched file {name!r} is not base64 text"[:300])
        base64.b64decode(data, validate=True)
    return files


class _Refused(SandboxError):
    """The runner answered a job with an error: it was given wrong (or cannot do what it asks)."""


def decode_result(line: bytes) -> tuple[JobResult, bool]:
    """(the job's result, whether the instance is dirty). SandboxError when the runner refused the job (it was
    given wrong, or asks for what this sandbox cannot do: no retry helps); SandboxJobFailed when its answer is
    unreadable."""
    result, dirty, _ = _decode(line)
    return result, dirty


def _decode(line: bytes) -> tuple[JobResult, bool, dict[str, Any] | None]:
    """decode_result, plus the result's ``build`` (what became of a build the host asked to keep)."""
    try:
        raw = json.loads(line)
        if raw.get("error"):
            raise _Refused(f"runner failed on the job: {raw['error']}")
        compiled = None if raw["compile"] is None else _exec_result(raw["compile"])
        build = raw.get("build")
        if build is not None and not isinstance(build, dict):
            raise TypeError("build is not an object")
        result = JobResult(compile=compiled, runs=[_exec_result(run) for run in raw["runs"]])
        return result, bool(raw["dirty"]), build
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


class _Flight:
    """One compile that jobs with its key wait for: ``entry`` is set when it was kept, ``answered`` when the
    runner answered the job at all (False: its slot failed, or its caller went away; another job leads then)."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.entry: CachedBuild | None = None
        self.answered = False


@dataclasses.dataclass
class _Reply:
    result: JobResult
    dirty: bool
    build: dict[str, Any] | None  # the result's "build" (a leader's)
    files: dict[str, Any] | None  # the artifact that followed it
    files_size: int


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
        self._closing = asyncio.Event()  # set by close(); wakes the slots that wait to try another start
        self._dead_reason: str | None = None
        self._counts: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        cache_bytes = config.compile_cache_mb << 20
        self._cache = CompileCache(cache_bytes)
        self._artifact_bytes = min(ARTIFACT_MAX_BYTES, cache_bytes, config.max_result_mb << 20)
        self._flights: dict[str, _Flight] = {}

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
        if self._dead_reason is not None:
            self._revive()
        slot = _Slot(channel)
        self._all.add(slot)
        self._live += 1
        self._idle.put_nowait(slot)

    def _revive(self) -> None:
        """A slot started again in a pool that was down: it is up, and the queue loses its 'down' marker."""
        logger.warning("%s: a sandbox started again; the pool is back up", self.backend)
        self._dead_reason = None
        kept = [item for item in (self._idle.get_nowait() for _ in range(self._idle.qsize())) if item is not None]
        for item in kept:
            self._idle.put_nowait(item)

    async def _open_channel(self) -> Channel:
        channel = await asyncio.wait_for(self._start_channel(), self._config.start_timeout_s)
        try:
            line = await asyncio.wait_for(channel.read_line(), self._config.start_timeout_s)
            hello = json.loads(line)
            if not isinstance(hello, dict) or hello.get("ready") is not True:
                raise SandboxError(f"the runner did not say ready: {line[:200]!r}", backend=self.backend)
            if hello.get("protocol") != RUNNER_PROTOCOL:
                message = f"the runner speaks protocol {hello.get('protocol')!r}, not {RUNNER_PROTOCOL}"
                raise SandboxError(message, backend=self.backend)
        except BaseException:
            await channel.destroy()
            raise
        return channel

    async def run(self, job: Job) -> JobResult:
        spec = resolve_language(job.language, self._languages)
        key = compile_key(job, spec, self._config) if self._artifact_bytes > 0 else None
        if key is None:
            return (await self._send(job, spec, encode_job(job, spec, self._config))).result
        role, found = await self._find(key)
        if isinstance(found, CachedBuild):
            try:
                return await self._run_cached(job, spec, found)
            except _Refused as exc:  # the runner refused the artifact: drop it, and compile this job afresh
                if self._cache.get(key) is found:
                    self._cache.discard(key)
                logger.warning("%s: a cached build was refused (%s); compiling afresh", self.backend, exc)
                return (await self._send(job, spec, encode_job(job, spec, self._config))).result
        if role == "own":  # the compile we waited for was not kept: compile on our own
            return (await self._send(job, spec, encode_job(job, spec, self._config))).result
        assert isinstance(found, _Flight)
        return await self._lead(job, spec, key, found)

    async def _find(self, key: str) -> tuple[Literal["hit", "lead", "own"], CachedBuild | _Flight | None]:
        """A kept build for the key (after waiting for a compile in flight), the flight this job now leads, or
        neither (the compile it waited for was answered but not kept: this job compiles on its own)."""
        while True:
            entry = self._cache.get(key)
            if entry is not None:
                break
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                return "lead", flight
            self._admit()  # a job waiting for a compile is a queued job: it counts against the queue limit
            self._counts["compile_cache_waits"] += 1
            self._waiting += 1
            try:
                await flight.done.wait()
            finally:
                self._waiting -= 1
            entry = flight.entry
            if entry is not None:
                break
            if flight.answered:
                return "own", None
        self._counts["compile_cache_hits"] += 1
        return "hit", entry

    async def _lead(self, job: Job, spec: LanguageSpec, key: str, flight: _Flight) -> JobResult:
        """Compile, and keep what the runner sent back; the jobs waiting on the flight go on either way."""
        self._counts["compile_cache_misses"] += 1
        try:
            try:
                payload = encode_job(job, spec, self._config, keep_build=self._artifact_bytes)
                reply = await self._send(job, spec, payload)
            except _Refused:  # the job itself is wrong (a bad file name): each job with its key gets the same
                flight.answered = True
                raise
            flight.answered = True
            entry = self._keepable(reply)
            if entry is not None and self._cache.put(key, entry):
                flight.entry = entry
            return reply.result
        finally:
            del self._flights[key]
            flight.done.set()

    def _keepable(self, reply: _Reply) -> CachedBuild | None:
        compiled, build = reply.result.compile, reply.build
        if compiled is None or build is None or reply.dirty or build.get("cacheable") is not True:
            return None
        if compiled.status == RunStatus.CE and not build.get("follows"):
            size = ENTRY_OVERHEAD_BYTES + len(compiled.stdout) + len(compiled.stderr) + len(compiled.message)
            return CachedBuild(compiled, None, size)
        if compiled.status == RunStatus.OK and reply.files is not None:
            size = ENTRY_OVERHEAD_BYTES + len(compiled.stdout) + len(compiled.stderr) + reply.files_size
            return CachedBuild(compiled, reply.files, size)
        return None

    async def _run_cached(self, job: Job, spec: LanguageSpec, entry: CachedBuild) -> JobResult:
        compiled = _marked(entry.compile)
        if entry.files is None:  # a kept compile error: nothing runs, no sandbox needed
            if self._closed:
                raise SandboxError("the sandbox pool is closed", backend=self.backend)
            self._counts["jobs"] += 1
            return JobResult(compile=compiled, runs=[])
        reply = await self._send(job, spec, encode_job(job, spec, self._config, prebuilt=entry.files))
        return JobResult(compile=compiled, runs=reply.result.runs)

    async def _send(self, job: Job, spec: LanguageSpec, payload: bytes) -> _Reply:
        slot = await self._acquire()
        recycle = True
        self._busy += 1
        try:
            reply = await self._exchange(slot, payload, job_deadline(job, spec, self._config))
            slot.jobs += 1
            self._record(reply.result)
            recycle = reply.dirty or _breached(reply.result) or slot.jobs >= self._config.max_jobs_per_slot
            return reply
        finally:
            self._busy -= 1
            self._release(slot, recycle)

    @property
    def _closed(self) -> bool:
        return self._closing.is_set()

    def _admit(self) -> None:
        """Raise unless a job may wait here: the pool is open and alive, and the queue has room."""
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

    async def _acquire(self) -> _Slot:
        self._admit()
        self._waiting += 1
        try:
            while True:
                slot = await self._idle.get()
                if slot is None:  # the pool went down or closed while we waited: pass the news on
                    self._idle.put_nowait(None)
                    raise SandboxError(self._dead_reason or "the sandbox pool is closed", backend=self.backend)
                if slot.channel.alive():
                    return slot
                # it died while idle (an engine that restarted): replace it, and wait for another
                self._counts["slots_died_idle"] += 1
                self._spawn(self._recycle(slot))
        finally:
            self._waiting -= 1

    async def _exchange(self, slot: _Slot, payload: bytes, deadline_s: float) -> _Reply:
        try:
            async with asyncio.timeout(deadline_s):
                await slot.channel.write_line(payload)
                line = await slot.channel.read_line()
                result, dirty, build = _decode(line)
                files, size = None, 0
                if build is not None and build.get("follows") is True:
                    files, size = _artifact(json.loads(await slot.channel.read_line()), self._artifact_bytes)
        except TimeoutError as exc:
            self._counts["sandbox_errors"] += 1
            message = f"the runner gave no result within {deadline_s:.1f}s"
            raise SandboxJobFailed(message, backend=self.backend) from exc
        except (EOFError, OSError) as exc:
            self._counts["sandbox_errors"] += 1
            raise SandboxJobFailed(f"the runner is gone: {exc}", backend=self.backend) from exc
        except (SandboxJobFailed, SandboxLost) as exc:
            self._counts["sandbox_errors"] += 1
            exc.backend = self.backend
            raise
        except SandboxError as exc:
            exc.backend = self.backend
            raise
        except (ValueError, AttributeError) as exc:  # the artifact line
            self._counts["sandbox_errors"] += 1
            raise SandboxJobFailed(f"unreadable runner artifact: {exc}", backend=self.backend) from exc
        return _Reply(result, dirty, build, files, size)

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
        await self._restart()

    async def _restart(self) -> None:
        """Start a slot in place of a destroyed one, trying again (backing off) until one starts or the pool
        closes; after RECYCLE_ATTEMPTS failures over RESTART_GRACE_S the slot counts as lost, and with none live
        the pool is down."""
        delay = RESTART_FIRST_DELAY_S
        attempt = 0
        began = asyncio.get_running_loop().time()
        lost = False
        while not self._closed:
            try:
                channel = await self._open_channel()
            except Exception as exc:  # whatever kept it from starting: try again later
                attempt += 1
                if attempt <= RECYCLE_ATTEMPTS or attempt & (attempt - 1) == 0:  # then less and less often
                    logger.warning("%s: starting a sandbox failed (attempt %d): %s", self.backend, attempt, exc)
                waited = asyncio.get_running_loop().time() - began
                if not lost and attempt >= RECYCLE_ATTEMPTS and waited >= RESTART_GRACE_S:
                    lost = True
                    self._on_slot_lost()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                delay = min(delay * 2, RESTART_MAX_DELAY_S)
                continue
            if self._closed:
                await channel.destroy()
                return
            self._add_slot(channel)
            return

    def _on_slot_lost(self) -> None:
        if self._live == 0 and not self._closed and self._dead_reason is None:
            self._dead_reason = f"{self.backend}: every sandbox instance failed to restart"
            logger.error("%s: the pool is down (no sandbox starts); it comes back when one does", self.backend)
            self._idle.put_nowait(None)

    async def close(self) -> None:
        """Destroy every instance, idle or busy; waiting jobs get SandboxError."""
        self._closing.set()
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
            "slots_died_idle": self._counts["slots_died_idle"],
            "sandbox_errors": self._counts["sandbox_errors"],
            "runs_by_status": dict(self._statuses),
            "compile_cache_hits": self._counts["compile_cache_hits"],
            "compile_cache_misses": self._counts["compile_cache_misses"],
            "compile_cache_waits": self._counts["compile_cache_waits"],
            "compile_cache_entries": len(self._cache),
            "compile_cache_bytes": self._cache.size,
            "compile_cache_evictions": self._cache.evictions,
        }
