"""Faults under a real service (`python -m service serve` in its own process): a sandbox container, a CPU worker
or the whole service killed while a batch is in flight, a program that fills its sandbox's disk, and clients that
never read their answers. In every case each item comes back once, in order, with its right score, and the
service keeps serving.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr import Retries, RewardClient
from tests.conftest import missing_backend
from tests.load.conftest import (
    BATCH_SPEC,
    SANDBOXED,
    Case,
    LoadService,
    check,
    code_item,
    docker_client,
    env_int,
    items,
    math_batch,
    mixed_batch,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 120.0) -> None:
    """Poll until the service reaches the state a fault needs (a bound on a hang, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


# -- a sandbox container killed mid-batch -------------------------------------------------------------------------

SLEEPY = "import time\ntime.sleep(1.5)\nk = {k}\nx = int(input())\nprint({answer})\n"


def sleepy_code(item_id: str, k: int, reward: float) -> Case:
    """A program that holds its sandbox for a while before answering x * k (right), or x + k (wrong)."""
    answer = "x * k" if reward else "x + k"
    return code_item(item_id, SLEEPY.format(k=k, answer=answer), [("3\n", f"{3 * k}\n")], reward)


@pytest.mark.docker
def test_a_sandbox_container_killed_mid_batch_costs_no_item(start: Callable[..., LoadService]) -> None:
    service = start(*SANDBOXED)
    cases = [sleepy_code(f"code-{i}", 100 + i, float(i % 3 != 1)) for i in range(6)] + math_batch("math", 6)
    with RewardClient(service.url, rewards=BATCH_SPEC) as client:
        future = client.submit(items(cases))
        wait_until(lambda: service.readyz()["sandbox"]["stats"]["busy"] == 2, "both sandboxes holding a job")
        victim = service.containers()[0]
        victim.kill()
        result = future.result(timeout=300)
    assert check(result, cases) == []  # the killed job ran again on a fresh sandbox: nothing masked
    stats = service.readyz()["sandbox"]["stats"]
    assert stats["sandbox_errors"] >= 1  # the kill was seen, and survived
    assert victim.id not in {container.id for container in service.containers()}
    # a fresh container takes the dead one's place (the retry may have run on the other one meanwhile)
    wait_until(lambda: service.readyz()["sandbox"]["stats"]["live"] == 2, "the pool back to 2 sandboxes")


# -- a CPU worker killed mid-batch --------------------------------------------------------------------------------

WORKER_KILL_ITEMS = env_int("RLVR_FAULT_MATH_ITEMS", 1500)


def test_a_cpu_worker_killed_mid_batch_costs_no_item(start: Callable[..., LoadService]) -> None:
    service = start("--sandbox-backend", "none")
    workers = service.worker_pids()
    assert len(workers) == 2, f"expected the 2 CPU workers under the service, found {workers}"
    cases = math_batch("math", WORKER_KILL_ITEMS)
    with RewardClient(service.url, rewards=BATCH_SPEC, batch_size=100, concurrency=2) as client:
        future = client.submit(items(cases))
        wait_until(lambda: service.items_scored() >= 100, "the batch under way")
        assert not future.done()
        os.kill(workers[0], signal.SIGKILL)
        result = future.result(timeout=300)
    # A worker that dies under a task gets it once more on a fresh worker (README): right, not masked.
    assert check(result, cases) == []
    workers_stats = service.readyz()["workers"]
    # the pool saw its worker die: under a task (a kill), or between two (the kill can land in that gap)
    assert workers_stats["kills"] + workers_stats["died_idle"] == 1, workers_stats
    # a fresh worker takes the dead one's place (the other may have finished the batch meanwhile)
    wait_until(lambda: len(service.worker_pids()) == 2, "the pool back to 2 workers")
    assert workers[0] not in service.worker_pids()


# -- the whole service killed and restarted mid-batch -------------------------------------------------------------

RESTART_BATCHES = env_int("RLVR_FAULT_RESTART_BATCHES", 30)


@pytest.mark.docker
def test_the_service_killed_and_restarted_mid_batch_costs_no_item(start: Callable[..., LoadService]) -> None:
    service = start(*SANDBOXED)
    cases = [case for b in range(RESTART_BATCHES) for case in mixed_batch(f"b{b}", b, 12)]
    # Retries past the default's 13-26 s: the restart preloads workers and warms docker sandboxes on 2 busy cores.
    retries = Retries(attempts=20)
    with RewardClient(service.url, rewards=BATCH_SPEC, batch_size=12, concurrency=2, retries=retries) as client:
        future = client.submit(items(cases))
        wait_until(lambda: service.items_scored() >= 60, "the batch under way")
        assert not future.done()
        killed = service.containers()
        service.kill()  # SIGKILL to the service and its workers; its containers are orphans now
        service.start()  # same port, a new process: it reaps the orphans and starts its own sandboxes
        result = future.result(timeout=300)
    assert check(result, cases) == []
    assert service.items_scored() > 0  # the new process scored what the old one never answered
    with docker_client() as client:  # and nothing of the killed one is left running
        orphans = client.containers.list(all=True, filters={"id": [container.id for container in killed]})
    assert killed and orphans == []


# -- a program that fills its sandbox's disk ----------------------------------------------------------------------

TMPFS_MB = 32  # the sandbox's tmpfs for work dirs and /tmp (RLVR_SANDBOX_WORK_TMPFS_MB; default 512)

# Writes 1 MB blocks until the disk is full: the uncaught OSError (ENOSPC) fails the run. Bounded at twice the
# tmpfs, so a disk that never fills (no cap) ends the loop with a printed answer the test would not accept.
FILL = (
    "import os\nblock = b'x' * (1 << 20)\nfor n in range({blocks}):\n"
    "    with open(os.path.join({where!r}, 'fill%d' % n), 'wb') as out:\n        out.write(block)\nprint(-1)\n"
)
# Needs a few MB of that same disk to answer: it only passes when the disk was given back after the filler.
NEEDS_DISK = (
    "import os\npath = os.path.join({where!r}, 'scratch')\nwith open(path, 'w') as out:\n"
    "    out.write(input() * (4 << 20))\nwith open(path) as back:\n    x = int(back.read(1))\nprint(x * {k})\n"
)


@pytest.mark.docker
@pytest.mark.parametrize("where", [pytest.param(".", id="work_dir"), pytest.param("/tmp", id="tmp")])
def test_a_program_that_fills_the_disk_fails_alone(start: Callable[..., LoadService], where: str) -> None:
    # One sandbox, so every item after the filler runs on the sandbox it filled (or on its recycled successor).
    service = start("--sandbox-backend", "docker", "--sandbox-pool-size", "1", "--sandbox-work-tmpfs-mb", str(TMPFS_MB))
    filler = code_item("filler", FILL.format(blocks=2 * TMPFS_MB, where=where), [("3\n", "9\n")], 0.0)
    after = [
        code_item("needs-disk", NEEDS_DISK.format(where=where, k=3), [("3\n", "9\n")], 1.0),
        *mixed_batch("same-batch", 1, 9),
    ]
    next_batch = [
        code_item("needs-disk-next", NEEDS_DISK.format(where=where, k=4), [("3\n", "12\n")], 1.0),
        *mixed_batch("next-batch", 2, 9),
    ]
    with RewardClient(service.url, rewards=BATCH_SPEC) as client:
        cases = [filler, *after]
        result = client.score(items(cases))
        assert check(result, cases) == []
        assert check(client.score(items(next_batch)), next_batch) == []
    filled = result.results[0].components["code"].details["tests"][0]
    # A real verdict of the program's own run (not a mask, not our failure), for the reason the disk gives.
    assert filled["status"] == "RE" and "No space left on device" in filled["stderr"]


# -- clients that never read their answers ------------------------------------------------------------------------

SLOW_CLIENTS = 3
# A response of several MB (ids are echoed: 8,192 long ids), more than the service's socket buffers (4 MB at most
# on Linux) and this client's (shrunk to a few KB) can hold: the service's write of it cannot complete.
BIG_ITEMS, ID_CHARS = 8192, 600


def open_unread_request(url: str) -> socket.socket:
    """Post a batch with a big answer on a raw socket that never reads it."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {
            "rewards": BATCH_SPEC,
            "items": [
                {"id": f"{i:06d}".ljust(ID_CHARS, "x"), "completion": "$\\boxed{2}$", "reference": "2"}
                for i in range(BIG_ITEMS)
            ],
        }
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    head = f"POST /v1/score HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


def test_clients_that_never_read_their_answers_hold_up_no_one(start: Callable[..., LoadService]) -> None:
    service = start("--sandbox-backend", "none")
    slow = [open_unread_request(service.url) for _ in range(SLOW_CLIENTS)]
    try:

        def other_client(index: int) -> None:
            with RewardClient(service.url, rewards=BATCH_SPEC, batch_size=32) as client:
                for batch in range(3):
                    cases = math_batch(f"c{index}-b{batch}", 64, start=(index * 3 + batch) * 64)
                    assert check(client.score(items(cases)), cases) == []

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(other_client, range(4)))
        for sock in slow:  # the service did answer them; the answers wait, unread, on the sockets
            sock.settimeout(120)
            assert sock.recv(12, socket.MSG_PEEK) == b"HTTP/1.1 200"
    finally:
        for sock in slow:
            sock.close()
    # Gone clients release what their requests held: nothing stays in flight (a drain on SIGTERM would wait on it).
    wait_until(lambda: service.gauge("rlvr_batches_in_flight") == 0, "the unread requests released")
    cases = math_batch("after", 64, start=10_000)
    with RewardClient(service.url, rewards=BATCH_SPEC) as client:
        assert check(client.score(items(cases)), cases) == []
    assert service.readyz()["status"] == "ready"


# -- dockerd restarted mid-batch ----------------------------------------------------------------------------------


@pytest.mark.docker
def test_dockerd_restarted_mid_batch_the_service_recovers_without_a_restart(
    start: Callable[..., LoadService],
) -> None:
    from tests.sandboxes.test_dockerd_restart import _dockerd_pid, _start_dockerd, _stop_dockerd, engine_left_running

    if os.geteuid() != 0 or _dockerd_pid() is None:
        missing_backend("restarting dockerd needs root and a dockerd with /var/run/docker.pid")
    service = start(*SANDBOXED)
    cases = [sleepy_code(f"code-{i}", 200 + i, float(i % 3 != 1)) for i in range(6)] + math_batch("math", 6)
    with engine_left_running(), RewardClient(service.url, rewards=BATCH_SPEC) as client:
        future = client.submit(items(cases))
        wait_until(lambda: service.readyz()["sandbox"]["stats"]["busy"] == 2, "both sandboxes holding a job")
        _stop_dockerd()
        _start_dockerd()
        masked = check(future.result(timeout=300), cases)  # right, or masked honestly: never a wrong score
    assert all(item.failure_kind == "sandbox_error" for item in masked)
    assert all(item.id.startswith("code-") for item in masked)
    # the same service process, no restart: its pool refills by itself and scores code again
    wait_until(lambda: service.readyz()["sandbox"]["stats"]["live"] == 2, "the pool back to 2 sandboxes", 180)
    after = [sleepy_code(f"after-{i}", 300 + i, float(i % 2)) for i in range(4)] + math_batch("after-math", 4)
    with RewardClient(service.url, rewards=BATCH_SPEC) as client:
        assert check(client.score(items(after)), after) == []
    assert service.proc is not None and service.proc.poll() is None
