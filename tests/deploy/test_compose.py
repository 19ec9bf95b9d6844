"""docker-compose.yml: valid by the Compose specification, and `up` serves rewards through the published port.

The end-to-end test is what a user does from a fresh clone: build the images offline (on the Debian base that
sandboxes/images/base.sh makes; .ci/provision.sh makes it), bring the stack up with Debian's Compose (v1, the one
available here; the file keeps to the Compose specification so that v2 runs it too), score a mixed batch, read
/metrics, and take it all down again, leaving nothing behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rlvr import ScoreResult
from tests.conftest import _free_port, missing_backend, scored_per_checker

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# The Compose specification's JSON schema as Debian's docker-compose package ships it.
SPEC_SCHEMAS = [Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")]
BASE_IMAGE = os.environ.get("RLVR_BASE_IMAGE", "rlvr-base:bookworm")


def compose_tool() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    missing_backend("neither docker-compose nor `docker compose` is installed")
    raise AssertionError("unreachable")


def spec_schema() -> dict[str, Any]:
    for path in SPEC_SCHEMAS:
        if path.is_file():
            schema: dict[str, Any] = json.loads(path.read_text())
            return schema
    missing_backend("the Compose specification schema (Debian's docker-compose package) is not installed")
    raise AssertionError("unreachable")


def test_the_compose_file_follows_the_compose_specification() -> None:
    from jsonschema import Draft201909Validator  # the draft the schema names

    Draft201909Validator(spec_schema()).validate(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.mark.parametrize("profile", [pytest.param(None, id="default"), pytest.param("monitoring", id="monitoring")])
def test_compose_accepts_the_file(profile: str | None) -> None:
    flags = [] if profile is None else ["--profile", profile]
    run = subprocess.run(
        [*compose_tool(), "-f", str(COMPOSE_FILE), *flags, "config"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    services = yaml.safe_load(run.stdout)["services"]
    assert set(services) >= {"runtime", "rlvr"}
    assert services["prometheus"]["profiles"] == ["monitoring"]  # only with --profile monitoring


# ------------------------------------------------------------------------------------------------ end to end


class Stack:
    """One compose project of its own (unique name and port), so that it never touches a developer's stack."""

    def __init__(self) -> None:
        self.project = f"rlvrci{secrets.token_hex(3)}"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RLVR_BASE_IMAGE": BASE_IMAGE, "RLVR_PUBLISH_PORT": str(self.port)}

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        command = [*compose_tool(), "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        run = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert run.returncode == 0, f"{' '.join(args)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
        return run

    def wait_ready(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        logs = self.compose("logs", "--no-color", "rlvr").stdout
        raise AssertionError(f"the stack did not become ready:\n{logs[-4000:]}")

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def health(self, timeout_s: float = 120) -> str:
        """The service container's health once it is no longer starting."""
        deadline, status = time.monotonic() + timeout_s, "starting"
        while status == "starting" and time.monotonic() < deadline:
            inspect = ["docker", "inspect", "--format", "{{.State.Health.Status}}", self.container("rlvr")]
            status = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()
            time.sleep(1)
        return status

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, command in {
            "containers": ["docker", "ps", "-aq", "--filter", label],
            "networks": ["docker", "network", "ls", "-q", "--filter", label],
            "volumes": ["docker", "volume", "ls", "-q", "--filter", label],
        }.items():
            found[kind] = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        return found


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    compose_tool()
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False).returncode:
        missing_backend(f"the base image {BASE_IMAGE} is missing (sandboxes/images/base.sh makes it)")
    stack = Stack()
    try:
        stack.compose("build")
        stack.compose("up", "-d")
        stack.wait_ready()
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "60")


MIXED = [
    ("math_right", {"completion": "<think>\nhalf\n</think>\n<answer>\n$\\boxed{1/2}$\n</answer>", "reference": "0.5"}),
    ("math_wrong", {"completion": "<think>\nhmm\n</think>\n<answer>\n$\\boxed{3}$\n</answer>", "reference": "0.5"}),
    ("format_only", {"completion": "no tags, $\\boxed{0.5}$", "reference": "0.5", "rewards": {"math": None}}),
    ("language", {"completion": "<think>\nWe split one whole into two equal parts, and each of those parts is what we "
                                "call one half of the whole.\n</think>\n<answer>\n$\\boxed{0.5}$\n</answer>",
                  "reference": "0.5", "rewards": {"language": {"weight": 1.0, "target": "en"}}}),
    ("code_right", {"profile": "code", "completion": "```python\nprint(int(input()) * 2)\n```",
                    "tests": [{"type": "stdin_stdout", "input": "21\n", "output": "42\n"}]}),
    ("code_wrong", {"profile": "code", "completion": "```python\nprint(41)\n```",
                    "tests": [{"type": "stdin_stdout", "input": "21\n", "output": "42\n"}]}),
]  # fmt: skip
EXPECTED = {
    "math_right": 1.2,
    "math_wrong": 0.2,
    "format_only": 0.0,
    "language": 2.2,
    "code_right": 1.0,
    "code_wrong": 0.0,
}


@pytest.mark.docker
@pytest.mark.slow
def test_compose_up_serves_a_mixed_batch_through_the_published_port(stack: Stack) -> None:
    items = [{"id": name, **item} for name, item in MIXED]
    request_id = f"compose-{secrets.token_hex(4)}"
    response = httpx.post(
        f"{stack.url}/v1/score",
        json={"rewards": {"math": {}, "format": {"weight": 0.2}}, "items": items},
        headers={"X-Request-ID": request_id},
        timeout=300,
    )
    assert response.headers["X-Request-ID"] == request_id
    result = ScoreResult.model_validate_json(response.content)
    got = {r.id: r.reward for r in result.results}
    assert got == pytest.approx(EXPECTED), [r.model_dump() for r in result.results]
    assert not any(r.mask for r in result.results)

    assert scored_per_checker(stack.url) == {"math": 3.0, "format": 4.0, "language": 1.0, "code": 2.0}

    assert stack.health() == "healthy"  # the image's HEALTHCHECK, as Docker sees it

    # the container's logs: one JSON object a line, one line for this batch, with its request id and counts only
    lines = [line.partition("| ")[2] for line in stack.compose("logs", "--no-color", "rlvr").stdout.splitlines()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    batch = [r for r in records if r.get("request_id") == request_id and r.get("door") == "/v1/score"]
    assert len(batch) == 1 and batch[0]["items"] == len(items) and batch[0]["masked"] == 0
    assert "print(int(input()) * 2)" not in "\n".join(lines)  # no completion text in the logs


@pytest.mark.docker
@pytest.mark.slow
def test_compose_down_leaves_nothing_behind(stack: Stack) -> None:
    service_host = stack.container("rlvr")[:12]  # the service's hostname: its sandboxes' owner label names it
    assert service_host and sandboxes_of(service_host), "the stack should have warm sandboxes before down"
    stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "60")
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
    assert sandboxes_of(service_host) == []


def sandboxes_of(host: str) -> list[str]:
    """Containers that the service on ``host`` made (sandboxes, uid claims): their owner label starts with it."""
    listing = ["docker", "ps", "-a", "--filter", "label=rlvr.sandbox=1", "--format", '{{.ID}} {{.Label "rlvr.owner"}}']
    lines = subprocess.run(listing, capture_output=True, text=True, check=True).stdout.splitlines()
    return [line.split()[0] for line in lines if host in line.partition(" ")[2]]
