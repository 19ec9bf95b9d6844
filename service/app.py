"""`create_app(settings)`: the FastAPI app, with a lifespan that starts and stops the pools."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from sandboxes.base import SandboxError
from service.errors import install_error_handlers
from service.limits import BodySizeLimit
from service.metrics import Metrics
from service.pool import WorkerPool
from service.routes import checkers, health, nemo_gym, openrlhf, profiles, run, sandbox_fusion, score
from service.scoring import Scorer, load_profiles
from service.settings import Settings
from service.state import AppState

__all__ = ["create_app"]

log = logging.getLogger("rlvr.service")

_DESCRIPTION = """
Reward and verification service for RL with verifiable rewards: math correctness (math-verify), the R1
format, language consistency and code tests in locked-down sandboxes, scored in batches on worker processes
that cannot hang a training step. Wrong answers get real scores; items we could not judge are masked.
"""


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate in echoed text can never break the encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def _start_sandbox(state: AppState) -> None:
    settings = state.settings
    if settings.sandbox_backend == "none":
        state.sandbox_reason = "code sandboxes are disabled (RLVR_SANDBOX_BACKEND=none)"
        return
    from sandboxes.config import SandboxConfig
    from sandboxes.select import open_sandbox

    config = SandboxConfig(
        pool_size=settings.sandbox_pool_size,
        queue_limit=settings.sandbox_queue_limit,
        max_jobs_per_slot=settings.sandbox_max_jobs,
    )
    try:
        state.sandbox = await open_sandbox(settings.sandbox_backend, config)
    except SandboxError as exc:
        state.sandbox_reason = str(exc)
        log.warning("code sandboxes unavailable: %s", exc)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.rlvr
    settings = state.settings
    pool = WorkerPool(
        settings.workers,
        chunk_size=settings.chunk_size,
        grace_s=settings.hard_grace_s,
        on_kill=lambda checker: state.metrics.worker_kills.labels(checker).inc(),
    )
    state.pool = pool
    state.metrics.watch("rlvr_pool", pool.stats)
    state.metrics.watch("rlvr_sandbox", lambda: getattr(state.sandbox, "stats", dict)() if state.sandbox else None)
    await pool.start()
    await _start_sandbox(state)
    state.scorer = Scorer(
        pool,
        state.metrics,
        cache_size=settings.cache_size,
        sandbox=state.sandbox,
        sandbox_reason=state.sandbox_reason,
        sandbox_queue_limit=settings.sandbox_queue_limit,
        profiles=load_profiles(settings.profiles, settings.default_profile),
    )
    state.ready = True
    try:
        yield
    finally:
        state.ready = False
        if state.sandbox is not None:
            await state.sandbox.close()
        await pool.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    load_profiles(settings.profiles, settings.default_profile)  # a bad profile stops the service here, named
    app = FastAPI(
        title="rlvr",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=_lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.rlvr = AppState(settings=settings, metrics=Metrics())
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for routes in (score, profiles, openrlhf, sandbox_fusion, nemo_gym, run, checkers, health):
        app.include_router(routes.router)
    return app
