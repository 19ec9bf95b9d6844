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

Services that cannot see one another's lock dir (containers with private ``/run`` and ``/tmp``) but share a
Docker engine claim their block there too: the docker backend passes a ``BlockRegistry`` (``sandboxes._claims``:
a never-started container named after the block, which the engine lets one owner have), and a block counts as
free only when both its lock and its registry claim are ours. A registry claim is held while any sandbox of the
process uses it (counted per registry) and given back when the last one closes; a process whose block was taken
on the engine meanwhile (while none of its sandboxes held it) moves to a free one, as long as no pair is lent.
A pinned block (``uid_block``) is locked and claimed too, so a clash on one host or one engine fails loudly.
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
from typing import Protocol

from sandboxes.base import SandboxError, SandboxUnavailable
from sandboxes.config import SandboxConfig

__all__ = [
    "BlockRegistry",
    "SlotUids",
    "UidPool",
    "block_name",
    "release_uid_block",
    "renew_uid_block",
    "slot_uid_pool",
]

SEARCHED_BLOCKS = 256  # how far a process looks for a free block before it gives up
MAX_UID = (1 << 31) - 2  # uids past 2^31 confuse too many tools; 2^32 - 1 is (uid_t) -1
LOCK_DIRS = ("/run/lock", tempfile.gettempdir())


@dataclass(frozen=True)
class SlotUids:
    harness: int
    candidate: int


class BlockRegistry(Protocol):
    """Another place than the lock dir where uid blocks are claimed, shared by services that share no lock dir."""

    @property
    def key(self) -> str:
        """Which registry this is (an engine's URL): a process's holds are counted per key."""
        ...

    def claim(self, name: str) -> bool:
        """Claim the block of this name (idempotent for its owner); False when another live owner holds it."""
        ...

    def release(self, name: str) -> None:
        """Give the claim back (only ours is ever removed)."""
        ...


def block_name(base: int, size: int, block: int) -> str:
    """A block's name: its lock file's stem, and its claim in a registry."""
    return f"rlvr-uids-{base}-{size}-{block}"


class UidPool:
    """Pairs of uids from one block, each pair lent to one live slot at a time.

    A returned pair goes to the back of the queue: it is lent again only after every other free pair, so a
    process of a destroyed slot that is still dying never shares a uid with a fresh slot.
    """

    def __init__(self, first: int, size: int, lock_fd: int | None = None, name: str | None = None) -> None:
        self.first = first
        self.size = size
        self.name = name
        self.holds: collections.Counter[str] = collections.Counter()  # sandboxes holding a registry claim, by key
        self._lock_fd = lock_fd  # held open for the life of the process: it is the block's claim
        self._free = collections.deque(range(size // 2))
        self._lent: set[int] = set()
        self._mutex = threading.Lock()

    def adopt(self, other: UidPool) -> bool:
        """Take ``other``'s block (and its lock) instead of this one; False, nothing changed, while a pair is
        lent (a slot uses this block)."""
        with self._mutex:
            if self._lent:
                return False
            old_fd, self._lock_fd, other._lock_fd = self._lock_fd, other._lock_fd, None
            self.first, self.name = other.first, other.name
            self._free = collections.deque(range(self.size // 2))
        if old_fd is not None:
            os.close(old_fd)
        return True

    def unlock(self) -> None:
        """Drop the block's lock (a pool that is not kept)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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
# Also held across registry calls: a claim and its release must not interleave (one process, one claim).
_POOLS_LOCK = threading.Lock()


def slot_uid_pool(config: SandboxConfig, registry: BlockRegistry | None = None) -> UidPool:
    """This process's pool for ``config``'s uid range (its block is claimed at the first call).

    With ``registry`` the block is claimed there too, and held until ``release_uid_block``: call the two in
    pairs. Blocking when the registry is (the Docker engine): call it from a worker thread.
    """
    key = (os.getpid(), config.uid_base, config.uid_block_size, config.uid_block)  # a forked child claims anew
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _claim(config, registry)
        elif registry is not None and not pool.holds[registry.key]:
            _claim_held_block(pool, config, registry)
        if registry is not None:
            pool.holds[registry.key] += 1
        return pool


def release_uid_block(pool: UidPool, registry: BlockRegistry) -> None:
    """One holder of ``registry``'s claim is done with it; the last one removes the claim."""
    with _POOLS_LOCK:
        pool.holds[registry.key] -= 1
        if pool.holds[registry.key] > 0:
            return
        del pool.holds[registry.key]
        if pool.name is not None:
            registry.release(pool.name)


def renew_uid_block(pool: UidPool, registry: BlockRegistry) -> bool:
    """Claim the block in ``registry`` again if the claim vanished (a pruned engine); False when someone else
    holds it now (nothing can move: slots use it)."""
    with _POOLS_LOCK:
        if not pool.holds[registry.key] or pool.name is None:
            return True
        return registry.claim(pool.name)


def _claim_held_block(pool: UidPool, config: SandboxConfig, registry: BlockRegistry) -> None:
    """Claim the block this process already locked in ``registry`` too; move when it is taken there."""
    if pool.name is not None and registry.claim(pool.name):
        return
    if config.uid_block is None:
        moved = _claim(config, registry)
        if pool.adopt(moved):
            return
        assert moved.name is not None
        registry.release(moved.name)
        moved.unlock()
    raise SandboxUnavailable(
        f"slot uid block {pool.name} of this process is claimed by another service on {registry.key}: "
        "pin distinct blocks with uid_block"
    )


def _claim(config: SandboxConfig, registry: BlockRegistry | None) -> UidPool:
    base, size = config.uid_base, config.uid_block_size
    blocks = range(SEARCHED_BLOCKS) if config.uid_block is None else range(config.uid_block, config.uid_block + 1)
    if size < 2 or base < 1 or blocks.start < 0 or base + blocks.start * size + size - 1 > MAX_UID:
        raise SandboxUnavailable(f"bad slot uid range: base {base}, block size {size}, block {config.uid_block}")
    for block in blocks:
        if base + (block + 1) * size - 1 > MAX_UID:
            break
        name = block_name(base, size, block)
        fd = _lock_block(name)
        if fd is None:
            continue
        try:
            claimed = registry is None or registry.claim(name)
        except BaseException:
            os.close(fd)
            raise
        if claimed:
            return UidPool(base + block * size, size, fd, name)
        os.close(fd)
    where = "on this host" if registry is None else f"on this host or on {registry.key}"
    if config.uid_block is not None:
        raise SandboxUnavailable(f"slot uid block {config.uid_block} is held by another process {where}")
    raise SandboxUnavailable(f"every slot uid block from {base} is held by another process {where}")


def _lock_dir() -> Path:
    return next((Path(path) for path in LOCK_DIRS if os.access(path, os.W_OK | os.X_OK)), Path(LOCK_DIRS[-1]))


def _lock_block(name: str) -> int | None:
    """An fd holding the block's host-wide lock, or None when another process (or pool) holds it."""
    path = _lock_dir() / f"{name}.lock"
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
