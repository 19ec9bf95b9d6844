"""SandboxFusion's `POST /run_code`, so that veRL's `sandbox_fusion` reward (and other code-RL pipelines) can use us.

A thin adapter over the sandbox: one request is one `Job` with one `Run`, and its `JobResult` is translated into
SandboxFusion's two levels of status. Each stage (compile, run) is a `Finished`/`TimeLimitExceeded`/`Error`
result, and the request's status follows SandboxFusion's rules: a stage in `Error` (our sandbox broke) makes it
`SandboxError`, a time-out or a non-zero return code makes it `Failed`, else `Success`. A failed compilation is
`Finished` with the compiler's non-zero return code and leaves `run_result` null. What SandboxFusion cannot show:

- A memory or output limit kills the program: `Finished` with its exit code, or minus the signal that killed it
  (never 0), so the request is `Failed` (veRL: runtime error). SandboxFusion has no output cap.
- `files` are written beside the program as text: content that is not UTF-8 is a `SandboxError`.
- `fetch_files` are read from the program's work dir after the run (whatever its status) and come back in `files`
  as {path: base64 of the bytes}. Only plain relative paths of regular files are answered: a missing file, an
  absolute path or one with `..`, a symlink anywhere on the way, and a file that does not fit in what is left of
  the job's result budget (`max_result_mb`) are absent; past 1024 paths the rest are ignored. A failed compile
  has no run and no files.
- A full sandbox queue is an HTTP 504 with `Retry-After` (veRL retries only on 504); no sandbox is a `SandboxError`.
- A language name SandboxFusion does not know is its own answer, a 422 at `language`; a name it knows that we
  cannot run (php, bash, ...) is a `SandboxError` naming the languages we run.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sandboxes.base import ExecResult, Job, JobResult, Limits, Run, RunStatus, SandboxError
from sandboxes.languages import COMPILE_ERROR_EXIT, COMPILE_ERROR_MARK, LanguageSpec, UnknownLanguage, resolve_language
from service.deps import EngineDep, require_token
from service.errors import error_response
from service.executors import NoSandbox, Overloaded
from service.limits import code_too_long
from service.models import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["sandbox_fusion"], dependencies=[Depends(require_token)])

# SandboxFusion's `Language` values (sandbox/runners/types.py): a name outside these and our table is its 422.
_SANDBOX_FUSION_LANGUAGES = frozenset(
    "python cpp nodejs go go_test java php csharp bash typescript sql rust cuda lua R perl D_ut ruby scala julia "
    "pytest junit kotlin_script jest verilog python_gpu lean swift racket".split()
)
# Our languages with a compile step that SandboxFusion runs in one stage: a failed syntax check is the run's failure.
_ONE_STAGE = frozenset({"javascript"})
_COMPILE_TIMED_OUT = "compilation failed: time limit"  # the runner's message on a compile step it killed for time


class RunCodeRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"code": "print(input()[::-1])", "language": "python", "stdin": "abc\n", "run_timeout": 5},
                {
                    "code": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}",
                    "language": "cpp",
                    "stdin": "2 3\n",
                    "compile_timeout": 30,
                    "run_timeout": 5,
                    "memory_limit_MB": 256,
                },
            ]
        },
    )

    code: str = Field(
        description="The program; over RLVR_MAX_CODE_BYTES bytes of UTF-8 it is not run (`SandboxError`).",
        examples=["print(input()[::-1])"],
    )
    language: str = Field(description="python, cpp, nodejs, go, java, rust, c, ...", examples=["python"])
    stdin: str | None = Field(default=None, description="Standard input; null: none.", examples=["abc\n"])
    compile_timeout: float = Field(default=10, gt=0, le=120, description="Seconds for the compile step.")
    run_timeout: float = Field(default=10, gt=0, le=60, description="Seconds for the run.")
    memory_limit_MB: int = Field(default=-1, description="Memory cap; <= 0: our default (512). Capped to 16..8192.")
    files: dict[str, str | None] = Field(default_factory=dict, description="Path -> base64 content (UTF-8 text).")
    fetch_files: list[str] = Field(
        default_factory=list,
        description="Paths (relative to the program's dir) whose content comes back in `files`, base64.",
    )


class CommandResult(BaseModel):
    status: Literal["Finished", "Error", "TimeLimitExceeded"]
    execution_time: float | None = None
    return_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


class RunCodeResponse(BaseModel):
    status: Literal["Success", "Failed", "SandboxError"]
    message: str = ""
    compile_result: CommandResult | None = None
    run_result: CommandResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "A malformed body, or a language SandboxFusion does not know."},
    504: {"model": RunCodeResponse, "description": "The sandbox queue is full: retry after `Retry-After` seconds."},
}


@router.post("/run_code", response_model=RunCodeResponse, responses=_ERRORS, summary="SandboxFusion's run_code")
async def run_code(body: RunCodeRequest, engine: EngineDep) -> RunCodeResponse | JSONResponse:
    if (too_long := code_too_long(body.code, engine.settings.max_code_bytes)) is not None:
        return _sandbox_error(f"code: {too_long}")  # not run: veRL's client counts the test as failed
    sandbox = engine.sandbox
    if sandbox is None:
        return _sandbox_error(f"no code sandbox: {engine.sandbox_reason}")
    ours = ", ".join(sandbox.languages)
    try:
        spec = resolve_language(body.language)
    except UnknownLanguage as exc:
        if body.language in _SANDBOX_FUSION_LANGUAGES:
            return _sandbox_error(f"language {body.language!r} is not supported here; supported: {ours}")
        detail = [{"loc": ["body", "language"], "msg": str(exc), "type": "literal_error"}]
        return error_response(422, "unknown_language", f"language: {exc}", detail)
    if spec.name not in sandbox.languages:
        return _sandbox_error(f"this sandbox cannot run {spec.name!r}; it runs: {ours}")
    try:
        files = _decode_files(body.files)
        result = await engine.run_job(_job(body, spec, files))
    except Overloaded as exc:
        retry = str(max(1, round(exc.retry_after_s)))
        overloaded = _sandbox_error(str(exc)).model_dump()
        return JSONResponse(overloaded, status_code=504, headers={"Retry-After": retry})
    except (SandboxError, NoSandbox) as exc:
        return _sandbox_error(str(exc))
    return _response(spec, result)


def _sandbox_error(message: str) -> RunCodeResponse:
    return RunCodeResponse(status="SandboxError", message=message)


def _decode_files(files: Mapping[str, str | None]) -> dict[str, str]:
    """Base64 to text (a `None` content is skipped, as SandboxFusion does); raises SandboxError naming the file."""
    decoded = {}
    for path, content in files.items():
        if content is None:
            continue
        try:
            decoded[path] = base64.b64decode(content, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SandboxError(
                f"files[{path!r}]: not base64 of UTF-8 text ({exc}); binary files are not supported"
            ) from None
    return decoded


def _job(body: RunCodeRequest, spec: LanguageSpec, files: dict[str, str]) -> Job:
    memory = min(max(body.memory_limit_MB, 16), 8192) if body.memory_limit_MB > 0 else Limits().memory_mb
    limits = Limits(timeout_s=body.run_timeout, compile_timeout_s=body.compile_timeout, memory_mb=memory)
    run = Run(stdin=body.stdin or "", fetch=tuple(body.fetch_files))
    return Job(spec.name, body.code, (run,), limits, files)


def _response(spec: LanguageSpec, result: JobResult) -> RunCodeResponse:
    compiled = _compile_result(result.compile) if result.compile else None
    ran = _run_result(spec, result.runs[0]) if result.runs else None
    if spec.name in _ONE_STAGE:
        compiled, ran = None, ran or compiled
    if ran is None and (compiled is None or _succeeded(compiled)):
        return _sandbox_error("the sandbox returned no run result")
    status, message = _status([r for r in (compiled, ran) if r is not None])
    files = dict(result.runs[0].files) if result.runs else {}
    return RunCodeResponse(status=status, message=message, compile_result=compiled, run_result=ran, files=files)


def _status(stages: Sequence[CommandResult]) -> tuple[Literal["Success", "Failed", "SandboxError"], str]:
    for stage in stages:
        if stage.status == "Error":
            return "SandboxError", stage.stderr or ""
    return ("Success", "") if all(_succeeded(stage) for stage in stages) else ("Failed", "")


def _succeeded(stage: CommandResult) -> bool:
    return stage.status == "Finished" and stage.return_code == 0


def _compile_result(result: ExecResult) -> CommandResult:
    if result.status == RunStatus.CE and result.message.startswith(_COMPILE_TIMED_OUT):
        return _command("TimeLimitExceeded", result, None)
    return _command_result(result)


def _run_result(spec: LanguageSpec, result: ExecResult) -> CommandResult:
    refused = result.exit_code == COMPILE_ERROR_EXIT and result.stderr.startswith(COMPILE_ERROR_MARK)
    if spec.name == "python" and result.status == RunStatus.RE and refused:
        # Our loader's syntax-error exit; CPython itself, as SandboxFusion runs it, exits 1 with the same message.
        stderr = result.stderr.removeprefix(COMPILE_ERROR_MARK)
        return CommandResult(status="Finished", execution_time=result.wall_s, return_code=1, stdout="", stderr=stderr)
    return _command_result(result)


def _command_result(result: ExecResult) -> CommandResult:
    if result.status == RunStatus.TLE:
        return _command("TimeLimitExceeded", result, None)
    if result.status == RunStatus.SANDBOX_ERROR:
        return CommandResult(status="Error", execution_time=None, stderr=result.message or "sandbox error")
    if result.status == RunStatus.OK:
        return _command("Finished", result, result.exit_code or 0)
    # RE, CE, MLE, OLE: killed or failed; never a 0 that would read as success.
    code = result.exit_code or (-result.signal if result.signal else 1)
    return _command("Finished", result, code)


def _command(status: Literal["Finished", "TimeLimitExceeded"], result: ExecResult, code: int | None) -> CommandResult:
    return CommandResult(
        status=status, execution_time=result.wall_s, return_code=code, stdout=result.stdout, stderr=result.stderr
    )
