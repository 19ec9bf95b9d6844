"""Service settings: one pydantic-settings class, env prefix ``RLVR_``, validated at start."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _read_profiles(value: str) -> Any:
    """`RLVR_PROFILES` is JSON text or the path of a JSON file (PyYAML is not a dependency, so no YAML)."""
    if value.lstrip().startswith("{"):
        return json.loads(value)
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"neither a JSON object nor the path of a file: {value[:200]!r}")
    return json.loads(path.read_text(encoding="utf-8"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RLVR_", frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind.")
    workers: int = Field(default_factory=_default_workers, ge=1, le=256, description="CPU worker processes.")
    chunk_size: int = Field(default=16, ge=1, le=1024, description="Most items sent to a worker at once.")
    hard_grace_s: float = Field(
        default=1.0, gt=0, description="Seconds past an item's soft time-out before its worker is killed."
    )
    cache_size: int = Field(
        default=100_000, ge=0, description="Entries in the cross-batch result cache (0 disables it)."
    )
    max_items: int = Field(default=8192, ge=1, description="Most items in one request (more -> 413).")
    max_body_bytes: int = Field(default=64 << 20, ge=1024, description="Largest request body in bytes (more -> 413).")
    max_tests: int = Field(default=1000, ge=1, description="Most tests in one code item (more -> 413).")
    api_token: str | None = Field(
        default=None, description="When set, requests must carry `Authorization: Bearer <token>`."
    )
    sandbox_backend: Literal["auto", "docker", "bubblewrap", "none"] = Field(
        default="auto", description="Code sandbox backend; `auto` tries docker, then bubblewrap; `none` disables code."
    )
    sandbox_pool_size: int = Field(default_factory=_default_workers, ge=1, le=256, description="Warm sandboxes.")
    sandbox_queue_limit: int = Field(
        default=4096, ge=0, description="Code jobs allowed to wait for a sandbox (more -> 429)."
    )
    sandbox_max_jobs: int = Field(default=200, ge=1, description="Jobs a sandbox runs before it is recycled.")
    profiles: Annotated[dict[str, dict[str, dict[str, Any]]], NoDecode] = Field(
        default_factory=dict,
        description="Reward profiles: name -> reward spec (as `/v1/score`'s `rewards`), as JSON text or the path of a "
        "JSON file; they add to or replace the built-in `r1-math`, `math` and `code`.",
    )
    default_profile: str = Field(
        default="r1-math", description="Profile of `/get_reward` requests that name none in the path."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles_from_text(cls, value: Any) -> Any:
        return _read_profiles(value) if isinstance(value, str) else value
