"""`POST /v1/score`: score a batch of completions."""

from __future__ import annotations

import logging
import time
from collections import Counter

from fastapi import APIRouter, Depends

from service.deps import EngineDep, State, require_token
from service.engine import Engine, Scored, sample_of
from service.errors import ApiError
from service.logs import fields
from service.models import ComponentResult, ErrorBody, GroupStats, ItemResult, ScoreRequest, ScoreResponse
from service.state import AppState

__all__ = ["OVERLOADED", "router", "score_batch"]

log = logging.getLogger("rlvr.service")

router = APIRouter(prefix="/v1", tags=["score"], dependencies=[Depends(require_token)])

# The answer of every scoring front door to a batch its executors refused (see service.executors), or one over
# the client's limit of batches in flight (see service.lifecycle).
OVERLOADED = {
    "model": ErrorBody,
    "description": "`overloaded`: the sandbox queue is full; `too_many_batches`: this client has "
    "RLVR_MAX_CONCURRENT_BATCHES_PER_CLIENT batches in flight. Retry after `Retry-After` seconds.",
}

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong `Authorization: Bearer <token>`."},
    413: {"model": ErrorBody, "description": "Too many items or too many bytes."},
    422: {"model": ErrorBody, "description": "Malformed body, unknown checker, profile or setting."},
    429: OVERLOADED,
    503: {"model": ErrorBody, "description": "`shutting_down` or `not_ready`: retry after `Retry-After` seconds."},
}


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS, summary="Score a batch of completions")
async def score(body: ScoreRequest, state: State, engine: EngineDep) -> ScoreResponse:
    """Every item gets exactly one result, in input order, with its id; one bad item never fails the batch."""
    return await score_batch(body, state, engine, door="/v1/score")


async def score_batch(body: ScoreRequest, state: AppState, engine: Engine, *, door: str) -> ScoreResponse:
    """The one path every scoring front door takes: the request limit, resolve the spec, run, log, answer."""
    limit = state.settings.max_items
    if len(body.items) > limit:
        message = f"{len(body.items)} items, more than the limit of {limit} per request (RLVR_MAX_ITEMS)"
        raise ApiError(413, "too_many_items", message)
    started = time.perf_counter()
    plans = engine.resolver.resolve(body.items, rewards=body.rewards, profile=body.profile)
    scored = await engine.run([sample_of(item) for item in body.items], plans, [item.group for item in body.items])
    _log_batch(door, body, scored, time.perf_counter() - started)
    return response_of(body, scored)


def _log_batch(door: str, body: ScoreRequest, scored: Scored, duration_s: float) -> None:
    """One line per batch: counts only, never an item's text."""
    statuses: dict[str, Counter[str]] = {}
    for outcome in scored.items:
        for name, result in outcome.components.items():
            statuses.setdefault(name, Counter())[str(result.status)] += 1
    masked = sum(outcome.mask for outcome in scored.items)
    items, duration_ms = len(scored.items), round(duration_s * 1000, 1)
    extra = fields(
        door=door,
        profile=body.profile,
        items=items,
        masked=masked,
        checkers={name: dict(counts) for name, counts in statuses.items()},
        duration_ms=duration_ms,
    )
    log.info("scored %d items (%d masked) via %s in %.1f ms", items, masked, door, duration_ms, extra=extra)


def response_of(body: ScoreRequest, scored: Scored) -> ScoreResponse:
    results = [
        ItemResult(
            id=item.id,
            reward=outcome.reward,
            mask=outcome.mask,
            failure_kind=outcome.failure_kind,
            failure_reason=outcome.failure_reason,
            components={
                name: ComponentResult(
                    score=result.score,
                    status=result.status,
                    details=result.details,
                    failure_kind=result.failure_kind,
                    failure_reason=result.failure_reason,
                )
                for name, result in outcome.components.items()
            },
        )
        for item, outcome in zip(body.items, scored.items, strict=True)
    ]
    groups = {
        name: GroupStats(size=g.size, mean=g.mean, std=g.std, uniform=g.uniform) for name, g in scored.groups.items()
    }
    return ScoreResponse(results=results, groups=groups)
