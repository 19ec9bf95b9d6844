"""Slot uid blocks claimed on the Docker engine, which every service on one Docker host shares.

A service's uid block (``sandboxes._uids``) is claimed with a lock file, which services in containers with
private ``/run`` and ``/tmp`` cannot see of one another. The engine they talk to is shared, and it lets only one
container have a name: a claim is a container named after the block (``rlvr-uids-<base>-<size>-<block>``),
created from the runtime image and never started (it costs the engine a directory, no process), labelled with its
owner like every sandbox (``sandboxes._reaper``). A 409 Conflict means the block is taken; a claim whose owner is
gone is removed (by id, so that a claim someone retook meanwhile survives) and taken again. The orphan reaper
removes claims of dead owners too, and the owner removes its own when its last sandbox closes.
"""

from __future__ import annotations

import functools
from typing import Any

import docker.errors

from sandboxes._reaper import CONFLICT, OWNER_LABEL, SANDBOX_LABEL, Owner, owner_alive, remove_container
from sandboxes.base import SandboxUnavailable

__all__ = ["CLAIM_LABEL", "EngineClaims"]

CLAIM_LABEL = "rlvr.uid-claim"  # the block's name: only a container carrying it is ever taken for a claim
CLAIM_TRIES = 3  # create, find a dead owner's claim, remove it, create again (someone may win the race)


class EngineClaims:
    """A ``sandboxes._uids.BlockRegistry`` on one Docker engine. Blocking (the docker SDK): call it from a
    worker thread."""

    def __init__(self, client: Any, here: Owner, image: str) -> None:
        self.client = client
        self._here = here
        self._image = image

    @functools.cached_property
    def key(self) -> str:
        """The engine's own id: the SDK shows every unix socket as one base URL (``http+docker://localhost``)."""
        try:
            return f"engine:{self.client.info()['ID']}"
        except (docker.errors.DockerException, OSError, KeyError) as exc:
            raise SandboxUnavailable(f"cannot identify the Docker engine: {exc}") from exc

    def claim(self, name: str) -> bool:
        try:
            for _ in range(CLAIM_TRIES):
                if self._create(name):
                    return True
                holder = self._holder(name)
                if holder is None:
                    continue  # removed meanwhile: try again
                container_id, owner = holder
                if owner is None:
                    return False  # a container of that name that is no claim: the name is not ours to take
                if owner == self._here.label():
                    return True  # this process's own (another of its sandboxes, or a release that failed)
                parsed = Owner.parse(owner)
                if parsed is not None and owner_alive(parsed, self._here, self.client):
                    return False
                self._remove(container_id)  # its owner is gone: the block is free again
            return False
        except (docker.errors.DockerException, OSError) as exc:
            raise SandboxUnavailable(f"cannot claim slot uid block {name} on the Docker engine: {exc}") from exc

    def release(self, name: str) -> None:
        try:
            holder = self._holder(name)
            if holder is not None and holder[1] == self._here.label():
                self._remove(holder[0])
        except (docker.errors.DockerException, OSError) as exc:
            raise SandboxUnavailable(f"cannot release slot uid block {name} on the Docker engine: {exc}") from exc

    def _create(self, name: str) -> bool:
        labels = {SANDBOX_LABEL: "1", OWNER_LABEL: self._here.label(), CLAIM_LABEL: name}
        try:
            self.client.api.create_container(
                self._image,
                command=["true"],
                name=name,
                labels=labels,
                network_disabled=True,
                host_config=self.client.api.create_host_config(network_mode="none"),
            )
        except docker.errors.APIError as exc:
            if exc.status_code == CONFLICT:
                return False
            raise
        return True

    def _holder(self, name: str) -> tuple[str, str | None] | None:
        """(id, owner label) of the container named so, None when there is none; the label is None when that
        container is not a claim."""
        try:
            info = self.client.api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        labels = info.get("Config", {}).get("Labels") or {}
        if labels.get(CLAIM_LABEL) != name:
            return str(info["Id"]), None
        return str(info["Id"]), str(labels.get(OWNER_LABEL, ""))

    def _remove(self, container_id: str) -> None:
        remove_container(self.client, container_id)
