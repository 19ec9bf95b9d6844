"""Request and response bodies of the HTTP API (what `/docs` shows)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ComponentResult",
    "ErrorBody",
    "GroupStats",
    "ItemResult",
    "ScoreItem",
    "ScoreRequest",
    "ScoreResponse",
    "SpecOverrides",
]

RewardSpec = dict[str, dict[str, Any]]
# Overrides on top of a profile or a batch spec: per checker, per setting; `null` drops that checker.
SpecOverrides = dict[str, dict[str, Any] | None]

_SPEC_DESCRIPTION = (
    "Checkers to run, by name, each with its settings (see `GET /v1/checkers`); `weight` scales the component "
    "in the item's reward. With `profile`: overrides merged on top of it, per checker and per setting; `null` "
    "drops a checker of the profile."
)
_PROFILE_DESCRIPTION = "A reward profile configured on the server (see `GET /v1/profiles`), in place of `rewards`."


def clean_text(value: str) -> str:
    """Replace lone surrogates (valid JSON escapes, invalid Unicode) so nothing downstream chokes on them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Echoed in the result.", examples=["q17-s3"], max_length=1024)
    group: str | None = Field(default=None, description="Group (prompt) id for GRPO statistics.", examples=["q17"])
    completion: str = Field(description="The model's completion (response only).")
    prompt: str | None = Field(
        default=None, description="The prompt; used to detect a prefilled `<think>` or a language."
    )
    reference: str | None = Field(default=None, description="Gold answer for math: LaTeX, plain text or a number.")
    language: str | None = Field(default=None, description="Programming language of a code item (python, cpp, ...).")
    tests: list[dict[str, Any]] | None = Field(default=None, description="Tests of a code item.")
    profile: str | None = Field(
        default=None,
        description="This item's own profile: replaces the batch's `profile` and `rewards` for this item.",
        examples=["code"],
    )
    rewards: SpecOverrides | None = Field(
        default=None,
        description="Per-item overrides of the reward settings, per checker and per setting; `null` drops a checker.",
        examples=[{"language": None}],
    )

    @field_validator("reference", mode="before")
    @classmethod
    def _number_reference(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        return str(value) if isinstance(value, int | float) else value

    @field_validator("id", "group", "completion", "prompt", "reference")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value)


_EXAMPLE_COMPLETION = (
    "<think>\nHalf of one is one half, so the answer is a half.\n</think>\n<answer>\n$\\boxed{\\frac{1}{2}}$\n</answer>"
)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rewards": {
                        "math": {"weight": 1.0},
                        "format": {"weight": 0.2, "mode": "strict"},
                        "language": {"weight": 0.1, "target": "en"},
                    },
                    "items": [
                        {
                            "id": "q17-s3",
                            "group": "q17",
                            "completion": _EXAMPLE_COMPLETION,
                            "reference": "\\frac{1}{2}",
                        }
                    ],
                }
            ]
        },
    )

    rewards: SpecOverrides | None = Field(default=None, description=_SPEC_DESCRIPTION)
    profile: str | None = Field(default=None, description=_PROFILE_DESCRIPTION, examples=["r1-math"])
    items: list[ScoreItem] = Field(description="Completions to score; results come back in this order.")


class ComponentResult(BaseModel):
    score: float | None = Field(description="The checker's score; null when it could not judge or does not apply.")
    status: str = Field(description="ok, no_answer, timeout, not_applicable, bad_reference, invalid_item, error, ...")
    details: dict[str, Any] = Field(default_factory=dict)
    failure_kind: str | None = None
    failure_reason: str | None = None


class ItemResult(BaseModel):
    id: str
    reward: float | None = Field(description="Weighted sum of component scores; null when any could not be judged.")
    mask: bool = Field(description="True when the item could not be judged: leave it out of the update.")
    failure_kind: str | None = None
    failure_reason: str | None = None
    components: dict[str, ComponentResult]


class GroupStats(BaseModel):
    size: int
    mean: float | None
    std: float | None = Field(description="Population standard deviation of the group's rewards.")
    uniform: bool = Field(description="Every member got the same reward: the group carries no GRPO signal.")


class ScoreResponse(BaseModel):
    results: list[ItemResult]
    groups: dict[str, GroupStats]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str
    detail: list[dict[str, Any]] | None = None
