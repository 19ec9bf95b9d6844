"""`/healthz` (alive), `/readyz` (pools up, not shutting down), `/metrics` (Prometheus).

All three answer without a bearer token: Kubernetes probes and Prometheus scrapes send none, and none of them
shows a token or a completion.
"""

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


@router.get("/readyz", summary="The worker pool is up and not shutting down; which sandbox backend serves code")
async def readyz(state: State) -> JSONResponse:
    engine = state.engine
    if state.lifecycle.draining:  # load balancers stop sending here while the batches in flight finish
        return JSONResponse({"status": "shutting_down", "workers": None, "sandbox": None}, status_code=503)
    if not state.ready:
        return JSONResponse({"status": "starting", "workers": None, "sandbox": None}, status_code=503)
    sandbox = engine.sandbox
    cpu = engine.executors.get("cpu")
    body: dict[str, Any] = {
        "status": "ready",
        "workers": cpu.stats() if cpu is not None else None,
        "sandbox": {
            "backend": sandbox.name if sandbox else None,
            "available": sandbox is not None,
            "languages": list(sandbox.languages) if sandbox else [],
            "reason": None if sandbox else engine.sandbox_reason,
            "stats": engine.executors["sandbox"].stats() if sandbox else None,
        },
    }
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
