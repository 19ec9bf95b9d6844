"""NeMo Gym's resources-server protocol: `POST /verify`, for the math and code servers' request shapes (0.7).

A NeMo Gym agent posts its dataset row plus the finished trajectory: `responses_create_params`, `response` (an
OpenAI Responses-API response) and the task fields. Two shapes are read:
- math (`math_with_judge`): `expected_answer` is the reference; `question` is the prompt. Scored with `math`.
- code (`code_gen`): `verifier_metadata.unit_tests` = `{inputs, outputs, fn_name}` (or `{packed: base64(zlib(json))}`)
  become stdin tests (no `fn_name`) or call tests (one JSON argument per input line). Scored with `code`.
  When both are present the request is a code request. `?profile=` names another profile.

The completion is what NeMo Gym's servers read (`Response.output_text`): every `output_text` part of every
`message` output item, joined in order; reasoning items and tool calls are left out. Every other field is
accepted and echoed back, as NeMo Gym does; `_ng_rollout_id` is not echoed (NeMo Gym excludes it too).

The answer adds `reward` (0.0 when masked), `mask_sample` (we could not judge), `failure_kind`/`failure_reason`
and `reward_components` (each checker's score; 0.0 where it gave none). A malformed request gets NeMo Gym's own
error, FastAPI's 422 `{"detail": [{"type", "loc", "msg"}]}` (without the echo of the input).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from service.deps import EngineDep, State, require_token
from service.models import ErrorBody, ItemResult, ScoreItem, ScoreRequest
from service.routes.score import OVERLOADED, score_batch
from service.specs import SpecError

__all__ = ["router", "NemoGymVerifyRequest", "NemoGymVerifyResponse"]

# A packed test list is decompressed only this far: zlib input is untrusted and can expand a thousandfold.
_MAX_UNPACKED_BYTES = 64 * 1024 * 1024


class _NemoGymValidationRoute(APIRoute):
    """Answers a malformed request in FastAPI's own 422 shape, which NeMo Gym's clients expect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_error(exc.errors())
            except SpecError as exc:
                return _validation_error([{"type": "invalid_profile", "loc": exc.loc, "msg": str(exc)}])

        return handle


def _validation_error(errors: Any) -> JSONResponse:
    detail = [{"type": e.get("type", ""), "loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors]
    return JSONResponse({"detail": detail}, status_code=422)


router = APIRouter(tags=["nemo-gym"], dependencies=[Depends(require_token)], route_class=_NemoGymValidationRoute)


class _OutputContent(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class _OutputItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    content: list[_OutputContent] | None = None


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")

    output: list[_OutputItem] = Field(description="The Responses-API output items: message, reasoning, tool calls.")

    def output_text(self) -> str:
        """Every `output_text` part of every `message` item, joined: what NeMo Gym's servers score."""
        return "".join(
            content.text or ""
            for item in self.output
            if item.type == "message"
            for content in item.content or ()
            if content.type == "output_text"
        )


class UnitTests(BaseModel):
    model_config = ConfigDict(extra="allow")

    inputs: list[str]
    outputs: list[str]
    fn_name: str | None = None

    @model_validator(mode="after")
    def _same_length(self) -> UnitTests:
        if len(self.inputs) != len(self.outputs):
            raise ValueError(f"inputs has {len(self.inputs)} entries, outputs {len(self.outputs)}")
        self.as_tests()  # a call test that is not JSON is a malformed request, named here
        return self

    def as_tests(self) -> list[dict[str, Any]]:
        pairs = zip(self.inputs, self.outputs, strict=True)
        if self.fn_name is None:
            return [{"type": "stdin_stdout", "input": i, "output": o} for i, o in pairs]
        return [_call_test(self.fn_name, i, o) for i, o in pairs]


def _call_test(fn_name: str, inputs: str, output: str) -> dict[str, Any]:
    try:
        args = [json.loads(line) for line in inputs.split("\n") if line.strip()]
        expected = json.loads(output)
    except json.JSONDecodeError as exc:
        raise ValueError(f"a call test's inputs and output must be JSON ({exc.msg})") from None
    return {"type": "call", "fn_name": fn_name, "args": args, "expected": expected}


class PackedUnitTests(BaseModel):
    model_config = ConfigDict(extra="allow")

    packed: str = Field(description="base64 of zlib-compressed JSON {inputs, outputs}.")
    fn_name: str | None = None
    _tests: UnitTests = PrivateAttr()

    @model_validator(mode="after")
    def _unpack(self) -> PackedUnitTests:
        raw = _inflate(self.packed)
        if not isinstance(raw, dict):
            raise ValueError("packed unit tests must hold a JSON object")
        self._tests = UnitTests(inputs=raw.get("inputs"), outputs=raw.get("outputs"), fn_name=self.fn_name)
        return self

    def as_tests(self) -> list[dict[str, Any]]:
        return self._tests.as_tests()


def _inflate(packed: str) -> Any:
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.b64decode(packed, validate=True), _MAX_UNPACKED_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"packed unit tests unpack to more than {_MAX_UNPACKED_BYTES} bytes")
        return json.loads(data)
    except (binascii.Error, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"packed unit tests are not base64(zlib(json)): {exc}") from None


class _VerifierMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    unit_tests: UnitTests | PackedUnitTests | None = None


_MATH_EXAMPLE: dict[str, Any] = {
    "responses_create_params": {"input": [{"role": "user", "content": "What is 1/2 + 1/2? Put it in \\boxed{}."}]},
    "response": {
        "id": "resp_1",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "role": "assistant", "content": [
                {"type": "output_text", "text": "So the sum is \\boxed{1}.", "annotations": []}]},
        ],
    },
    "question": "What is 1/2 + 1/2?",
    "expected_answer": "1",
}  # fmt: skip


class NemoGymVerifyRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra={"examples": [_MATH_EXAMPLE]})

    responses_create_params: dict[str, Any] = Field(description="The Responses-API create params; echoed back.")
    response: _Response = Field(description="The Responses-API response of the rollout.")
    rollout_id: str | None = Field(default=None, alias="_ng_rollout_id", exclude=True)
    question: str | None = Field(default=None, description="math: the question, used as the prompt.")
    expected_answer: str | None = Field(default=None, description="math: the reference answer.")
    verifier_metadata: _VerifierMetadata | None = Field(
        default=None, description="code: `unit_tests` = {inputs, outputs, fn_name} or {packed, fn_name}."
    )

    @model_validator(mode="after")
    def _one_shape(self) -> NemoGymVerifyRequest:
        if self.expected_answer is None and self.unit_tests is None:
            raise ValueError("give `expected_answer` (math) or `verifier_metadata.unit_tests` (code)")
        return self

    @property
    def unit_tests(self) -> UnitTests | PackedUnitTests | None:
        return None if self.verifier_metadata is None else self.verifier_metadata.unit_tests

    def default_profile(self) -> str:
        return "math" if self.unit_tests is None else "code"

    def score_item(self) -> ScoreItem:
        tests = None if self.unit_tests is None else self.unit_tests.as_tests()
        return ScoreItem(
            id="0",
            completion=self.response.output_text(),
            prompt=self.question,
            reference=None if tests is not None else self.expected_answer,
            tests=tests,
        )


class NemoGymVerifyResponse(NemoGymVerifyRequest):
    reward: float = Field(description="The profile's reward; 0.0 when the sample is masked.")
    mask_sample: bool = Field(description="True when we could not judge: leave the sample out.")
    failure_kind: str | None = Field(default=None, description="Why it could not be judged (a short fixed label).")
    failure_reason: str | None = Field(default=None, description="Why, in words.")
    reward_components: dict[str, float] = Field(description="Each checker's score; 0.0 where it gave none.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Too many bytes."},
    429: OVERLOADED,
}


@router.post(
    "/verify",
    response_model=NemoGymVerifyResponse,
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="NeMo Gym resources-server verify (math and code)",
)
async def verify(
    body: NemoGymVerifyRequest,
    state: State,
    engine: EngineDep,
    profile: Annotated[str | None, Query(description="Score with this profile instead (`GET /v1/profiles`).")] = None,
) -> NemoGymVerifyResponse:
    """The request echoed back with its reward: `math` for a math request, `code` for a code request."""
    name = body.default_profile() if profile is None else profile
    engine.resolver.profile_spec(["query", "profile"], name)
    request = ScoreRequest(profile=name, items=[body.score_item()])
    response = await score_batch(request, state, engine, door="/verify")
    return _verify_response(body, response.results[0])


def _verify_response(body: NemoGymVerifyRequest, result: ItemResult) -> NemoGymVerifyResponse:
    components = {name: c.score or 0.0 for name, c in result.components.items()}
    verdict = {
        "reward": 0.0 if result.mask or result.reward is None else result.reward,
        "mask_sample": result.mask,
        "failure_kind": result.failure_kind,
        "failure_reason": result.failure_reason,
        "reward_components": components,
    }
    return NemoGymVerifyResponse.model_validate(body.model_dump(exclude_unset=True, by_alias=True) | verdict)
