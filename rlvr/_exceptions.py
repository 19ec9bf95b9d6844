"""Errors of the SDK.

::

    RLVRError
    ├── TransportError       no answer: the service could not be reached, or the connection broke, on every try
    │   └── RequestTimeout   a time-out of `Timeouts` passed (.timeout_s)
    └── APIError             the service answered with an error (.status_code, .code, .message)
        └── OverloadedError  429 / 502 / 503 on every try (.retry_after_s)

A call either returns every item's result or raises one of these: never a partial list.
"""

from __future__ import annotations

__all__ = ["APIError", "OverloadedError", "RLVRError", "RequestTimeout", "TransportError"]


class RLVRError(Exception):
    pass


class TransportError(RLVRError):
    pass


class RequestTimeout(TransportError):
    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


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
