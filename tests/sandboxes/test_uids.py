"""Slot uids: every live slot of every sandbox of a process has two uids no other slot has, and two services on
one host claim different blocks (``sandboxes._uids``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from sandboxes import bubblewrap
from sandboxes._uids import SlotUids, UidPool, slot_uid_pool
from sandboxes.base import Job, Run, SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig
from tests.sandboxes.conftest import TEST_CONFIG, close_and_check_clean, open_or_skip

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **changes: int | None) -> SandboxConfig:
    # a base of this test's own, so that no other test or service on the host holds its blocks
    base = 1_500_000_000 + (abs(hash(tmp_path)) % 1000) * 100_000
    return TEST_CONFIG.model_copy(update=dict(uid_base=base, uid_block_size=8, **changes))


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
