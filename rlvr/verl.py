"""veRL: ``compute_score`` for ``reward.custom_reward_function`` (veRL 0.9.1's reward loop).

::

    reward.custom_reward_function.path=pkg://rlvr.verl
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.url=http://rlvr:8000      # or $RLVR_URL; a list for replicas
    +reward.custom_reward_function.reward_kwargs.masked_score=0.0

veRL calls ``compute_score`` once per sample, with keyword arguments, from many asyncio tasks in each reward-loop
worker. Every call of a process goes to one shared batcher that coalesces the calls made within ``window_ms``
into one ``/v1/score`` batch, so the service sees batches, not single items.

The answer is a dict with the same keys for every sample (veRL indexes every sample by the first one's keys):
``score``, one key per component of every profile the mapping can reach (0.0 where a sample has no such
component), and ``rlvr_masked`` (1.0 when the service could not judge the sample). veRL cannot leave a sample
out, so a masked sample scores ``masked_score``; filter on ``rlvr_masked`` to drop it from your metrics.

``data_source`` picks the profile, following veRL's own dispatch (`DEFAULT_SOURCES`); ``sources`` in
``reward_kwargs`` adds or replaces entries, e.g. ``{"my_set": "math", "my_code": {"profile": "code",
"ground_truth": "apps"}}``, and ``profile`` forces one profile for every sample.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from rlvr._base import merged_spec
from rlvr._client import RewardClient
from rlvr.types import ItemResult, ScoreResult

__all__ = ["DEFAULT_SOURCES", "Source", "apps_tests", "compute_score", "compute_score_sync"]

_log = logging.getLogger("rlvr.verl")


@dataclass(frozen=True)
class Source:
    """How to score one ``data_source``: a server profile, per-checker overrides, and how to read
    ``ground_truth`` (``reference``: the gold answer; ``apps``: veRL's JSON ``{"inputs", "outputs", "fn_name"}``)."""

    profile: str
    rewards: Mapping[str, Mapping[str, Any] | None] | None = None
    ground_truth: Literal["reference", "apps"] = "reference"

    def __post_init__(self) -> None:
        if self.ground_truth not in ("reference", "apps"):  # a typo would read every sample as APPS tests
            raise ValueError(f"ground_truth must be 'reference' or 'apps', got {self.ground_truth!r}")


_MATH = Source("math")
_CODE = Source("code", ground_truth="apps")

# veRL 0.9.1's default_compute_score dispatch, mapped onto rlvr profiles. A key ending in * matches a prefix.
DEFAULT_SOURCES: dict[str, Source] = {
    "openai/gsm8k": Source("math", rewards={"math": {"answer_mode": "gsm8k"}}),
    "lighteval/MATH": _MATH,
    "DigitalLearningGmbH/MATH-lighteval": _MATH,
    "HuggingFaceH4/MATH-500": _MATH,
    "math": _MATH,
    "math_dapo": _MATH,
    "math_dapo_reasoning": _MATH,
    "aime*": _MATH,
    "codecontests": _CODE,
    "apps": _CODE,
    "taco": _CODE,
    "codeforces": _CODE,
}


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """veRL's reward-loop entry point (awaited). ``kwargs``: veRL's own (ignored) and ``reward_kwargs``: ``url``
    (str or list), ``token``, ``profile``, ``sources``, ``masked_score`` (default 0.0), ``window_ms`` (5),
    ``max_batch`` (256)."""
    scorer = _scorer(kwargs)
    request = scorer.request(data_source, solution_str, ground_truth)
    if not scorer.knows_keys:
        await asyncio.to_thread(scorer.keys)  # one GET per process, off veRL's event loop
    if isinstance(request, str):
        return scorer.masked(request)
    return scorer.answer(await asyncio.wrap_future(scorer.batcher.submit(request)))


def compute_score_sync(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """The same for callers that need a plain function (veRL's ``remote`` reward manager); calls from many
    threads share the batcher too."""
    scorer = _scorer(kwargs)
    request = scorer.request(data_source, solution_str, ground_truth)
    if isinstance(request, str):
        return scorer.masked(request)
    return scorer.answer(scorer.batcher.submit(request).result())


# -------------------------------------------------------------------------------------------- the scorer


class _Scorer:
    """One configuration's sources, component keys and batcher (one per process and configuration)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.profile: str | None = options.get("profile")
        self.sources = {**DEFAULT_SOURCES, **{k: _source(k, v) for k, v in dict(options.get("sources") or {}).items()}}
        self.masked_score = float(options.get("masked_score", 0.0))
        client = RewardClient(
            options.get("url"), token=options.get("token"), batch_size=int(options.get("max_batch", 256))
        )
        self.batcher = _Batcher(client, float(options.get("window_ms", 5.0)) / 1000, int(options.get("max_batch", 256)))
        self._keys: list[str] | None = None
        self._lock = threading.Lock()

    def request(self, data_source: str, solution: str, ground_truth: Any) -> dict[str, Any] | str:
        """The item to score, or why it cannot be (then it is masked without a round trip)."""
        source = self._source_of(data_source)
        item: dict[str, Any] = {"completion": solution, "profile": self.profile or source.profile}
        if source.rewards:
            item["rewards"] = {name: None if spec is None else dict(spec) for name, spec in source.rewards.items()}
        if source.ground_truth == "reference":
            item["reference"] = str(ground_truth)
            return item
        try:
            item["tests"], item["language"] = apps_tests(ground_truth)
        except ValueError as exc:
            return f"ground_truth: {exc}"
        return item

    def answer(self, result: ItemResult) -> dict[str, float]:
        out = {"score": self.masked_score if result.mask or result.reward is None else float(result.reward)}
        for key in self.keys():
            component = result.components.get(key)
            out[key] = 0.0 if result.mask or component is None or component.score is None else component.score
        out["rlvr_masked"] = 1.0 if result.mask else 0.0
        return out

    def masked(self, reason: str) -> dict[str, float]:
        _log.warning("rlvr: sample masked without scoring: %s", reason)
        return {"score": self.masked_score, **dict.fromkeys(self.keys(), 0.0), "rlvr_masked": 1.0}

    @property
    def knows_keys(self) -> bool:
        return self._keys is not None

    def keys(self) -> list[str]:
        """Every component any sample of this configuration can get, asked of the server once."""
        with self._lock:
            if self._keys is None:
                profiles = self.batcher.client.profiles()["profiles"]
                self._keys = sorted(_components(self._reachable(), profiles))
            return self._keys

    def _reachable(self) -> list[Source]:
        if self.profile is not None:
            return [Source(self.profile, s.rewards, s.ground_truth) for s in self.sources.values()]
        return list(self.sources.values())

    def _source_of(self, data_source: str) -> Source:
        if data_source in self.sources:
            return self.sources[data_source]
        for key, source in self.sources.items():
            if key.endswith("*") and data_source.startswith(key[:-1]):
                return source
        if self.profile is not None:
            return Source(self.profile)
        raise ValueError(
            f"no rlvr profile for data_source {data_source!r}: add it to reward_kwargs.sources "
            f"(known: {sorted(self.sources)}) or set reward_kwargs.profile"
        )


def _source(name: str, raw: Any) -> Source:
    if isinstance(raw, Source):
        return raw
    if isinstance(raw, str):
        return Source(raw)
    if isinstance(raw, Mapping) and "profile" in raw:
        return Source(str(raw["profile"]), raw.get("rewards"), raw.get("ground_truth", "reference"))
    raise ValueError(f"sources[{name!r}] must be a profile name or {{profile, rewards?, ground_truth?}}, got {raw!r}")


def _components(sources: Sequence[Source], profiles: Mapping[str, Mapping[str, Any]]) -> set[str]:
    names: set[str] = set()
    for source in sources:
        names |= set(merged_spec(profiles, source.profile, source.rewards))
    return names


def apps_tests(ground_truth: Any) -> tuple[list[dict[str, Any]], str]:
    """veRL's code ground truth (JSON ``{"inputs": [...], "outputs": [...], "fn_name"?: ..., "language"?: ...}``,
    as APPS, TACO and CodeContests rows carry it) as rlvr tests, and the language.

    Without ``fn_name`` each pair is a stdin/stdout test. With it each input is the argument list of one call and
    each output the value it must return; APPS wraps that value in a one-element list, which is unwrapped (veRL's
    local judge accepts either form; a function whose answer is itself a one-element list is judged on the
    unwrapped value).
    """
    raw = json.loads(ground_truth) if isinstance(ground_truth, str | bytes) else ground_truth
    if not isinstance(raw, Mapping):
        raise ValueError("expected a JSON object with inputs and outputs")
    inputs, outputs, fn_name = raw.get("inputs"), raw.get("outputs"), raw.get("fn_name")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
        raise ValueError("inputs and outputs must be non-empty lists of the same length")
    language = str(raw.get("language") or "python")
    if not fn_name:
        return [
            {"type": "stdin_stdout", "input": _text(i), "output": _text(o)}
            for i, o in zip(inputs, outputs, strict=True)
        ], language
    tests = [
        {"type": "call", "fn_name": str(fn_name), "args": i if isinstance(i, list) else [i], "expected": _unwrap(o)}
        for i, o in zip(inputs, outputs, strict=True)
    ]
    return tests, language


def _text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def _unwrap(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


# ------------------------------------------------------------------------------------------- the batcher


class _Batcher:
    """Coalesces single items from any thread or event loop into ``/v1/score`` batches: a batch leaves when it
    holds ``max_batch`` items or ``window_s`` after its first item arrived."""

    def __init__(self, client: RewardClient, window_s: float, max_batch: int) -> None:
        self.client = client
        self.window_s = window_s
        self.max_batch = max_batch
        self.batches = 0  # sent so far, for whoever wants to see the coalescing work
        self._pending: list[tuple[dict[str, Any], Future[ItemResult]]] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="rlvr-verl-batcher", daemon=True).start()

    def submit(self, item: dict[str, Any]) -> Future[ItemResult]:
        future: Future[ItemResult] = Future()
        with self._ready:
            self._pending.append((item, future))
            self._ready.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._pending))
                self._ready.wait_for(lambda: len(self._pending) >= self.max_batch, timeout=self.window_s)
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self._send(batch)

    def _send(self, batch: list[tuple[dict[str, Any], Future[ItemResult]]]) -> None:
        items = [{**item, "id": str(index)} for index, (item, _) in enumerate(batch)]
        self.batches += 1
        self.client.submit(items).add_done_callback(lambda done: _settle(batch, done))


def _settle(batch: list[tuple[dict[str, Any], Future[ItemResult]]], done: Future[ScoreResult]) -> None:
    error = done.exception()
    for index, (_, future) in enumerate(batch):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(done.result().results[index])


_SCORERS: dict[tuple[int, str], _Scorer] = {}
_SCORERS_LOCK = threading.Lock()


def _scorer(kwargs: Mapping[str, Any]) -> _Scorer:
    """The process's scorer for this configuration (made at the first call; a forked child makes its own)."""
    options = {
        k: kwargs[k]
        for k in ("url", "token", "profile", "sources", "masked_score", "window_ms", "max_batch")
        if k in kwargs
    }
    if "url" not in options and "RLVR_URL" not in os.environ:
        raise ValueError("no rlvr URL: set reward_kwargs.url or $RLVR_URL")
    key = (os.getpid(), json.dumps(options, sort_keys=True, default=repr))
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = _Scorer(options)
        return _SCORERS[key]
