"""Bearer tokens that rotate without downtime: several are valid at once, and a token file is read again when it
changes.

The accepted set is the union of ``RLVR_API_TOKEN``, ``RLVR_API_TOKENS`` and the lines of ``RLVR_API_TOKENS_FILE``;
authentication is on when any of them is configured (an empty file then accepts nothing: it never fails open).
Rotation: add the new token to the file, move the clients over, remove the old token. The file is looked at (a
``stat``) at most once a second and read again when it changed; a file that cannot be read keeps the last set.

Only SHA-256 digests of the tokens are kept, and every digest is compared in constant time, so neither a token's
text nor which one matched leaks through timing or a log line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from service.settings import Settings, is_token

__all__ = ["TokenSet"]

log = logging.getLogger("rlvr.auth")

_RECHECK_S = 1.0


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("latin-1", "replace")).digest()


class TokenSet:
    def __init__(
        self,
        tokens: Sequence[str] = (),
        file: Path | None = None,
        *,
        recheck_s: float = _RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.file = file
        self.recheck_s = recheck_s
        self._clock = clock
        self._static = frozenset(_digest(token) for token in tokens)
        self._from_file: frozenset[bytes] = frozenset()
        self._signature: tuple[int, int, int] | None = None
        self._read_at = 0.0  # wall-clock time of the last read, to catch a second write within one mtime tick
        self._checked_at = clock()
        self._failing = False
        if file is not None:
            self._reload(file.stat())
            if not self._from_file and not self._static:
                log.warning("the API tokens file %s holds no token: every guarded request gets 401", file)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSet:
        tokens = [secret.get_secret_value() for secret in settings.api_tokens]
        if settings.api_token is not None:
            tokens.append(settings.api_token.get_secret_value())
        return cls(tokens, settings.api_tokens_file)

    @property
    def enabled(self) -> bool:
        return bool(self._static) or self.file is not None

    def client_of(self, authorization: str | None) -> str | None:
        """The client a valid ``Authorization: Bearer <token>`` header names (a digest, never the token), or None."""
        scheme, _, given = (authorization or "").strip().partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return None
        self._refresh()
        digest = _digest(given)
        matched = False
        for known in self._static | self._from_file:  # no early exit: the time taken does not say which matched
            matched |= secrets.compare_digest(known, digest)
        return "token:" + digest[:8].hex() if matched else None

    # -- the file ------------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self.file is None or self._clock() - self._checked_at < self.recheck_s:
            return
        self._checked_at = self._clock()
        try:
            stat = self.file.stat()
            # A write within the mtime tick of the last read leaves the signature as it was: read such a file again.
            if _signature(stat) != self._signature or self._read_at - stat.st_mtime < 1.0:
                self._reload(stat)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot read the API tokens file %s (%s): keeping its last tokens", self.file, exc.strerror)
            self._failing = True

    def _reload(self, stat: os.stat_result) -> None:
        assert self.file is not None
        self._read_at = time.time()
        lines = self.file.read_text(encoding="latin-1").splitlines()
        tokens = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        bad = sum(not is_token(token) for token in tokens)
        if bad:  # a count, never the text: it may be a token with a typo
            log.warning("the API tokens file %s: %d lines are not tokens (visible ASCII, no spaces)", self.file, bad)
        digests = frozenset(_digest(token) for token in tokens if is_token(token))
        if digests != self._from_file or self._failing:
            log.info("API tokens file %s read: %d tokens", self.file, len(digests))
        self._from_file = digests
        self._signature = _signature(stat)
        self._failing = False


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    # The inode changes when a file is replaced by a rename (an atomic write, a Kubernetes Secret update).
    return stat.st_mtime_ns, stat.st_size, stat.st_ino
