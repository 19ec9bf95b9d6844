"""Error responses: a stable ``code``, a human ``message``, never a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Send

from service.executors import Overloaded
from service.specs import SpecError

__all__ = ["ApiError", "error_response", "install_error_handlers", "send_error"]

log = logging.getLogger("rlvr.service")


class ApiError(Exception):
    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status_code: int,
    code: str,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status_code, headers=headers)


async def send_error(
    send: Send, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """The same error body from ASGI middleware, which runs outside the app's exception handlers."""
    body = json.dumps({"code": code, "message": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Drop pydantic's echo of the input: it can be a megabyte of someone's completion.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = _validation_detail(exc)
    where = ".".join(str(part) for part in detail[0]["loc"]) if detail else "body"
    return error_response(422, "invalid_request", f"invalid request at {where}: {detail[0]['msg']}", detail)


async def _on_spec(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    where = ".".join(str(part) for part in exc.loc)
    detail = [{"loc": exc.loc, "msg": str(exc), "type": "invalid_spec", "valid": exc.valid}]
    valid = f"; valid: {', '.join(exc.valid)}" if exc.valid else ""
    return error_response(422, "invalid_spec", f"{where}: {exc}{valid}", detail)


async def _on_overloaded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Overloaded)
    retry = str(max(1, round(exc.retry_after_s)))
    return error_response(429, "overloaded", str(exc), headers={"Retry-After": retry})


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, headers=exc.headers)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the service log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(SpecError, _on_spec)
    app.add_exception_handler(Overloaded, _on_overloaded)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
