"""`GET /v1/profiles`: the reward profiles this server knows, with their specs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.deps import EngineDep, State
from service.models import RewardSpec

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["checkers"])


class ProfilesResponse(BaseModel):
    default: str = Field(description="The profile of `/get_reward` requests that name none (RLVR_DEFAULT_PROFILE).")
    profiles: dict[str, RewardSpec] = Field(
        description='Name -> reward spec, as `/v1/score`\'s `rewards`; send `"profile": name` in its place.',
        examples=[{"math": {"math": {"weight": 1.0}}}],
    )


@router.get("/profiles", response_model=ProfilesResponse, summary="List reward profiles with their specs")
async def list_profiles(state: State, engine: EngineDep) -> ProfilesResponse:
    return ProfilesResponse(default=state.settings.default_profile, profiles=engine.profiles)
