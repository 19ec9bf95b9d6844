"""`POST /v1/score`: score a batch of completions."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.deps import EngineDep, State, require_token
from service.engine import Engine, Scored, sample_of
from service.errors import ApiError
from service.models import ComponentResult, ErrorBody, GroupStats, ItemResult, ScoreRequest, ScoreResponse
from service.state import AppState

__all__ = ["OVERLOADED", "router", "score_batch"]

router = APIRouter(prefix="/v1", tags=["score"], dependencies=[Depends(require_token)])

# The answer of every scoring front door to a batch its executors refused (see service.executors).
OVERLOADED = {"model": ErrorBody, "description": "The sandbox queue is full; retry after `Retry-After` seconds."}

_ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorBody, "description": "Too many items or too many bytes."},
    422: {"model": ErrorBody, "description": "Malformed body, unknown checker, profile or setting."},
    429: OVERLOADED,
}


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS, summary="Score a batch of completions")
async def score(body: ScoreRequest, state: State, engine: EngineDep) -> ScoreResponse:
    """Every item gets exactly one result, in input order, with its id; one bad item never fails the batch."""
    return await score_batch(body, state, engine)


async def score_batch(body: ScoreRequest, state: AppState, engine: Engine) -> ScoreResponse:
    """The one path every scoring front door takes: the request limit, resolve the spec, run, answer."""
    if len(body.items) > state.settings.max_items:
        raise ApiError(413, "too_many_items", f"{len(body.items)} items > {state.settings.max_items} (RLVR_MAX_ITEMS)")
    plans = engine.resolver.resolve(body.items, rewards=body.rewards, profile=body.profile)
    scored = await engine.run([sample_of(item) for item in body.items], plans, [item.group for item in body.items])
    return response_of(body, scored)


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
