"""Who owns a sandbox container, and removing the containers whose owner is gone.

Every container the docker backend starts carries two labels: ``rlvr.sandbox=1`` and ``rlvr.owner=<owner>``,
where the owner names this host, this process and the process's start time (so a recycled pid is not mistaken
for a live owner). A service that crashed, or was killed with SIGKILL, leaves its containers behind; the next
backend that starts on the same host (and every live one, periodically) removes them.

Owners on another host (another replica sharing one Docker engine) cannot be checked from here and are left
alone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

__all__ = ["OWNER_LABEL", "SANDBOX_LABEL", "Owner", "current_owner", "reap_orphans"]

SANDBOX_LABEL = "rlvr.sandbox"
OWNER_LABEL = "rlvr.owner"
CONFLICT = 409  # the engine's answer when a removal of the same container is already in progress


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: the process's start time since boot, in clock ticks

    def label(self) -> str:
        return f"{self.host}/{self.pid}/{self.start_ticks}"

    @classmethod
    def parse(cls, label: str) -> Owner | None:
        parts = label.split("/")
        if len(parts) < 3 or not parts[-1].isdigit() or not parts[-2].isdigit():
            return None
        return cls(host="/".join(parts[:-2]), pid=int(parts[-2]), start_ticks=int(parts[-1]))

    def is_alive(self) -> bool:
        """Whether this owner still runs (only decidable on this host: elsewhere, assume it does)."""
        if self.host != socket.gethostname():
            return True
        return _start_ticks(self.pid) == self.start_ticks


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return int(stat.rpartition(")")[2].split()[19])


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(host=socket.gethostname(), pid=pid, start_ticks=_start_ticks(pid) or 0)


def reap_orphans(client: Any) -> int:
    """Remove the sandbox containers whose owner process is gone; return how many were removed.

    Blocking (the docker SDK): call it from a worker thread.
    """
    removed = 0
    for container in client.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}=1"}):
        owner = Owner.parse(container.labels.get(OWNER_LABEL, ""))
        if owner is not None and owner.is_alive():
            continue
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            continue  # removed by someone else meanwhile
        except docker.errors.APIError as exc:
            if exc.status_code == CONFLICT:
                continue  # another reaper is removing it right now
            raise
        removed += 1
    return removed
