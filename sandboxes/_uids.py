"""Host uids for sandbox slots: two per slot (its judge harness, its candidate programs), never shared.

RLIMIT_NPROC, keyrings and signal permissions go by uid across the whole host (neither backend remaps uids), so
two live slots sharing a uid would share a process budget and could signal each other's programs. Every backend
of a process therefore takes its slot uids from one process-wide ``UidPool`` (module state on purpose: the
uniqueness is a property of the process, not of one sandbox object).

A process uses one block of ``config.uid_block_size`` uids, ``uid_base + block * uid_block_size`` onwards. With
``config.uid_block = None`` it claims the lowest free block on this host: it holds an exclusive ``flock`` on
``rlvr-uids-<base>-<size>-<block>.lock`` in ``/run/lock`` (else the temp dir) for as long as it lives, and the
kernel drops the lock when the process dies, so a crashed service frees its block by itself. Two services on one
host that see the same lock dir (and share ``uid_base`` and ``uid_block_size``) therefore never share a uid.
Services that cannot see one another's lock dir (containers with private ``/run`` and ``/tmp`` on one host) must
pin distinct blocks with ``uid_block``; a pinned block is locked too, so a clash on one host fails loudly.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sandboxes.base import SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig

__all__ = ["SlotUids", "UidPool", "slot_uid_pool"]

SEARCHED_BLOCKS = 256  # how far a process looks for a free block before it gives up
MAX_UID = (1 << 31) - 2  # uids past 2^31 confuse too many tools; 2^32 - 1 is (uid_t) -1
LOCK_DIRS = ("/run/lock", tempfile.gettempdir())


@dataclass(frozen=True)
class SlotUids:
    harness: int
    candidate: int


class UidPool:
    """Pairs of uids from one block, each pair lent to one live slot at a time.

    A returned pair goes to the back of the queue: it is lent again only after every other free pair, so a
    process of a destroyed slot that is still dying never shares a uid with a fresh slot.
    """

    def __init__(self, first: int, size: int, lock_fd: int | None = None) -> None:
        self.first = first
        self.size = size
        self._lock_fd = lock_fd  # held open for the life of the process: it is the block's claim
        self._free = collections.deque(range(size // 2))
        self._lent: set[int] = set()
        self._mutex = threading.Lock()

    def take(self) -> SlotUids:
        with self._mutex:
            if not self._free:
                raise SandboxError(f"all {self.size // 2} slot uid pairs from {self.first} are in use")
            index = self._free.popleft()
            self._lent.add(index)
        return SlotUids(harness=self.first + 2 * index, candidate=self.first + 2 * index + 1)

    def give_back(self, uids: SlotUids) -> None:
        index = (uids.harness - self.first) // 2
        with self._mutex:
            if index in self._lent:
                self._lent.remove(index)
                self._free.append(index)

    @property
    def lent(self) -> int:
        return len(self._lent)


_POOLS: dict[tuple[int, int, int, int | None], UidPool] = {}
_POOLS_LOCK = threading.Lock()


def slot_uid_pool(config: SandboxConfig) -> UidPool:
    """This process's pool for ``config``'s uid range (its block is claimed at the first call)."""
    key = (os.getpid(), config.uid_base, config.uid_block_size, config.uid_block)  # a forked child claims anew
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = _claim(config)
        return _POOLS[key]


def _claim(config: SandboxConfig) -> UidPool:
    base, size = config.uid_base, config.uid_block_size
    blocks = range(SEARCHED_BLOCKS) if config.uid_block is None else range(config.uid_block, config.uid_block + 1)
    if size < 2 or base < 1 or blocks.start < 0 or base + blocks.start * size + size - 1 > MAX_UID:
        raise SandboxUnavailable(f"bad slot uid range: base {base}, block size {size}, block {config.uid_block}")
    for block in blocks:
        if base + (block + 1) * size - 1 > MAX_UID:
            break
        fd = _lock_block(base, size, block)
        if fd is not None:
            return UidPool(base + block * size, size, fd)
    if config.uid_block is not None:
        raise SandboxUnavailable(f"slot uid block {config.uid_block} is held by another process on this host")
    raise SandboxUnavailable(f"every slot uid block from {base} is held by another process on this host")


def _lock_dir() -> Path:
    return next((Path(path) for path in LOCK_DIRS if os.access(path, os.W_OK | os.X_OK)), Path(LOCK_DIRS[-1]))


def _lock_block(base: int, size: int, block: int) -> int | None:
    """An fd holding the block's host-wide lock, or None when another process holds it."""
    path = _lock_dir() / f"rlvr-uids-{base}-{size}-{block}.lock"
    # read-only is enough for flock, and O_NOFOLLOW keeps a planted symlink in a shared temp dir harmless
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd
