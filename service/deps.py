"""Dependencies shared by the routers."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.engine import Engine
from service.errors import ApiError
from service.state import AppState

__all__ = ["EngineDep", "State", "get_engine", "get_state", "require_token"]


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.rlvr
    return state


State = Annotated[AppState, Depends(get_state)]


def get_engine(state: State) -> Engine:
    if not state.ready:
        raise ApiError(503, "not_ready", "the scoring engine is not running", headers={"Retry-After": "1"})
    return state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def require_token(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    token = state.settings.api_token
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
