"""Who owns a sandbox container, and removing the containers whose owner is gone.

Every container the docker backend makes (its sandboxes, and its uid block claims: ``sandboxes._claims``)
carries two labels: ``rlvr.sandbox=1`` and ``rlvr.owner=<owner>``. An owner is one process, labelled either

- ``<host>/<pid>/<start ticks>``: a process on host ``<host>`` (its hostname); or
- ``container:<id>/<pid>/<start ticks>``: a process in container ``<id>`` of the same Docker engine (a service
  in a docker-compose stack, or one beside a DinD sidecar, that talks to the engine running its sandboxes).

The start ticks (the process's start time since boot) keep a recycled pid from passing for a live owner.
``detect_owner`` finds our container: an id the kernel shows us (the engine's bind mounts of ``/etc/hostname``
and friends in ``/proc/self/mountinfo``, a cgroup v1 path in ``/proc/self/cgroup``) or our hostname (Docker's
default hostname is the id's first 12 digits), which the engine must know as a running container with our
hostname; anywhere else (a host, a pod whose sidecar engine does not run it) the owner is a host owner.

Whether an owner is alive (``owner_alive``): a host owner of this host seen from the host, or a container owner
in our own container, while its pid still has its start time (a host owner seen from a container, which has a pid
namespace of its own, cannot be checked); a container owner in another container of the engine while
that container runs (a container restarted in place reaps its predecessor's leftovers itself: it sees their pid
no longer has its start time); an owner on another host cannot be checked from here, so it is left alone. A
service that crashed, or was killed with SIGKILL, leaves its containers behind; the next backend that starts on
the engine (and every live one, periodically) removes them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

__all__ = [
    "OWNER_LABEL",
    "SANDBOX_LABEL",
    "Owner",
    "container_candidates",
    "current_owner",
    "detect_owner",
    "own_container",
    "owner_alive",
    "reap_orphans",
    "remove_container",
]

SANDBOX_LABEL = "rlvr.sandbox"
OWNER_LABEL = "rlvr.owner"
CONFLICT = 409  # the engine's answer when a name is taken, or a removal of the same container is in progress
CONTAINER_OWNER = "container:"
CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
# The files Docker bind-mounts from its own dir, /var/lib/docker/containers/<id>/, into every container. Only
# these mount points count: on a host, /proc/self/mountinfo lists other containers' shm mounts from that dir.
ENGINE_MOUNT_POINTS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})
_MOUNTED_ID = re.compile(r"/containers/([0-9a-f]{64})/")
_CGROUP_ID = re.compile(r"[/-]([0-9a-f]{64})(?:\.scope)?$")  # cgroup v1: /docker/<id>, /system.slice/docker-<id>.scope
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass(frozen=True)
class Owner:
    host: str  # the hostname ("" in an owner parsed from a container label)
    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: the process's start time since boot, in clock ticks
    container: str | None = None  # the engine's id of the container the process runs in

    def label(self) -> str:
        where = f"{CONTAINER_OWNER}{self.container}" if self.container else self.host
        return f"{where}/{self.pid}/{self.start_ticks}"

    def slug(self) -> str:
        """The owner in a form a container name may hold."""
        where = f"c{self.container[:12]}" if self.container else self.host
        return _NAME_UNSAFE.sub("-", f"{where}-{self.pid}-{self.start_ticks}")

    @classmethod
    def parse(cls, label: str) -> Owner | None:
        parts = label.rsplit("/", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        where, pid, ticks = parts[0], int(parts[1]), int(parts[2])
        if not where.startswith(CONTAINER_OWNER):  # a host label, as every owner was labelled before containers
            return cls(host=where, pid=pid, start_ticks=ticks)
        container = where.removeprefix(CONTAINER_OWNER)
        if not CONTAINER_ID.fullmatch(container):
            return None
        return cls(host="", pid=pid, start_ticks=ticks, container=container)


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return int(stat.rpartition(")")[2].split()[19])


def _process_alive(owner: Owner) -> bool:
    return _start_ticks(owner.pid) == owner.start_ticks


def current_owner() -> Owner:
    """This process as a host owner (``detect_owner`` adds its container, when it runs in one of the engine)."""
    pid = os.getpid()
    return Owner(host=socket.gethostname(), pid=pid, start_ticks=_start_ticks(pid) or 0)


def owner_alive(owner: Owner, here: Owner, client: Any | None = None) -> bool:
    """Whether ``owner`` still runs, as seen by ``here`` (this process) through ``client``'s engine; when it
    cannot be told (another host, no engine, an engine that does not answer), assume it does."""
    if owner.container is None:
        # Only a process outside every container shares the host's pid namespace: from a container (even one with
        # the host's hostname, as network_mode: host gives it) a host owner cannot be checked.
        return owner.host != here.host or here.container is not None or _process_alive(owner)
    if owner.container == here.container:  # our own container: one pid namespace
        return _process_alive(owner)
    return client is None or _container_running(client, owner.container)


def _container_running(client: Any, container: str) -> bool:
    try:
        info = client.api.inspect_container(container)
    except docker.errors.NotFound:
        return False
    except (docker.errors.DockerException, OSError):  # the engine did not answer: leave it alone
        return True
    if not str(info.get("Id", "")).startswith(container):  # a name that looks like an id: not that container
        return False
    return bool(info.get("State", {}).get("Running"))


def container_candidates(mountinfo: str, cgroup: str, hostname: str) -> list[str]:
    """Ids (or id prefixes) of the container this process may run in, from what the kernel shows it; best first."""
    found: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in ENGINE_MOUNT_POINTS and (match := _MOUNTED_ID.search(fields[3])):
            found.append(match.group(1))
    for line in cgroup.splitlines():
        if match := _CGROUP_ID.search(line.rpartition(":")[2]):
            found.append(match.group(1))
    if CONTAINER_ID.fullmatch(hostname):
        found.append(hostname)
    return list(dict.fromkeys(found))


def own_container(client: Any, candidates: Iterable[str], hostname: str) -> str | None:
    """The full id of the first candidate that ``client``'s engine runs with our hostname (ours, then)."""
    for candidate in candidates:
        try:
            info = client.api.inspect_container(candidate)
        except (docker.errors.DockerException, OSError):
            continue
        container = str(info.get("Id", ""))
        running = bool(info.get("State", {}).get("Running"))
        if container.startswith(candidate) and running and info.get("Config", {}).get("Hostname") == hostname:
            return container
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def detect_owner(client: Any) -> Owner:
    """This process as an owner, marked with its container when it runs in one of ``client``'s engine.

    Blocking (the docker SDK): call it from a worker thread.
    """
    owner = current_owner()
    candidates = container_candidates(_read("/proc/self/mountinfo"), _read("/proc/self/cgroup"), owner.host)
    container = own_container(client, candidates, owner.host)
    return owner if container is None else dataclasses.replace(owner, container=container)


def reap_orphans(client: Any, here: Owner | None = None) -> int:
    """Remove the rlvr containers whose owner process is gone; return how many were removed.

    Blocking (the docker SDK): call it from a worker thread.
    """
    here = here or current_owner()
    removed = 0
    alive: dict[Owner, bool] = {}  # an owner has many containers (every slot, its claim): one check per owner
    # the low-level list: one request (containers.list() inspects each one, and races with their removal)
    for container in client.api.containers(all=True, filters={"label": f"{SANDBOX_LABEL}=1"}):
        owner = Owner.parse((container.get("Labels") or {}).get(OWNER_LABEL, ""))
        if owner is not None and owner not in alive:
            alive[owner] = owner_alive(owner, here, client)
        if owner is not None and alive[owner]:
            continue
        removed += remove_container(client, container["Id"])
    return removed


def remove_container(client: Any, container_id: str) -> bool:
    """Remove a container, running or not; False when it was already gone or someone else is removing it."""
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code != CONFLICT:  # a conflict: its removal is already in progress
            raise
        return False
    return True
