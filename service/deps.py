"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.engine import Engine
from service.errors import ApiError
from service.state import AppState

__all__ = ["EngineDep", "State", "get_engine", "get_state", "require_token"]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.rlvr
    return state


State = Annotated[AppState, Depends(get_state)]


def get_engine(state: State) -> Engine:
    if not state.ready:
        raise ApiError(503, "not_ready", "the scoring engine is not running", headers={"Retry-After": "1"})
    return state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def require_token(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    # async: a sync dependency would run on a thread, and the token file's reload is not meant to race itself.
    if not state.tokens.enabled:
        return
    if authorization is None:
        raise ApiError(401, "unauthorized", "missing header `Authorization: Bearer <token>`", headers=_CHALLENGE)
    if state.tokens.client_of(authorization) is None:
        message = "wrong bearer token: send `Authorization: Bearer <token>` with a token this service accepts"
        raise ApiError(401, "unauthorized", message, headers=_CHALLENGE)
