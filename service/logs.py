"""Logs: one line per event, as text or as one JSON object, each with the request id of the request it belongs to.

``configure_logging`` (called by ``rlvr serve``, and by each worker process it starts) installs one handler on the
root logger; uvicorn's loggers propagate to it, and uvicorn's own access log is replaced by ``RequestContext``'s,
which carries the request id.
A JSON line holds ``time``, ``level``, ``logger``, ``message``, ``request_id`` (inside a request) and the
record's structured fields (``log.info(..., extra=fields(items=3))``), plus ``exception`` for a traceback.

``RequestContext`` takes the request id from ``X-Request-ID`` when it is 1-128 visible ASCII characters (else
makes one), returns it in the response's ``X-Request-ID`` and logs one access line per request: health and
metrics probes at debug, the rest at info. Nothing logged here holds a header's value other than the request id,
or any body: no token and no completion text reaches a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # only the types: worker processes import this module and never load Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "JsonFormatter",
    "RequestContext",
    "TextFormatter",
    "accept_request_id",
    "configure_logging",
    "current_setup",
    "fields",
    "request_header",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("rlvr_request_id", default=None)

_FIELDS = "rlvr_fields"  # the LogRecord attribute that holds a line's structured fields
_VALID_ID = re.compile(r"[!-~]{1,128}")
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = logging.getLogger("rlvr.access")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: structured fields, keys of the JSON line (``key=value`` in text)."""
    return {_FIELDS: values}


def accept_request_id(given: str | None) -> str:
    """The client's request id when it is safe to echo and log, else a fresh one."""
    if given is not None and _VALID_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in getattr(record, _FIELDS, {}).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        text = super().formatMessage(record)
        extra = dict(getattr(record, _FIELDS, {}))
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            extra["request_id"] = request_id
        pairs = (f"{key}={_text_value(value)}" for key, value in extra.items())
        return " ".join([text, *pairs])


def _text_value(value: Any) -> str:
    return value if isinstance(value, str) and value and " " not in value else json.dumps(value, separators=(",", ":"))


LogSetup = tuple[str, Literal["text", "json"]]
_setup: LogSetup | None = None  # what configure_logging set up, for the worker processes to do the same


def configure_logging(level: str, log_format: Literal["text", "json"]) -> None:
    global _setup
    _setup = (level, log_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a warning is a log line too, in the same format


def current_setup() -> LogSetup | None:
    """The level and format this process logs with, when ``configure_logging`` set them (``rlvr serve``)."""
    return _setup


class RequestContext:
    """ASGI middleware: the request id (context, response header) and one access line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(request_header(scope, b"x-request-id"))
        # Not reset afterwards: each request is a task of its own, and the 500 handler, which runs outside this
        # middleware, logs with it.
        REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._log(scope, status, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, status: int, duration_s: float) -> None:
        path: str = scope["path"]
        level = logging.DEBUG if path in _PROBES and status < 400 else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = scope.get("client")
        extra = fields(
            method=scope["method"],
            path=path,
            status=status,
            duration_ms=round(duration_s * 1000, 1),
            client=client[0] if client else None,
        )
        access_log.log(level, "%s %s %d", scope["method"], path, status, extra=extra)


def request_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
