"""Slot uids: every live slot of every sandbox of a process has two uids no other slot has, and two services on
one host claim different blocks (``sandboxes._uids``): through a lock dir they share, or through the Docker engine
when they share only that (containers with a private /run and /tmp: ``sandboxes._claims``)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import _uids, bubblewrap
from sandboxes._claims import EngineClaims
from sandboxes._reaper import detect_owner, reap_orphans
from sandboxes._uids import SlotUids, UidPool, block_name, release_uid_block, renew_uid_block, slot_uid_pool
from sandboxes.base import Job, Run, SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig
from sandboxes.docker import connect_engine
from tests.conftest import missing_backend
from tests.sandboxes.conftest import TEST_CONFIG, close_and_check_clean, open_or_skip

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **changes: int | None) -> SandboxConfig:
    # a base of this test's own, so that no other test or service on the host holds its blocks
    base = 1_500_000_000 + (abs(hash(tmp_path)) % 1000) * 100_000
    return TEST_CONFIG.model_copy(update=dict(uid_base=base, uid_block_size=8, **changes))


@contextlib.contextmanager
def connected_engine() -> Iterator[Any]:
    try:
        client = connect_engine()
    except SandboxUnavailable as exc:
        missing_backend(str(exc))
        raise
    try:
        yield client
    finally:
        client.close()


def test_a_pool_lends_distinct_pairs_and_refuses_past_its_block() -> None:
    pool = UidPool(first=5000, size=6)
    pairs = [pool.take() for _ in range(3)]
    assert pairs == [SlotUids(5000, 5001), SlotUids(5002, 5003), SlotUids(5004, 5005)]
    with pytest.raises(SandboxError, match="in use"):
        pool.take()


def test_a_returned_pair_is_lent_again_last() -> None:
    pool = UidPool(first=5000, size=6)
    first = pool.take()
    pool.give_back(first)
    assert [pool.take(), pool.take(), pool.take()] == [SlotUids(5002, 5003), SlotUids(5004, 5005), first]


def test_one_process_shares_one_pool_between_its_sandboxes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    other_sizes = config.model_copy(update={"pool_size": 9, "work_tmpfs_mb": 1})  # other settings, same uid range
    assert slot_uid_pool(config) is slot_uid_pool(other_sizes)


CLAIM = """
import sys
from sandboxes._uids import slot_uid_pool
from sandboxes.config import SandboxConfig
config = SandboxConfig(uid_base=int(sys.argv[1]), uid_block_size=8, uid_block=None if sys.argv[2] == '-' else 0)
try:
    print(slot_uid_pool(config).first)
except Exception as exc:
    print(type(exc).__name__)
"""


def _claim_in_another_process(config: SandboxConfig, pinned: bool) -> str:
    argv = [sys.executable, "-c", CLAIM, str(config.uid_base), "0" if pinned else "-"]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(
    ("pinned", "expected"),
    [
        pytest.param(False, "next_block", id="free_choice_takes_the_next_block"),
        pytest.param(True, "SandboxUnavailable", id="a_pinned_block_in_use_fails_loudly"),
    ],
)
def test_another_process_on_the_host_never_gets_this_ones_block(tmp_path: Path, pinned: bool, expected: str) -> None:
    config = _config(tmp_path)
    mine = slot_uid_pool(config)
    assert mine.first == config.uid_base  # block 0
    seen = _claim_in_another_process(config, pinned)
    assert seen == (str(config.uid_base + config.uid_block_size) if expected == "next_block" else expected)


def test_a_block_of_a_process_that_died_is_free_again(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _claim_in_another_process(config, pinned=False) == str(config.uid_base)
    assert _claim_in_another_process(config, pinned=True) == str(config.uid_base)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"uid_block_size": 1}, id="block_too_small"),
        pytest.param({"uid_base": 0}, id="uid_zero"),
        pytest.param({"uid_block": (1 << 31) // 8}, id="past_2_to_the_31"),
    ],
)
def test_a_bad_uid_range_is_refused(tmp_path: Path, changes: dict[str, int]) -> None:
    with pytest.raises(SandboxUnavailable, match="uid range"):
        slot_uid_pool(_config(tmp_path).model_copy(update=changes))


UIDS_OF_THE_SLOT = """
import time
args = open('/proc/1/cmdline').read().split(chr(0))
print(args[args.index('--harness-uid') + 1], args[args.index('--candidate-uid') + 1])
time.sleep(1.0)  # hold the slot, so that the next job goes to the other one
"""


@pytest.mark.docker
@pytest.mark.bwrap
async def test_docker_and_bubblewrap_slots_never_share_a_uid() -> None:
    if not bubblewrap.can_separate_uids():
        pytest.skip("uid separation under bubblewrap needs a service running as root with CAP_SYS_ADMIN")
    config = TEST_CONFIG.model_copy(update={"pool_size": 2})
    opened = [await open_or_skip(backend, config) for backend in ("docker", "bubblewrap")]
    try:
        job = Job(language="python", source=UIDS_OF_THE_SLOT, runs=[Run()])
        results = await asyncio.gather(*(sandbox.run(job) for sandbox in opened for _ in range(2)))
        uids = [int(uid) for result in results for uid in result.runs[0].stdout.split()]
        assert len(uids) == 8
        assert len(set(uids)) == 8
    finally:
        for sandbox in reversed(opened):
            await close_and_check_clean(sandbox)


class FakeRegistry:
    """A ``BlockRegistry`` in memory: claim name -> owner; ``dead`` owners' claims may be taken."""

    key = "fake://engine"

    def __init__(self, me: str = "me", held: dict[str, str] | None = None, dead: frozenset[str] = frozenset()):
        self.me = me
        self.claims = dict(held or {})
        self.dead = dead

    def claim(self, name: str) -> bool:
        owner = self.claims.setdefault(name, self.me)
        if owner in self.dead:
            self.claims[name] = owner = self.me
        return owner == self.me

    def release(self, name: str) -> None:
        if self.claims.get(name) == self.me:
            del self.claims[name]


@pytest.fixture
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lock dir no other process sees, as a container with a private /run and /tmp has."""
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    monkeypatch.setattr(_uids, "LOCK_DIRS", (str(lock_dir),))
    return lock_dir


def _name(config: SandboxConfig, block: int) -> str:
    return block_name(config.uid_base, config.uid_block_size, block)


@pytest.mark.parametrize(
    ("held", "dead", "first_block"),
    [
        pytest.param({}, frozenset(), 0, id="free"),
        pytest.param({0: "other"}, frozenset(), 1, id="taken_on_the_engine_by_a_live_service"),
        pytest.param({0: "other", 1: "third"}, frozenset(), 2, id="two_taken"),
        pytest.param({0: "other"}, frozenset({"other"}), 0, id="taken_by_a_dead_service"),
    ],
)
def test_a_block_is_free_only_when_free_in_the_lock_dir_and_the_registry(
    tmp_path: Path, private_lock_dir: Path, held: dict[int, str], dead: frozenset[str], first_block: int
) -> None:
    config = _config(tmp_path)
    registry = FakeRegistry(held={_name(config, block): owner for block, owner in held.items()}, dead=dead)
    pool = slot_uid_pool(config, registry)
    assert pool.first == config.uid_base + first_block * config.uid_block_size
    assert registry.claims[_name(config, first_block)] == "me"
    release_uid_block(pool, registry)


def test_the_registry_claim_is_held_while_a_sandbox_uses_it(tmp_path: Path, private_lock_dir: Path) -> None:
    config = _config(tmp_path)
    registry = FakeRegistry()
    first, second = slot_uid_pool(config, registry), slot_uid_pool(config, registry)  # two sandboxes
    assert first is second
    release_uid_block(first, registry)
    assert registry.claims == {_name(config, 0): "me"}
    release_uid_block(first, registry)
    assert registry.claims == {}
    assert renew_uid_block(first, registry)  # nothing to renew: no sandbox holds it
    assert registry.claims == {}


def test_a_vanished_claim_is_renewed(tmp_path: Path, private_lock_dir: Path) -> None:
    config = _config(tmp_path)
    registry = FakeRegistry()
    pool = slot_uid_pool(config, registry)
    registry.claims.clear()  # `docker container prune` removes never-started containers
    assert renew_uid_block(pool, registry)
    assert registry.claims == {_name(config, 0): "me"}
    registry.claims[_name(config, 0)] = "other"
    assert not renew_uid_block(pool, registry)
    release_uid_block(pool, registry)


@pytest.mark.parametrize(
    ("lent", "pinned", "moved"),
    [
        pytest.param(False, False, True, id="nothing_lent_moves_to_a_free_block"),
        pytest.param(True, False, False, id="a_lent_pair_cannot_move"),
        pytest.param(False, True, False, id="a_pinned_block_cannot_move"),
    ],
)
def test_a_block_locked_before_it_was_claimed_in_the_registry(
    tmp_path: Path, private_lock_dir: Path, lent: bool, pinned: bool, moved: bool
) -> None:
    """A process's block, locked by another backend first (bubblewrap), taken on the engine meanwhile."""
    config = _config(tmp_path, uid_block=0 if pinned else None)
    pool = slot_uid_pool(config)
    if lent:
        pool.take()
    registry = FakeRegistry(held={_name(config, 0): "other"})
    if not moved:
        with pytest.raises(SandboxUnavailable, match="claimed by another service"):
            slot_uid_pool(config, registry)
        return
    assert slot_uid_pool(config, registry) is pool
    assert pool.first == config.uid_base + config.uid_block_size
    assert registry.claims[_name(config, 1)] == "me"
    release_uid_block(pool, registry)


ANOTHER_SERVICE = """
import asyncio, os, sys
from sandboxes import _uids
from sandboxes.config import SandboxConfig
from sandboxes.docker import DockerSandbox
_uids.LOCK_DIRS = (sys.argv[1],)  # its own /run/lock and /tmp, as a container has
block = None if sys.argv[3] == "-" else int(sys.argv[3])
config = SandboxConfig(pool_size=1, uid_base=int(sys.argv[2]), uid_block_size=8, uid_block=block)
async def main():
    sandbox = DockerSandbox(config)
    try:
        await sandbox.start()
    except Exception as exc:
        print(type(exc).__name__, exc, flush=True)
        return
    print(sandbox.stats()["uids"].split("-")[0], flush=True)
    if sys.argv[4] == "crash":
        os._exit(0)  # no close(): its claim stays behind, its owner dead
    await sandbox.close()
asyncio.run(main())
"""


def _another_service(tmp_path: Path, config: SandboxConfig, block: int | None, crash: bool) -> str:
    lock_dir = tmp_path / "theirs"
    lock_dir.mkdir(exist_ok=True)
    argv = [sys.executable, "-c", ANOTHER_SERVICE, str(lock_dir), str(config.uid_base)]
    argv += ["-" if block is None else str(block), "crash" if crash else "close"]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout.strip()


@pytest.mark.docker
@pytest.mark.parametrize(
    ("pinned", "expected"),
    [
        pytest.param(None, "next_block", id="free_choice_takes_the_next_block"),
        pytest.param(0, "SandboxUnavailable", id="a_pinned_block_in_use_fails_loudly"),
    ],
)
async def test_services_that_share_only_the_engine_never_share_a_block(
    tmp_path: Path, private_lock_dir: Path, pinned: int | None, expected: str
) -> None:
    config = _config(tmp_path)
    mine = await open_or_skip("docker", config)
    try:
        assert mine.stats()["uids"] == f"{config.uid_base}-{config.uid_base + 7}"
        theirs = _another_service(tmp_path, config, pinned, crash=False)
        if expected == "next_block":
            assert theirs == str(config.uid_base + config.uid_block_size)
        else:
            assert theirs.startswith("SandboxUnavailable slot uid block 0 is held by another process on this host or")
    finally:
        await close_and_check_clean(mine)
    with connected_engine() as client:
        assert client.api.containers(all=True, filters={"name": _name(config, 0)}) == []  # released at close


@pytest.mark.docker
async def test_the_claim_of_a_crashed_service_is_taken_again(tmp_path: Path, private_lock_dir: Path) -> None:
    config = _config(tmp_path)
    with connected_engine() as client:
        assert _another_service(tmp_path, config, None, crash=True) == str(config.uid_base)
        claim = client.api.containers(all=True, filters={"name": _name(config, 0)})
        assert len(claim) == 1  # left behind by the crash
        claims = EngineClaims(client, detect_owner(client), config.image)
        pool = slot_uid_pool(config, claims)  # no reaper ran: the claim itself sees its owner is dead
        try:
            assert pool.first == config.uid_base
            (retaken,) = client.api.containers(all=True, filters={"name": _name(config, 0)})
            assert retaken["Id"] != claim[0]["Id"]
        finally:
            release_uid_block(pool, claims)
            reap_orphans(client)  # the crashed service's sandbox
        assert client.api.containers(all=True, filters={"name": _name(config, 0)}) == []
