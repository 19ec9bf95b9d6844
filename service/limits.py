"""Size limits: ASGI middleware that answers 413 for bodies larger than the configured limit, before they are read
whole, and the code size limit (RLVR_MAX_CODE_BYTES) that every door applies to a program."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import send_error

__all__ = ["BodySizeLimit", "code_too_long"]


def code_too_long(code: str, limit: int) -> str | None:
    """Why ``code`` is too large to run (its UTF-8 size over ``limit``, naming the variable), or None."""
    if 4 * len(code) <= limit:  # a character is at most 4 bytes: surely within, without encoding it
        return None
    size = len(code.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return None
    return f"{size} bytes, over the service's limit of {limit} for code (RLVR_MAX_CODE_BYTES)"


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        message = f"request body exceeds the limit of {self.max_bytes} bytes (RLVR_MAX_BODY_BYTES)"
        await send_error(send, 413, "too_large", message)
