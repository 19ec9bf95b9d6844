"""`create_app(settings)`: the FastAPI app, with a lifespan that starts and stops the pools."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from service.auth import TokenSet
from service.engine import Engine
from service.errors import install_error_handlers
from service.lifecycle import BatchGuard, Lifecycle
from service.limits import BodySizeLimit
from service.logs import RequestContext
from service.metrics import Metrics
from service.routes import checkers, health, nemo_gym, openrlhf, profiles, run, sandbox_fusion, score
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


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine: Engine = app.state.rlvr.engine
    await engine.start()
    if engine.sandbox is None:
        log.warning("code sandboxes unavailable: %s", engine.sandbox_reason)
    try:
        yield
    finally:
        await engine.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    engine = Engine(settings, metrics=metrics)  # a bad profile stops the service here, named; pools start later
    app = FastAPI(
        title="rlvr",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=_lifespan,
        default_response_class=SafeJSONResponse,
    )
    tokens = TokenSet.from_settings(settings)
    lifecycle = Lifecycle(settings.max_concurrent_batches_per_client, settings.shutdown_grace_s)
    metrics.watch("rlvr_batches", lifecycle.stats)
    app.state.rlvr = AppState(settings=settings, metrics=metrics, engine=engine, tokens=tokens, lifecycle=lifecycle)
    install_error_handlers(app)
    # The last added is the outermost: every answer, a refusal too, carries X-Request-ID and gets its access line.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BatchGuard, lifecycle=lifecycle, tokens=tokens)
    app.add_middleware(RequestContext)
    for routes in (score, profiles, openrlhf, sandbox_fusion, nemo_gym, run, checkers, health):
        app.include_router(routes.router)
    return app
