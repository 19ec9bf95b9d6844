"""TRL: rlvr as a reward function of `GRPOTrainer`, `RLOOTrainer` and the experimental `AsyncGRPOTrainer`.

::

    from rlvr.trl import RewardFunction
    reward = RewardFunction("http://rlvr:8000", profile="r1-math", columns={"reference": "solution"})
    GRPOTrainer(model=..., reward_funcs=[reward], ...)                      # one reward, combined by the service
    GRPOTrainer(model=..., reward_funcs=reward.components("math", "format"), args=GRPOConfig(reward_weights=...))

TRL calls ``reward(prompts=, completions=, completion_ids=, **columns, trainer_state=, log_extra=, log_metric=)``
with one value per completion in every list, each prompt repeated once per generation. The object returns one
float per completion, or ``None`` where the service masked the item (TRL turns it into NaN and leaves the item out
of the group baseline: a 0 would punish the policy for our failure). It imports nothing of TRL, holds no
connection when pickled (AsyncGRPO pickles reward functions into a child process) and opens its client lazily in
each process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rlvr._base import RewardSpec, merged_spec
from rlvr._client import RewardClient
from rlvr.config import Retries, Timeouts
from rlvr.types import ScoreResult

__all__ = ["AsyncRewardFunction", "RewardFunction"]

# Item fields a dataset column can feed; "reference" is found by itself when the mapping is not given.
FIELDS = ("reference", "tests", "language", "group", "profile", "rewards")
_REFERENCE_COLUMNS = ("reference", "solution", "answer")
_TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


@dataclass
class _Scorer:
    """What every function made from one `RewardFunction` shares: the client (one per process) and the last few
    batches' results, so that ``components()`` score each batch once."""

    client_options: dict[str, Any]
    rewards: RewardSpec | None
    profile: str | None
    shared: bool = False  # set once components() hands this scorer to several functions
    _pid: int = field(default=-1, repr=False)
    _client: RewardClient | None = field(default=None, repr=False)
    _recent: OrderedDict[str, Future[ScoreResult]] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "client_options": self.client_options,
            "rewards": self.rewards,
            "profile": self.profile,
            "shared": self.shared,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def client(self) -> RewardClient:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client, self._pid = RewardClient(**self.client_options), os.getpid()
                weakref.finalize(self, self._client.close)  # its sockets close with the last function using it
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None

    def submit(self, items: list[dict[str, Any]]) -> Future[ScoreResult]:
        """The batch's result, scored once however many functions ask for it."""
        if not self.shared:  # one function: nothing to share, no key to compute
            return self.client.submit(items, self.rewards, profile=self.profile)
        key = hashlib.sha256(json.dumps(items, sort_keys=True, default=repr).encode()).hexdigest()
        client = self.client  # before the lock: it takes the lock itself
        with self._lock:  # look up and submit at once: two functions asking together send the batch once
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
            future = self._recent[key] = client.submit(items, self.rewards, profile=self.profile)  # never blocks
            while len(self._recent) > 8:
                self._recent.popitem(last=False)
        future.add_done_callback(lambda done: self._forget_failed(key, done))
        return future

    def _forget_failed(self, key: str, future: Future[ScoreResult]) -> None:
        """A failed batch is not remembered: the next call tries again."""
        if future.cancelled() or future.exception() is not None:
            with self._lock:
                if self._recent.get(key) is future:
                    del self._recent[key]


class RewardFunction:
    """A picklable TRL reward function backed by an rlvr service.

    ``urls``: one URL, a list of replicas, or None for ``$RLVR_URL``. ``rewards`` or ``profile``: what to score
    (as ``/v1/score``). ``columns``: item field -> dataset column, e.g. ``{"reference": "solution"}`` or
    ``{"tests": "verification_info", "language": "language"}``; without it the reference comes from the first
    of the columns reference, solution, answer. A mapped column missing from the batch raises at the first call.
    Other keyword arguments (``token``, ``timeouts``, ``retries``, ``batch_size``, ``concurrency``) go to the client.
    """

    def __init__(
        self,
        urls: str | Sequence[str] | None = None,
        *,
        rewards: RewardSpec | None = None,
        profile: str | None = None,
        columns: Mapping[str, str] | None = None,
        name: str = "rlvr",
        token: str | None = None,
        timeouts: Timeouts | None = None,
        retries: Retries | None = None,
        batch_size: int = 512,
        concurrency: int = 8,
    ) -> None:
        if rewards is None and profile is None:
            raise ValueError("pass rewards= or profile=")
        unknown = sorted(set(columns or {}) - set(FIELDS))
        if unknown:
            raise ValueError(f"columns maps unknown item fields {unknown}; fields are {list(FIELDS)}")
        options: dict[str, Any] = {"urls": urls, "token": token, "timeouts": timeouts, "retries": retries}
        options |= {"batch_size": batch_size, "concurrency": concurrency}
        RewardClient(**options).close()  # bad URLs or options fail here, not at the first step
        self._scorer = _Scorer(options, dict(rewards) if rewards is not None else None, profile)
        self.columns = dict(columns) if columns is not None else None
        self.component: str | None = None
        self.logs_failures = True  # the rlvr_failure column: one function per batch logs it
        self.__name__ = name

    def components(self, *names: str) -> list[RewardFunction]:
        """One function per component (``rlvr_<name>``), each returning that component's raw score, for TRL's
        ``reward_weights``. They share this function's client and score each batch once. Without names: the
        components of ``rewards``, or of ``profile`` as the server defines it."""
        names = names or tuple(self._component_names())
        self._scorer.shared = True
        functions = []
        for index, component in enumerate(names):
            function = self._copy()
            function.component, function.__name__ = component, f"rlvr_{component}"
            function.logs_failures = index == 0
            functions.append(function)
        return functions

    def close(self) -> None:
        """Close the connections (of every function made by ``components()`` too); a later call reopens them."""
        self._scorer.close()

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        result = self._scorer.submit(self._items(prompts, completions, kwargs)).result()
        return self._finish(result, kwargs)

    # -- the parts shared with the async variant

    def _items(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        columns = self._columns(kwargs)
        prompt_texts = [_prompt_text(p) for p in prompts]
        groups = _prompt_groups(prompt_texts)
        items = []
        for index, (prompt, completion) in enumerate(zip(prompt_texts, completions, strict=True)):
            item: dict[str, Any] = {"id": str(index), "group": groups[index], "prompt": prompt}
            item["completion"] = _completion_text(completion)
            for item_field, column in columns.items():
                item[item_field] = _field_value(item_field, kwargs[column][index])
            items.append(item)
        return items

    def _columns(self, kwargs: Mapping[str, Any]) -> dict[str, str]:
        available = sorted(k for k in kwargs if k not in _TRL_KWARGS)
        if self.columns is not None:
            for item_field, column in self.columns.items():
                if column not in kwargs:
                    raise KeyError(f"column {column!r} (mapped to {item_field!r}) is not in the batch: {available}")
            return self.columns
        found = next((c for c in _REFERENCE_COLUMNS if c in kwargs), None)
        if found is not None:
            return {"reference": found}
        if "tests" in kwargs:
            return {"tests": "tests"}
        raise KeyError(
            f"no reference column ({', '.join(_REFERENCE_COLUMNS)}) in the batch {available}: "
            "map one with columns={'reference': <column>} (or 'tests' for code)"
        )

    def _finish(self, result: ScoreResult, kwargs: Mapping[str, Any]) -> list[float | None]:
        values = [self._value(item) for item in result.results]
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        log_extra: Callable[[str, list[Any]], None] | None = kwargs.get("log_extra")
        names = [self.component] if self.component else sorted({c for r in result.results for c in r.components})
        if log_extra is not None:
            for name in names:
                log_extra(f"rlvr_{name}", [_component(item, name) for item in result.results])
            if self.logs_failures:
                log_extra("rlvr_failure", [item.failure_kind or "" for item in result.results])
        if log_metric is not None:
            for name in names:
                scores = [s for s in (_component(item, name) for item in result.results) if s is not None]
                if scores:
                    log_metric(f"rlvr/{name}/mean", sum(scores) / len(scores))
            log_metric("rlvr/masked_frac", sum(item.mask for item in result.results) / max(len(result.results), 1))
            if result.groups:
                log_metric("rlvr/no_signal_frac", len(result.no_signal) / len(result.groups))
        return values

    def _value(self, item: Any) -> float | None:
        if item.mask:
            return None
        return item.reward if self.component is None else _component(item, self.component)

    def _component_names(self) -> list[str]:
        """The components the server scores: the profile's (asked of the server) with ``rewards`` laid over it."""
        scorer = self._scorer
        profiles = scorer.client.profiles()["profiles"] if scorer.profile is not None else {}
        return list(merged_spec(profiles, scorer.profile, scorer.rewards))

    def _copy(self) -> RewardFunction:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone


class AsyncRewardFunction(RewardFunction):
    """The same function with an ``async __call__``: TRL runs it concurrently with its other async reward
    functions on its event-loop thread, and it never blocks that loop."""

    async def __call__(  # type: ignore[override]
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        future = self._scorer.submit(self._items(prompts, completions, kwargs))
        return self._finish(await asyncio.wrap_future(future), kwargs)


# ------------------------------------------------------------------------------------------------ the inputs


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence) and prompt and isinstance(prompt[-1], Mapping):
        return _content(prompt[-1])
    raise TypeError(f"a prompt is a string or a list of messages, got {type(prompt).__name__}")


def _completion_text(completion: Any) -> str:
    """The text to score: a plain completion, or the last assistant message of a conversational one, with its
    parsed-out reasoning put back between <think> tags (transformers' ``parse_response`` splits it off)."""
    if isinstance(completion, str):
        return completion
    messages = [completion] if isinstance(completion, Mapping) else list(completion)
    answers = [m for m in messages if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"]
    if not answers:
        raise TypeError("a conversational completion has no assistant message")
    last = answers[-1]
    reasoning = last.get("reasoning_content") or last.get("thinking") or last.get("reasoning")
    content = _content(last)
    return f"<think>\n{reasoning}\n</think>\n{content}" if reasoning else content


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # multimodal parts: keep the text ones
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return str(content)


def _prompt_groups(prompts: Sequence[str]) -> list[str]:
    """GRPO groups: TRL repeats each prompt once per generation, consecutively; the group is the prompt's index."""
    groups, index = [], -1
    for position, prompt in enumerate(prompts):
        if position == 0 or prompt != prompts[position - 1]:
            index += 1
        groups.append(f"p{index}")
    return groups


def _field_value(item_field: str, value: Any) -> Any:
    if item_field == "tests" and isinstance(value, str | bytes):
        return json.loads(value)
    if item_field == "reference" and value is not None and not isinstance(value, str):
        return value if isinstance(value, int | float) else str(value)
    return value


def _component(item: Any, name: str) -> float | None:
    component = item.components.get(name)
    return None if component is None or item.mask else component.score
