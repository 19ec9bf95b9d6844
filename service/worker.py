"""The body of a CPU worker process.

A worker loads the CPU checkers once, warms them, says ``ready`` and then serves chunks: it receives a list
of tasks, and sends back one ``(task_id, CheckResult)`` per task as soon as that task is done, so the pool always
knows which item a worker is on (and which one to blame when it has to kill it). Checkers run in this process's
main thread, where math-verify's ``signal.alarm`` time-outs work.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing.connection import Connection

from rewards import CHECKERS, CheckerSettings, CheckResult, FailureKind, Sample, Status, load_checker

__all__ = ["Task", "cpu_checkers", "run_task", "serve"]

log = logging.getLogger("rlvr.worker")


@dataclass(frozen=True)
class Task:
    task_id: int
    checker: str
    settings_json: str
    sample: Sample


@lru_cache(maxsize=1024)
def _settings(checker: str, settings_json: str) -> CheckerSettings:
    return load_checker(checker).settings_model.model_validate_json(settings_json)


def run_task(task: Task) -> CheckResult:
    try:
        checker = load_checker(task.checker)
        result = checker.check(task.sample, _settings(task.checker, task.settings_json))
    except Exception as exc:  # our bug, not the completion's: mask it and keep serving
        log.exception("checker %s failed", task.checker)
        return CheckResult.unjudgeable(
            Status.ERROR, FailureKind.INTERNAL_ERROR, f"{task.checker} checker failed: {type(exc).__name__}"
        )
    assert isinstance(result, CheckResult)
    return result


def cpu_checkers() -> list[str]:
    """Names of the checkers that run in worker processes."""
    return [name for name in CHECKERS if load_checker(name).runs_in == "cpu"]


def _warm(names: list[str]) -> None:
    for checker in map(load_checker, names):
        if checker.warm is not None:
            checker.warm()


def serve(conn: Connection, checkers: list[str]) -> None:
    """Entry point of a worker process: warm the named checkers, then serve chunks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    _warm(checkers)
    conn.send(("ready", None))
    while True:
        try:
            tasks: list[Task] | None = conn.recv()
        except EOFError:
            return
        if tasks is None:
            return
        for task in tasks:
            conn.send((task.task_id, run_task(task)))
