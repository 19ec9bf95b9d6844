"""Dependencies shared by the routers."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.errors import ApiError
from service.scoring import Scorer
from service.state import AppState

__all__ = ["get_state", "get_scorer", "require_token", "State"]


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.rlvr
    return state


State = Annotated[AppState, Depends(get_state)]


def get_scorer(state: State) -> Scorer:
    if state.scorer is None or not state.ready:
        raise ApiError(503, "not_ready", "the worker pool is not running", headers={"Retry-After": "1"})
    return state.scorer


def require_token(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    token = state.settings.api_token
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
