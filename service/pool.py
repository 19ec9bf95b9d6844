"""A pool of CPU worker processes that cannot hang a batch.

Exceptions::

    PoolError            the pool itself cannot serve (closed, or workers fail to start)

Work goes to workers in chunks. A worker streams back one result per task, so the pool always knows which
task a worker is on. Each task has a hard deadline (its checker's soft time-out plus a grace period); a worker
that passes it is killed with SIGKILL (sympy can block in C where no signal reaches), the task it was stuck on
gets its checker's ``hang_score`` (or is masked), the rest of the chunk goes back to the front of the queue,
and a fresh worker takes the dead one's place. A worker that dies on its own (killed from outside, out of
memory, a crash in C) is handled the same way, except that the task it was on goes back to the queue once, to a
fresh worker: one death may be the machine's doing. A crash that reproduces on a second worker is the item's
doing, and it is settled like a hang: the checker's ``hang_score`` (so a completion cannot escape a wrong
score by crashing the checker), or masked when the checker blames itself.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from rewards import Checker, CheckResult, FailureKind, Status
from service import logs, worker
from service.worker import Task

__all__ = ["PoolError", "TaskSpec", "WorkerPool"]

log = logging.getLogger("rlvr.pool")

_READY_TIMEOUT_S = 120.0


class PoolError(RuntimeError):
    pass


@dataclass(frozen=True)
class TaskSpec:
    """What the scorer asks for: one checker on one sample, with a hard deadline."""

    checker: str
    settings_json: str
    sample: Any
    deadline_s: float


@dataclass
class _Pending:
    task: Task
    deadline_s: float
    future: asyncio.Future[CheckResult]
    deaths: int = 0  # workers that died under this task on their own (not killed by us for its deadline)


@dataclass(order=True)
class _Chunk:
    priority: int
    seq: int
    items: list[_Pending] = field(compare=False)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, ctx: multiprocessing.context.BaseContext, registry: dict[str, str]) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=worker.serve, args=(child, registry, logs.current_setup()), daemon=True
        )
        self._child = child

    def start(self) -> None:
        self.process.start()
        self._child.close()

    async def receive(self, timeout_s: float) -> Any:
        """Next message from the worker; TimeoutError past timeout_s, EOFError when it died."""
        if not self.conn.poll():
            loop = asyncio.get_running_loop()
            readable: asyncio.Future[None] = loop.create_future()
            fd = self.conn.fileno()
            loop.add_reader(fd, _set_once, readable)
            try:
                await asyncio.wait_for(readable, max(timeout_s, 0.0))
            finally:
                loop.remove_reader(fd)
        try:
            return self.conn.recv()
        except (OSError, EOFError) as exc:
            raise EOFError("worker pipe closed") from exc

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def rss_bytes(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                line = next(line for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return 0
        return int(line.split()[1]) * 1024


class WorkerPool:
    def __init__(
        self,
        size: int,
        *,
        chunk_size: int = 16,
        grace_s: float = 1.0,
        on_kill: Callable[[str], None] | None = None,
        registry: dict[str, str] | None = None,
    ) -> None:
        self.size = size
        self.registry = registry if registry is not None else worker.cpu_registry()
        self.chunk_size = chunk_size
        self.grace_s = grace_s
        self._on_kill = on_kill or (lambda reason: None)
        self._ctx = multiprocessing.get_context("forkserver")
        modules = {target.partition(":")[0] for target in self.registry.values()}
        self._ctx.set_forkserver_preload(["service.worker", *sorted(modules)])
        self._queue: asyncio.PriorityQueue[_Chunk] = asyncio.PriorityQueue()
        self._workers: list[_Worker | None] = [None] * size
        self._drivers: list[asyncio.Task[None]] = []
        self._seq = itertools.count()
        self._ids = itertools.count()
        self._busy = 0
        self.kills = 0  # workers that died or hung under a task
        self.died_idle = 0  # workers found dead between tasks (killed from outside, OOM): replaced, nothing lost
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        self._workers = list(workers)
        self._drivers = [asyncio.create_task(self._drive(slot)) for slot in range(self.size)]

    async def close(self) -> None:
        self._closed = True
        # Cancel until every driver has ended: Python 3.11's wait_for can swallow a cancel that races with a
        # worker's answer, and a driver that missed it would wait on the queue forever (a hung shutdown).
        while running := [driver for driver in self._drivers if not driver.done()]:
            for driver in running:
                driver.cancel()
            await asyncio.wait(running, timeout=1.0)
        await asyncio.gather(*self._drivers, return_exceptions=True)
        for slot, proc in enumerate(self._workers):
            if proc is not None:
                try:
                    proc.conn.send(None)
                except OSError:
                    pass
                await asyncio.to_thread(proc.kill)
            self._workers[slot] = None
        while not self._queue.empty():
            for pending in self._queue.get_nowait().items:
                self._settle(pending, _masked(FailureKind.INTERNAL_ERROR, "the worker pool shut down"))

    async def _spawn(self) -> _Worker:
        proc = _Worker(self._ctx, self.registry)
        await asyncio.to_thread(proc.start)
        try:
            message = await proc.receive(_READY_TIMEOUT_S)
        except (TimeoutError, EOFError) as exc:
            await asyncio.to_thread(proc.kill)
            raise PoolError("a worker process failed to start") from exc
        if message != ("ready", None):
            raise PoolError(f"unexpected first message from a worker: {message!r}")
        return proc

    # -- public API ------------------------------------------------------------------------------------------

    async def run(self, specs: Sequence[TaskSpec]) -> list[CheckResult]:
        """Run every spec; results come back in order, one per spec, whatever happens to the workers."""
        if self._closed:
            raise PoolError("the worker pool is closed")
        loop = asyncio.get_running_loop()
        pending = [
            _Pending(Task(next(self._ids), s.checker, s.settings_json, s.sample), s.deadline_s, loop.create_future())
            for s in specs
        ]
        for chunk in _chunks(pending, self._chunk_len(len(pending))):
            self._queue.put_nowait(_Chunk(1, next(self._seq), chunk))
        return list(await asyncio.gather(*(p.future for p in pending)))

    def stats(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "busy": self._busy,
            "queued_chunks": self._queue.qsize(),
            "kills": self.kills,
            "died_idle": self.died_idle,
            "worker_rss_bytes": {str(slot): w.rss_bytes() for slot, w in enumerate(self._workers) if w is not None},
        }

    # -- internals -------------------------------------------------------------------------------------------

    def _chunk_len(self, n: int) -> int:
        # Many small chunks: workers finish together (a chunk can hold seconds of sympy) and a kill re-queues little.
        return max(1, min(self.chunk_size, -(-n // (self.size * 16))))

    async def _drive(self, slot: int) -> None:
        while not self._closed:
            chunk = await self._queue.get()
            live = [p for p in chunk.items if not p.future.done()]
            if not live:
                continue
            self._busy += 1
            try:
                await self._run_chunk(slot, live)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the driver alive whatever happens; the items must still get answers
                log.exception("worker slot %d failed", slot)
                for pending in live:
                    self._settle(pending, _masked(FailureKind.INTERNAL_ERROR, "the worker pool failed"))
            finally:
                self._busy -= 1

    async def _run_chunk(self, slot: int, items: list[_Pending]) -> None:
        proc = self._workers[slot]
        if proc is None:
            proc = self._workers[slot] = await self._spawn()
        try:
            proc.conn.send([p.task for p in items])
        except OSError:  # the worker died while idle: replace it and give the chunk to the next free worker
            self.died_idle += 1
            self._workers[slot] = None
            await asyncio.to_thread(proc.kill)
            self._queue.put_nowait(_Chunk(0, next(self._seq), items))
            self._workers[slot] = await self._spawn()
            return
        for index, pending in enumerate(items):
            started = time.monotonic()
            try:
                message = await self._receive_for(proc, pending, started)
            except (TimeoutError, EOFError) as exc:
                await self._replace(slot, proc, pending, items[index + 1 :], hung=isinstance(exc, TimeoutError))
                return
            task_id, result = message
            if task_id != pending.task.task_id:
                raise PoolError(f"worker answered task {task_id}, expected {pending.task.task_id}")
            self._settle(pending, result)

    async def _receive_for(self, proc: _Worker, pending: _Pending, started: float) -> Any:
        return await proc.receive(pending.deadline_s + self.grace_s - (time.monotonic() - started))

    async def _replace(self, slot: int, proc: _Worker, guilty: _Pending, rest: list[_Pending], *, hung: bool) -> None:
        self.kills += 1
        self._workers[slot] = None
        await asyncio.to_thread(proc.kill)
        reason = "hung past its hard deadline" if hung else "worker process died"
        log.warning("killed worker on %s task (%s)", guilty.task.checker, reason)
        self._on_kill(guilty.task.checker)
        if not hung and guilty.deaths == 0:  # maybe not the item's doing: once more, on a fresh worker
            guilty.deaths += 1
            rest = [guilty, *rest]
        else:
            hang_score = self._hang_score(guilty.task.checker)
            deadline_s = guilty.deadline_s + self.grace_s
            self._settle(guilty, _hang_result(guilty, hang_score, hung=hung, deadline_s=deadline_s))
        if rest:
            self._queue.put_nowait(_Chunk(0, next(self._seq), rest))
        if not self._closed:
            self._workers[slot] = await self._spawn()

    def _hang_score(self, name: str) -> float | None:
        module_name, _, attr = self.registry[name].partition(":")
        checker: Checker = getattr(importlib.import_module(module_name), attr)
        return checker.hang_score

    @staticmethod
    def _settle(pending: _Pending, result: CheckResult) -> None:
        if not pending.future.done():
            pending.future.set_result(result)


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _chunks(items: list[_Pending], size: int) -> list[list[_Pending]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _masked(kind: str, reason: str) -> CheckResult:
    return CheckResult.unjudgeable(Status.ERROR, kind, reason)


def _hang_result(pending: _Pending, score: float | None, *, hung: bool, deadline_s: float) -> CheckResult:
    checker = pending.task.checker
    if not hung:
        reason = f"two {checker} worker processes died on this item"
        if score is None:
            return _masked(FailureKind.INTERNAL_ERROR, reason)
        return CheckResult(score=score, status=Status.ERROR, details={"reason": reason, "worker_deaths": 2})
    details = {"killed_after_s": round(deadline_s, 3)}
    if score is None:
        reason = f"the {checker} checker passed its hard deadline of {deadline_s:.1f} s"
        return CheckResult.unjudgeable(Status.TIMEOUT, FailureKind.INTERNAL_TIMEOUT, reason, **details)
    return CheckResult(score=score, status=Status.TIMEOUT, details=details)
