"""Errors of the SDK.

::

    RLVRError
    ├── TransportError       the service could not be reached (connection refused, time-out)
    └── APIError             the service answered with an error (.status_code, .code, .message)
        └── OverloadedError  429 / 503 after the SDK's retries (.retry_after_s)
"""

from __future__ import annotations

__all__ = ["APIError", "OverloadedError", "RLVRError", "TransportError"]


class RLVRError(Exception):
    pass


class TransportError(RLVRError):
    pass


class APIError(RLVRError):
    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class OverloadedError(APIError):
    def __init__(self, status_code: int, code: str, message: str, retry_after_s: float) -> None:
        super().__init__(status_code, code, message)
        self.retry_after_s = retry_after_s
