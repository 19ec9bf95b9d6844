"""Start the rlvr service the way a user does (`python -m service serve`) for a benchmark, and read its memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

__all__ = ["rss_mb", "running_service", "tree_peak_mb"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_service(*flags: str, tree: str | None = None) -> Iterator[tuple[str, int]]:
    """Yield (base URL, server pid) of a ready service started with the given `rlvr serve` flags; ``tree``: run
    the service of another checkout (a baseline commit) with this interpreter."""
    port = _free_port()
    argv = [sys.executable, "-m", "service", "serve", "--port", str(port), "--log-level", "warning", *flags]
    env = None if tree is None else {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.Popen(argv, cwd=tree, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not _ready(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return 0


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def _children(pid: int) -> Sequence[int]:
    """Children of every thread of the process (the worker pool starts processes from executor threads)."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return children


def tree_peak_mb(pid: int) -> float:
    """Sum of peak RSS (VmHWM) of a process and every descendant still alive."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _status_kb(current, "VmHWM")
        stack.extend(_children(current))
    return total / 1024
