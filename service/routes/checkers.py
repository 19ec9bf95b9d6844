"""`GET /v1/checkers`: the checkers, their settings and defaults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from rewards import CHECKERS, load_checker

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["checkers"])


@router.get("/checkers", summary="List checkers with their settings and defaults")
async def list_checkers() -> dict[str, Any]:
    checkers = {}
    for name in CHECKERS:
        checker = load_checker(name)
        checkers[name] = {
            "description": checker.description,
            "runs_in": checker.runs_in,
            "settings": checker.settings_model.model_json_schema(),
            "defaults": checker.settings_model.model_validate({}).model_dump(mode="json"),
        }
    return {"checkers": checkers}
