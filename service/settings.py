"""The one settings model of the service, with the sandbox's settings nested in it.

Every field, nested ones included, is reachable three ways, all generated from the model by ``FIELDS``:

- the keyword of ``Settings(...)`` (nested: ``Settings(sandbox={"pool_size": 4})``);
- an environment variable: ``RLVR_`` + the path in upper case (``RLVR_WORKERS``, ``RLVR_SANDBOX_POOL_SIZE``);
- an ``rlvr serve`` flag: ``--`` + the path with dashes (``--workers``, ``--sandbox-pool-size``).

A flag beats the environment, which beats the default. The README's settings table is ``markdown_table()``
(``python -m service.settings``), and a test fails when the README's copy is stale.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from sandboxes.config import SandboxConfig, cores

__all__ = ["FIELDS", "SandboxSettings", "Setting", "Settings", "is_token", "markdown_table"]

ENV_PREFIX = "RLVR_"


def is_token(text: str) -> bool:
    """A bearer token we can accept: visible ASCII, no spaces, no commas (the list separator)."""
    return bool(text) and all("!" <= char <= "~" and char != "," for char in text)


def _read_profiles(value: str) -> Any:
    """`RLVR_PROFILES` is JSON or YAML text, or the path of a JSON or YAML file, holding a mapping."""
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value).expanduser()
        if path.is_file():
            text = path.read_text(encoding="utf-8")
        elif "\n" not in value and ":" not in value:
            raise ValueError(f"neither JSON or YAML text nor the path of a file: {value[:200]!r}")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"not valid JSON or YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("must be a mapping of profile name -> reward spec")
    return data


class SandboxSettings(SandboxConfig):
    """The sandbox backend's settings (``SandboxConfig``) and which backend serves code."""

    backend: Literal["auto", "docker", "bubblewrap", "none"] = Field(
        default="auto", description="Code sandbox backend; `auto` tries docker, then bubblewrap; `none` disables code."
    )


class Settings(BaseSettings):
    # Errors never echo an input: it may be a token.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)

    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind.")
    workers: int = Field(default_factory=cores, ge=1, le=256, description="CPU worker processes.")
    chunk_size: int = Field(default=16, ge=1, le=1024, description="Most items sent to a worker at once.")
    hard_grace_s: float = Field(
        default=1.0, gt=0, description="Seconds past an item's soft time-out before its worker is killed."
    )
    cache_size: int = Field(
        default=100_000, ge=0, description="Entries in the cross-batch result cache (0 disables it)."
    )
    max_items: int = Field(default=8192, ge=1, description="Most items in one request (more -> 413).")
    max_body_bytes: int = Field(default=64 << 20, ge=1024, description="Largest request body in bytes (more -> 413).")
    max_tests: int = Field(
        default=1000,
        ge=1,
        description="Most tests of one code item; an item with more is masked `invalid_item`, the rest of its batch "
        "is scored.",
    )
    max_code_bytes: int = Field(
        default=1 << 20,
        ge=1,
        description="Largest program (UTF-8 bytes) the service runs: a scored completion over it is not run and "
        "scores 0 (the completion's doing, never a mask; the rest of its batch is scored); a `/v1/run` source over "
        "it is a 413, a `/run_code` one a `SandboxError`.",
    )
    max_concurrent_batches_per_client: int = Field(
        default=0,
        ge=0,
        description="Most requests one client may have in flight on the scoring and code routes (more -> 429, "
        "`/run_code` 504); a client is its bearer token, or its address when no token is configured; 0: no limit.",
    )
    api_token: SecretStr | None = Field(
        default=None, description="A bearer token: requests must carry `Authorization: Bearer <token>`."
    )
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="More bearer tokens, comma-separated; any configured token is accepted.",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="A file of bearer tokens, one per line, read again within a second of a change: rotate by "
        "adding the new token, moving clients over, then removing the old one.",
    )
    profiles: Annotated[dict[str, dict[str, dict[str, Any]]], NoDecode] = Field(
        default_factory=dict,
        description="Reward profiles: name -> reward spec (as `/v1/score`'s `rewards`), as JSON or YAML text or the "
        "path of a JSON or YAML file; they add to or replace the built-in `r1-math`, `math` and `code`.",
    )
    default_profile: str = Field(
        default="r1-math", description="Profile of `/get_reward` and `/verify` requests that name none."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: every log line is one JSON object (for log collectors)."
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM: seconds to finish the batches in flight (new ones get 503) before the rest are "
        "answered 503 and the service exits.",
    )
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings, description="Code sandboxes.")

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles_from_text(cls, value: Any) -> Any:
        return _read_profiles(value) if isinstance(value, str) else value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _tokens_from_text(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("api_token", "api_tokens")
    @classmethod
    def _visible_tokens(cls, value: SecretStr | list[SecretStr] | None) -> SecretStr | list[SecretStr] | None:
        # RFC 6750's token characters are visible ASCII (no spaces, no commas): any other could never match a header.
        tokens = value if isinstance(value, list) else [value] if value is not None else []
        if not all(is_token(token.get_secret_value()) for token in tokens):
            raise ValueError("a token must be visible ASCII, without spaces or commas")
        return value

    @field_validator("api_tokens_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError(f"cannot read {str(value)!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvSource(settings_cls)


# -- the field table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One leaf setting: where it lives in the model and its two names outside it."""

    path: tuple[str, ...]
    info: FieldInfo
    annotation: Any

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(self.path).upper()

    @property
    def flag(self) -> str:
        return "--" + "-".join(self.path).replace("_", "-")

    @property
    def dest(self) -> str:
        return ".".join(self.path)

    @property
    def choices(self) -> tuple[str, ...] | None:
        args = [a for a in typing.get_args(self.annotation) if a is not type(None)] or [self.annotation]
        if len(args) == 1 and typing.get_origin(args[0]) is Literal:
            return tuple(str(choice) for choice in typing.get_args(args[0]))
        return None

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.annotation)

    def shown_default(self) -> str:
        if self.info.default_factory is cores:
            return "cores"
        if self.info.default_factory is not None:
            return json.dumps(self.info.default_factory())  # type: ignore[call-arg]
        if self.info.default is None:
            return "unset"
        return json.dumps(self.info.default)


def _walk(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[Setting]:
    hints = typing.get_type_hints(model, include_extras=False)
    for name, info in model.model_fields.items():
        annotation = hints.get(name, info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, (*prefix, name))
        else:
            yield Setting((*prefix, name), info, annotation)


FIELDS: tuple[Setting, ...] = tuple(_walk(Settings))


class _EnvSource(PydanticBaseSettingsSource):
    """``RLVR_*`` variables, named by ``FIELDS``, as a nested dict; an empty value unsets an optional field."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        return nested_values({s.dest: os.environ[s.env] for s in FIELDS if s.env in os.environ})


def nested_values(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"sandbox.pool_size": "4"}`` -> ``{"sandbox": {"pool_size": "4"}}``; "" unsets an optional setting."""
    by_dest = {s.dest: s for s in FIELDS}
    out: dict[str, Any] = {}
    for dest, value in flat.items():
        setting = by_dest[dest]
        if value == "" and setting.optional:
            value = None
        node = out
        for part in setting.path[:-1]:
            node = node.setdefault(part, {})
        node[setting.path[-1]] = value
    return out


def markdown_table() -> str:
    """The README's settings table, made from the model."""
    lines = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for setting in FIELDS:
        default = setting.shown_default()
        default = default if default in ("cores", "unset") else f"`{default}`"
        description = (setting.info.description or "").replace("|", "\\|")
        lines.append(f"| `{setting.env}` | `{setting.flag}` | {default} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")  # noqa: T201
