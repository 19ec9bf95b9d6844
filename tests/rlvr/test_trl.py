"""`rlvr.trl`: TRL's reward-function call shape against the real service."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

from rlvr import RewardClient
from rlvr.trl import AsyncRewardFunction, RewardFunction, _prompt_groups
from tests.conftest import LiveService

RIGHT = "<think>\nhalf of one\n</think>\n<answer>\n$\\boxed{\\frac{1}{2}}$\n</answer>"
WRONG = "<think>\nhmm\n</think>\n<answer>\n$\\boxed{3}$\n</answer>"
BARE = "the answer is $\\boxed{0.5}$"


class Logs:
    """TRL's log_extra and log_metric, recorded."""

    def __init__(self) -> None:
        self.extra: dict[str, list[Any]] = {}
        self.metrics: dict[str, float] = {}

    def kwargs(self) -> dict[str, Any]:
        return {"log_extra": self._extra, "log_metric": self.metrics.__setitem__}

    def _extra(self, column: str, values: list[Any]) -> None:
        assert column not in self.extra, f"{column} logged twice for one batch: TRL would make it too long"
        self.extra[column] = values


def call(function: Any, completions: list[Any], prompts: list[Any] | None = None, **columns: Any) -> Any:
    prompts = prompts or ["What is 1/2?"] * len(completions)
    columns.setdefault("solution", ["0.5"] * len(completions))
    result = function(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None, **columns)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize("kind", [RewardFunction, AsyncRewardFunction])
def test_it_scores_a_trl_batch_after_a_pickle_round_trip(live_service: LiveService, kind: type) -> None:
    function = pickle.loads(pickle.dumps(kind(live_service.url, profile="r1-math")))
    assert call(function, [RIGHT, WRONG, BARE]) == [1.2, 0.2, 1.0]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        pytest.param([{"role": "assistant", "content": RIGHT}], 1.2, id="one_assistant_message"),
        pytest.param(
            [{"role": "assistant", "content": "let me check", "tool_calls": []}, {"role": "tool", "content": "0.5"},
             {"role": "assistant", "content": RIGHT}],
            1.2,
            id="tool_turns_score_the_last_answer",
        ),
        pytest.param(
            [{"role": "assistant", "reasoning_content": "half", "content": "<answer>\n$\\boxed{0.5}$\n</answer>"}],
            1.2,
            id="parsed_out_reasoning_is_put_back",
        ),
    ],
)  # fmt: skip
def test_conversational_completions(live_service: LiveService, completion: Any, expected: float) -> None:
    function = RewardFunction(live_service.url, profile="r1-math")
    prompt = [{"role": "system", "content": "Think first."}, {"role": "user", "content": "What is 1/2?"}]
    assert call(function, [completion], prompts=[prompt]) == [pytest.approx(expected)]


def test_a_masked_item_is_none_not_zero(live_service: LiveService) -> None:
    function = RewardFunction(live_service.url, rewards={"math": {}})
    assert call(function, [RIGHT, RIGHT], solution=["0.5", None]) == [1.0, None]


def test_columns_map_dataset_columns_to_item_fields(live_service: LiveService) -> None:
    function = RewardFunction(live_service.url, rewards={"math": {}}, columns={"reference": "gold"})
    assert call(function, [RIGHT, WRONG], gold=[0.5, 0.5], solution=["3", "3"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("columns", "batch", "message"),
    [
        pytest.param({"reference": "gold"}, {"solution": ["1"]}, "column 'gold' .mapped to", id="mapped_missing"),
        pytest.param(None, {"difficulty": [1]}, "no reference column", id="nothing_to_judge_by"),
    ],
)  # fmt: skip
def test_a_missing_column_raises_at_the_first_call_naming_it(
    columns: dict[str, str] | None, batch: dict[str, Any], message: str
) -> None:
    function = RewardFunction("http://127.0.0.1:9", rewards={"math": {}}, columns=columns)  # never reached
    with pytest.raises(KeyError, match=message):
        function(prompts=["p"], completions=["c"], **batch)


def test_an_unknown_item_field_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown item fields .'answer'."):
        RewardFunction("http://x", rewards={"math": {}}, columns={"answer": "solution"})


def test_it_logs_every_component(live_service: LiveService) -> None:
    logs = Logs()
    function = RewardFunction(live_service.url, profile="r1-math")
    call(function, [RIGHT, WRONG], solution=["0.5", "0.5"], **logs.kwargs())
    assert logs.extra["rlvr_math"] == [1.0, 0.0]
    assert logs.extra["rlvr_format"] == [1.0, 1.0]
    assert logs.extra["rlvr_failure"] == ["", ""]
    assert logs.metrics["rlvr/math/mean"] == 0.5 and logs.metrics["rlvr/format/mean"] == 1.0
    assert logs.metrics["rlvr/masked_frac"] == 0.0
    assert logs.metrics["rlvr/no_signal_frac"] == 0.0  # one prompt, two different rewards


def test_components_give_one_function_per_component_scored_once(
    live_service: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[int] = []
    original = RewardClient.submit

    def counting(self: RewardClient, items: Any, *args: Any, **kw: Any) -> Any:
        submitted.append(len(items))
        return original(self, items, *args, **kw)

    monkeypatch.setattr(RewardClient, "submit", counting)
    functions = RewardFunction(live_service.url, profile="r1-math").components()
    assert [f.__name__ for f in functions] == ["rlvr_math", "rlvr_format", "rlvr_language"]
    functions = pickle.loads(pickle.dumps(functions))
    logs = Logs()
    scores = [call(f, [RIGHT, WRONG], **logs.kwargs()) for f in functions]
    assert scores[:2] == [[1.0, 0.0], [1.0, 1.0]]
    assert submitted == [2]  # one request for the three functions
    assert logs.extra["rlvr_math"] == [1.0, 0.0] and logs.extra["rlvr_failure"] == ["", ""]


@pytest.mark.parametrize(
    ("profile", "rewards", "names"),
    [
        pytest.param("r1-math", None, ["math", "format", "language"], id="the_profile"),
        pytest.param(
            "r1-math", {"format": {"mode": "partial"}}, ["math", "format", "language"], id="a_setting_changed"
        ),
        pytest.param("math", {"format": {}}, ["math", "format"], id="a_checker_added"),
        pytest.param("r1-math", {"language": None}, ["math", "format"], id="a_checker_dropped"),
        pytest.param(None, {"math": {}, "format": None}, ["math"], id="no_profile"),
    ],
)
def test_components_are_what_the_server_scores(
    live_service: LiveService, profile: str | None, rewards: dict[str, Any] | None, names: list[str]
) -> None:
    """The profile with ``rewards`` laid over it, as /v1/score merges them, not one or the other."""
    functions = RewardFunction(live_service.url, profile=profile, rewards=rewards).components()
    assert [f.component for f in functions] == names
    with RewardClient(live_service.url) as client:
        scored = client.score([{"completion": RIGHT, "reference": "0.5"}], rewards, profile=profile)
    assert sorted(scored.results[0].components) == sorted(names)


def test_trl_sees_the_async_variant_as_async() -> None:
    from trl.trainer.utils import is_async_callable

    assert is_async_callable(AsyncRewardFunction("http://x", profile="math"))
    assert not is_async_callable(RewardFunction("http://x", profile="math"))


@pytest.mark.parametrize(
    ("prompts", "groups"),
    [
        pytest.param(["a", "a", "b", "b"], ["p0", "p0", "p1", "p1"], id="repeated_per_generation"),
        pytest.param(["a", "b", "a"], ["p0", "p1", "p2"], id="same_text_in_another_row_is_another_prompt"),
    ],
)
def test_the_group_is_the_prompt_index(prompts: list[str], groups: list[str]) -> None:
    assert _prompt_groups(prompts) == groups
