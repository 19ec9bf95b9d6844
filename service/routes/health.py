"""`/healthz` (alive), `/readyz` (pools up), `/metrics` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import State

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The worker pool is up; which sandbox backend serves code")
async def readyz(state: State) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "ready" if state.ready else "starting",
        "workers": state.pool.stats() if state.pool else None,
        "sandbox": {
            "backend": state.sandbox.name if state.sandbox else None,
            "available": state.sandbox is not None,
            "languages": list(getattr(state.sandbox, "languages", ())),
            "reason": None if state.sandbox else state.sandbox_reason,
            "stats": getattr(state.sandbox, "stats", dict)() if state.sandbox else None,
        },
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
