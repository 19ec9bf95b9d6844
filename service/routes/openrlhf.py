"""OpenRLHF's remote reward protocol: `POST /get_reward` and `POST /get_reward/{profile}`.

OpenRLHF (`--remote_rm_url http://host:port/get_reward`) posts the decoded prompt+response as `query`, the prompt
as `prompts` and the dataset's label as `labels`; it cannot send a reward spec, so a profile chooses the checkers.
Each query loses its prompt prefix and any trailing end-of-turn tokens, and the rest is scored against its label
as the reference, through the same path as `/v1/score`.

A masked item (we could not judge it) gets reward 0.0 and score 0.0 *and* 1 in `extra_logs.rlvr_masked`: OpenRLHF
has no way to drop a sample, so the 0.0 is a placeholder that the masked list makes visible, never a judgement.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.deps import EngineDep, State, require_token
from service.engine import Engine
from service.errors import ApiError
from service.models import ErrorBody, ItemResult, ScoreItem, ScoreRequest, ScoreResponse
from service.routes.score import OVERLOADED, score_batch
from service.state import AppState

__all__ = ["router"]

log = logging.getLogger("rlvr.service")

router = APIRouter(tags=["openrlhf"], dependencies=[Depends(require_token)])

# Decoded with special tokens kept, a response ends in its chat template's end-of-turn and padding tokens
# (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, `</s>`): they are not the model's text, and a strict format check
# would fail every completion on them.
_TOKEN_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


def strip_end_tokens(text: str) -> str:
    """The text without the end-of-turn tokens (and the whitespace around them) at its end; linear in its length
    (a completion is untrusted: a regex with nested repeats backtracks quadratically on a long run of spaces)."""
    end, found = len(text), False
    while True:
        cut = end
        while cut and text[cut - 1].isspace():
            cut -= 1
        if text.endswith("</s>", 0, cut):
            end, found = cut - 4, True
            continue
        if text.endswith("|>", 0, cut):
            start = text.rfind("<|", max(0, cut - 44), cut - 2)
            if start >= 0 and _TOKEN_NAME.fullmatch(text, start + 2, cut - 2):
                end, found = start, True
                continue
        return text[:cut] if found else text


class GetRewardRequest(BaseModel):
    # OpenRLHF sends more fields as it evolves; they are accepted and ignored.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "query": ["<|user|>What is 1/2 + 1/2?<|assistant|>\\boxed{1}<|im_end|>"],
                    "prompts": ["<|user|>What is 1/2 + 1/2?<|assistant|>"],
                    "labels": ["1"],
                }
            ]
        },
    )

    query: list[str] = Field(description="Prompt + response, decoded text, one per sample.")
    prompts: list[str] = Field(description="The prompt of each query; stripped from its start.")
    labels: list[str | None] = Field(description="The reference answer of each sample.")

    @field_validator("labels", mode="before")
    @classmethod
    def _number_labels(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]


class GetRewardResponse(BaseModel):
    rewards: list[float] = Field(description="The profile's combined reward; 0.0 for a masked item.")
    scores: list[float] = Field(description="The rewards clipped to [0, 1] (OpenRLHF's dynamic filtering reads them).")
    extra_logs: dict[str, list[float]] = Field(
        description="One list per checker (its score, 0.0 where it gave none); `rlvr_masked` (1 = could not be "
        "judged, its reward is a placeholder); `rlvr_masked_count` (the batch's count, repeated per sample); "
        "`rlvr_prompt_not_found` (1 = the query did not start with its prompt and was scored whole)."
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Too many samples or too many bytes."},
    422: {"model": ErrorBody, "description": "Malformed body, lists of different lengths, or an unknown profile."},
    429: OVERLOADED,
}


@router.post("/get_reward", response_model=GetRewardResponse, responses=_ERRORS, summary="OpenRLHF remote reward")
async def get_reward(body: GetRewardRequest, state: State, engine: EngineDep) -> GetRewardResponse:
    """Score with the default profile (RLVR_DEFAULT_PROFILE)."""
    return await _get_reward(body, state.settings.default_profile, state, engine)


@router.post(
    "/get_reward/{profile}",
    response_model=GetRewardResponse,
    responses=_ERRORS,
    summary="OpenRLHF remote reward with a named profile",
)
async def get_reward_with_profile(
    profile: str, body: GetRewardRequest, state: State, engine: EngineDep
) -> GetRewardResponse:
    """Score with the profile named in the path (see `GET /v1/profiles`)."""
    engine.resolver.profile_spec(["path", "profile"], profile)
    return await _get_reward(body, profile, state, engine)


async def _get_reward(body: GetRewardRequest, profile: str, state: AppState, engine: Engine) -> GetRewardResponse:
    _check_lengths(body)
    items, not_found = _items(body)
    if not_found:
        where = ", ".join(map(str, sorted(not_found)[:20]))
        log.warning("get_reward: queries %s do not start with their prompt; scored whole", where)
    response = await score_batch(ScoreRequest(profile=profile, items=items), state, engine, door="/get_reward")
    return _openrlhf_response(response, not_found)


def _check_lengths(body: GetRewardRequest) -> None:
    lengths = {"query": len(body.query), "prompts": len(body.prompts), "labels": len(body.labels)}
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ApiError(422, "length_mismatch", f"query, prompts and labels must be the same length: {counts}")


def _items(body: GetRewardRequest) -> tuple[list[ScoreItem], set[int]]:
    items: list[ScoreItem] = []
    not_found: set[int] = set()
    for index, (query, prompt, label) in enumerate(zip(body.query, body.prompts, body.labels, strict=True)):
        response = query[len(prompt) :] if query.startswith(prompt) else query
        if not query.startswith(prompt):
            not_found.add(index)
        completion = strip_end_tokens(response)
        items.append(ScoreItem(id=str(index), completion=completion, prompt=prompt, reference=label))
    return items, not_found


def _openrlhf_response(response: ScoreResponse, not_found: set[int]) -> GetRewardResponse:
    results = response.results
    rewards = [0.0 if r.reward is None else r.reward for r in results]
    masked = [1.0 if r.mask else 0.0 for r in results]
    extra_logs = _component_logs(results)
    extra_logs["rlvr_masked"] = masked
    extra_logs["rlvr_masked_count"] = [sum(masked)] * len(results)
    extra_logs["rlvr_prompt_not_found"] = [1.0 if i in not_found else 0.0 for i in range(len(results))]
    return GetRewardResponse(rewards=rewards, scores=[min(1.0, max(0.0, r)) for r in rewards], extra_logs=extra_logs)


def _component_logs(results: list[ItemResult]) -> dict[str, list[float]]:
    names = list(dict.fromkeys(name for r in results for name in r.components))
    logs: dict[str, list[float]] = {}
    for name in names:
        scores = [r.components[name].score if name in r.components else None for r in results]
        logs[name] = [0.0 if s is None else s for s in scores]
    return logs
