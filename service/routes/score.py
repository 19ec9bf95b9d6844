"""`POST /v1/score`: score a batch of completions."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends

from service.deps import State, get_scorer, require_token
from service.errors import ApiError
from service.models import ErrorBody, ScoreRequest, ScoreResponse
from service.scoring import Scorer
from service.state import AppState

__all__ = ["router", "score_batch"]

router = APIRouter(prefix="/v1", tags=["score"], dependencies=[Depends(require_token)])

_ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorBody, "description": "Too many items or too many bytes."},
    422: {"model": ErrorBody, "description": "Malformed body, unknown checker, profile or setting."},
    429: {"model": ErrorBody, "description": "The sandbox queue is full; retry after `Retry-After` seconds."},
}


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS, summary="Score a batch of completions")
async def score(body: ScoreRequest, state: State, scorer: Annotated[Scorer, Depends(get_scorer)]) -> ScoreResponse:
    """Every item gets exactly one result, in input order, with its id; one bad item never fails the batch."""
    return await score_batch(body, state, scorer)


async def score_batch(body: ScoreRequest, state: AppState, scorer: Scorer) -> ScoreResponse:
    """The one path every front door scores through: limits, resolve the spec, score."""
    if len(body.items) > state.settings.max_items:
        raise ApiError(413, "too_many_items", f"{len(body.items)} items > {state.settings.max_items} (RLVR_MAX_ITEMS)")
    for index, item in enumerate(body.items):
        if item.tests is not None and len(item.tests) > state.settings.max_tests:
            limit = state.settings.max_tests
            raise ApiError(413, "too_many_tests", f"items.{index}.tests has {len(item.tests)} tests > {limit}")
    started = time.perf_counter()
    plans = scorer.resolve(body)
    state.metrics.stage.labels("validate").observe(time.perf_counter() - started)
    return await scorer.score(body, plans)
