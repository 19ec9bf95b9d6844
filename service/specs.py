"""Reward specs and profiles: what a batch asks for, resolved into a plan of checkers per item.

Exceptions::

    SpecError            a request's reward spec is invalid (a front door answers 422 naming the field)
    ProfileError         a configured reward profile is invalid (the service refuses to start, naming it)

A reward profile is a named spec configured on the server. A request's spec is its `profile` (or none) with its
`rewards` merged on top, per checker and per setting; an item's `profile` replaces the batch's spec for that item
and its `rewards` merge on top of whichever spec it has. A `null` override drops that checker.

A plan maps checker names to ``Planned`` (the resolved ``Checker`` object and its validated settings): checkers
are looked up once per distinct spec, never per item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from rewards import CHECKERS, Checker, CheckerSettings, UnknownChecker, load_checker
from rlvr.types import merge_spec
from service.models import RewardSpec, SpecOverrides

__all__ = [
    "BUILTIN_PROFILES",
    "ItemSpec",
    "Plan",
    "Planned",
    "ProfileError",
    "Resolver",
    "SpecError",
    "plan_checker",
    "load_profiles",
    "merge_spec",
]


@dataclass(frozen=True)
class Planned:
    checker: Checker
    settings: CheckerSettings


Plan = dict[str, Planned]


class ItemSpec(Protocol):
    """What resolution reads of an item: its own profile and overrides."""

    @property
    def profile(self) -> str | None: ...

    @property
    def rewards(self) -> SpecOverrides | None: ...


# DeepSeek-R1's rule rewards: accuracy dominates; the format (0.2) and language-consistency (0.1) bonuses together
# never lift a wrong answer above a right one. The language target is the prompt's language.
BUILTIN_PROFILES: dict[str, RewardSpec] = {
    "r1-math": {"math": {"weight": 1.0}, "format": {"weight": 0.2, "mode": "strict"}, "language": {"weight": 0.1}},
    "math": {"math": {"weight": 1.0}},
    "code": {"code": {"weight": 1.0}},
}


class SpecError(ValueError):
    def __init__(self, loc: Sequence[str | int], message: str, *, valid: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.loc = list(loc)
        self.valid = list(valid)


class ProfileError(ValueError):
    """A configured profile (or the default profile's name) is invalid; the message names it."""


class Resolver:
    """Resolves specs against the configured profiles; caches validated settings by their JSON."""

    def __init__(self, profiles: Mapping[str, RewardSpec] = BUILTIN_PROFILES) -> None:
        self.profiles = dict(profiles)
        self._planned: dict[tuple[str, str], Planned] = {}

    # -- resolve ---------------------------------------------------------------------------------------------

    def resolve(
        self, items: Sequence[ItemSpec], *, rewards: SpecOverrides | None = None, profile: str | None = None
    ) -> list[Plan]:
        """Validate the batch's spec and each item's overrides; one plan per item, or a SpecError."""
        spec = self._batch_spec(items, rewards, profile)
        base = None if spec is None else self._plan(["body", "rewards"], spec)
        return [self._item_plan(index, item, spec, base) for index, item in enumerate(items)]

    def profile_spec(self, loc: list[str | int], name: str) -> RewardSpec:
        try:
            return self.profiles[name]
        except KeyError:
            raise SpecError(loc, f"unknown profile {name!r}", valid=sorted(self.profiles)) from None

    def _batch_spec(
        self, items: Sequence[ItemSpec], rewards: SpecOverrides | None, profile: str | None
    ) -> RewardSpec | None:
        """The batch's spec; None when it names neither but every item names its own profile."""
        if profile is None and rewards is None:
            if items and all(item.profile is not None for item in items):
                return None
            message = "give `rewards`, a `profile`, or a `profile` on every item"
            raise SpecError(["body", "rewards"], message, valid=sorted(self.profiles))
        base = {} if profile is None else self.profile_spec(["body", "profile"], profile)
        return merge_spec(base, rewards)

    def _plan(self, loc: list[str | int], spec: RewardSpec) -> Plan:
        if not spec:
            raise SpecError(loc, "at least one checker is required", valid=sorted(CHECKERS))
        return {name: self._planned_for([*loc, name], name, raw) for name, raw in spec.items()}

    def _item_plan(self, index: int, item: ItemSpec, spec: RewardSpec | None, base: Plan | None) -> Plan:
        loc: list[str | int] = ["body", "items", index]
        if item.profile is not None:
            own = merge_spec(self.profile_spec([*loc, "profile"], item.profile), item.rewards)
            return self._plan([*loc, "rewards"], own)
        assert spec is not None and base is not None
        if not item.rewards:
            return base
        plan = dict(base)
        for name, override in item.rewards.items():
            if override is None:
                plan.pop(name, None)
            else:
                plan[name] = self._planned_for([*loc, "rewards", name], name, {**spec.get(name, {}), **override})
        if not plan:
            raise SpecError([*loc, "rewards"], "drops every checker: an item needs at least one")
        return plan

    def _planned_for(self, loc: list[str | int], name: str, raw: dict[str, Any]) -> Planned:
        key = (name, json.dumps(raw, sort_keys=True, default=str))
        cached = self._planned.get(key)
        if cached is not None:
            return cached
        planned = plan_checker(loc, name, raw)
        if len(self._planned) < 4096:
            self._planned[key] = planned
        return planned


def plan_checker(loc: list[str | int], name: str, raw: dict[str, Any]) -> Planned:
    """The named checker with its validated settings, or a SpecError naming the field at `loc`."""
    try:
        checker = load_checker(name)
    except UnknownChecker as exc:
        raise SpecError(loc, f"unknown checker {name!r}", valid=exc.valid) from None
    try:
        return Planned(checker, checker.settings_model.model_validate(raw))
    except ValidationError as exc:
        raise _settings_error(loc, checker, exc) from None


def load_profiles(configured: Mapping[str, RewardSpec], default: str) -> dict[str, RewardSpec]:
    """The built-in profiles with the configured ones on top, every one validated; a bad one is a ProfileError."""
    profiles = {**BUILTIN_PROFILES, **configured}
    for name, spec in profiles.items():
        if not spec:
            raise ProfileError(f"RLVR_PROFILES: profile {name!r} has no checkers")
        for checker, raw in spec.items():
            try:
                plan_checker([checker], checker, raw)
            except SpecError as exc:
                where = ".".join(str(part) for part in exc.loc)
                valid = f"; valid: {', '.join(exc.valid)}" if exc.valid else ""
                raise ProfileError(f"RLVR_PROFILES: profile {name!r}: {where}: {exc}{valid}") from None
    if default not in profiles:
        valid = ", ".join(sorted(profiles))
        raise ProfileError(f"RLVR_DEFAULT_PROFILE: unknown profile {default!r}; valid: {valid}")
    return profiles


def _settings_error(loc: list[str | int], checker: Checker, exc: ValidationError) -> SpecError:
    error = exc.errors()[0]
    where = loc + [part for part in error["loc"] if isinstance(part, str | int)]
    valid = sorted(checker.settings_model.model_fields)
    if error["type"] == "extra_forbidden":
        return SpecError(where, f"unknown setting {where[-1]!r} for checker {checker.name!r}", valid=valid)
    return SpecError(where, error["msg"], valid=valid)
