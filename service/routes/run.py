"""`POST /v1/run`: run programs x inputs in the sandbox and return every run's raw result (for debugging, tools)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from sandboxes.base import Job, JobResult, Limits, Run, SandboxError, SandboxUnavailable
from sandboxes.languages import UnknownLanguage, resolve_language
from service.deps import EngineDep, require_token
from service.errors import ApiError
from service.limits import code_too_long
from service.models import ErrorBody

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["code"], dependencies=[Depends(require_token)])


class RunLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Wall clock per run.")
    compile_timeout_s: float = Field(default=30.0, gt=0, le=120, description="Wall clock of the compile step.")
    memory_mb: int = Field(default=512, ge=16, le=8192, description="Memory cap per run.")
    output_bytes: int = Field(default=1 << 20, ge=1, le=16 << 20, description="Cap on each of stdout and stderr.")


class RunProgram(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Echoed in the result.", examples=["p0"])
    language: str = Field(description="python, cpp, c, java, javascript, ...", examples=["python"])
    source: str = Field(
        description="Program source; at most RLVR_MAX_CODE_BYTES bytes of UTF-8.", examples=["print(input()[::-1])"]
    )
    files: dict[str, str] = Field(default_factory=dict, description="Extra files beside the source.")


class RunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stdin: str = Field(default="", examples=["abc\n"])
    argv: list[str] = Field(default_factory=list)


class RunRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "programs": [{"id": "rev", "language": "python", "source": "print(input()[::-1])"}],
                    "inputs": [{"stdin": "abc\n"}, {"stdin": "racecar\n"}],
                    "limits": {"timeout_s": 2, "memory_mb": 256},
                }
            ]
        },
    )

    programs: list[RunProgram] = Field(description="Each program is compiled once and run on every input.")
    inputs: list[RunInput] = Field(
        default_factory=lambda: [RunInput(stdin="")], description="Inputs shared by every program."
    )
    limits: RunLimits = Field(default_factory=lambda: RunLimits())
    stop_on_first_failure: bool = False


class RunResponse(BaseModel):
    results: list[dict[str, Any]] = Field(description="One per program: `id`, `compile`, `runs`, `error`.")


_MAX_RUNS = 10_000

_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Too many runs, or a source over RLVR_MAX_CODE_BYTES."},
    429: {"model": ErrorBody, "description": "The sandbox queue is full."},
    503: {"model": ErrorBody, "description": "No sandbox backend can run code here."},
}


@router.post("/run", response_model=RunResponse, responses=_ERRORS, summary="Run programs x inputs in the sandbox")
async def run(body: RunRequest, engine: EngineDep) -> RunResponse:
    for index, program in enumerate(body.programs):
        if (too_long := code_too_long(program.source, engine.settings.max_code_bytes)) is not None:
            raise ApiError(413, "too_large", f"programs.{index}.source: {too_long}")
    if engine.sandbox is None:
        raise ApiError(503, "no_sandbox", f"no code sandbox: {engine.sandbox_reason}", headers={"Retry-After": "30"})
    planned = len(body.programs) * len(body.inputs)
    if planned > _MAX_RUNS:
        message = f"{len(body.programs)} programs x {len(body.inputs)} inputs = {planned} runs, more than the limit of "
        raise ApiError(413, "too_many_runs", message + f"{_MAX_RUNS} runs per request (fixed)")
    available = engine.sandbox.languages
    for index, program in enumerate(body.programs):
        try:
            resolve_language(program.language, available)
        except UnknownLanguage as exc:
            raise ApiError(422, "unknown_language", f"programs.{index}.language: {exc}") from None
    limits = Limits(**body.limits.model_dump())
    runs = tuple(Run(stdin=i.stdin, argv=tuple(i.argv)) for i in body.inputs)
    jobs = [Job(p.language, p.source, runs, limits, p.files, body.stop_on_first_failure) for p in body.programs]
    outcomes = await engine.run_jobs(jobs)  # Overloaded: the one 429, from the error handlers
    return RunResponse(results=[_result(p.id, o) for p, o in zip(body.programs, outcomes, strict=True)])


def _result(program_id: str, outcome: JobResult | SandboxError | ValueError) -> dict[str, Any]:
    if isinstance(outcome, SandboxUnavailable):
        raise ApiError(503, "no_sandbox", str(outcome), headers={"Retry-After": "30"})
    if isinstance(outcome, SandboxError | ValueError):
        return {"id": program_id, "compile": None, "runs": [], "error": str(outcome)}
    compiled = dataclasses.asdict(outcome.compile) if outcome.compile else None
    return {"id": program_id, "compile": compiled, "runs": [dataclasses.asdict(r) for r in outcome.runs], "error": None}
