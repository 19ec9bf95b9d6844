"""Bearer tokens: from RLVR_API_TOKEN, RLVR_API_TOKENS and a file that rotates without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.auth import TokenSet
from service.settings import Settings
from tests.conftest import LiveService, start_service, stop_service

SCORE = {"rewards": {"format": {}}, "items": [{"id": "a", "completion": "x"}]}


def write_tokens(path: Path, *lines: str) -> None:
    """Replace the file at once, as an operator should (and as Kubernetes updates a mounted Secret)."""
    staged = path.with_suffix(".new")
    staged.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(staged, path)


def status_with(service: LiveService, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{service.url}/v1/score", json=SCORE, headers=headers).status_code


def eventually(condition: Callable[[], bool], within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    tokens_file = tmp_path_factory.mktemp("auth") / "tokens"
    write_tokens(tokens_file, "# the trainers' tokens", "", "  from-file  ")
    service, server, thread = start_service(
        workers=1,
        sandbox={"backend": "none"},
        api_token="single",
        api_tokens=["list-a", "list-b"],
        api_tokens_file=tokens_file,
    )
    yield service
    stop_service(server, thread)


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        pytest.param("Bearer single", 200, id="RLVR_API_TOKEN"),
        pytest.param("Bearer list-a", 200, id="RLVR_API_TOKENS_first"),
        pytest.param("Bearer list-b", 200, id="RLVR_API_TOKENS_second"),
        pytest.param("Bearer from-file", 200, id="RLVR_API_TOKENS_FILE"),
        pytest.param("bearer   list-a", 200, id="scheme_in_any_case_spaces_skipped"),
        pytest.param(None, 401, id="missing"),
        pytest.param("Bearer wrong", 401, id="wrong"),
        pytest.param("Bearer list-a,list-b", 401, id="two_tokens_in_one"),
        pytest.param("Bearer # the trainers' tokens", 401, id="a_comment_line"),
        pytest.param("Basic c2luZ2xlOg==", 401, id="other_scheme"),
        pytest.param("single", 401, id="no_scheme"),
    ],
)
def test_any_configured_token_opens_the_scoring_routes(
    guarded: LiveService, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.post(f"{guarded.url}/v1/score", json=SCORE, headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["code"] == "unauthorized"
        assert "Authorization: Bearer <token>" in response.json()["message"]
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/healthz", id="liveness_probe"),
        pytest.param("/readyz", id="readiness_probe"),
        pytest.param("/metrics", id="prometheus"),
        pytest.param("/v1/profiles", id="profiles"),
        pytest.param("/v1/checkers", id="checkers"),
    ],
)
def test_probes_metrics_and_listings_need_no_token(guarded: LiveService, path: str) -> None:
    assert httpx.get(guarded.url + path).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/get_reward", id="openrlhf"),
        pytest.param("POST", "/verify", id="nemo_gym"),
        pytest.param("POST", "/run_code", id="sandbox_fusion"),
        pytest.param("POST", "/v1/run", id="run"),
    ],
)
def test_every_front_door_wants_the_token(guarded: LiveService, method: str, path: str) -> None:
    assert httpx.request(method, guarded.url + path, json={}).status_code == 401


def test_rotating_the_file_keeps_old_and_new_valid_until_the_old_is_removed(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    write_tokens(tokens_file, "old")
    service, server, thread = start_service(workers=1, sandbox={"backend": "none"}, api_tokens_file=tokens_file)
    try:
        assert (status_with(service, "old"), status_with(service, "new")) == (200, 401)
        write_tokens(tokens_file, "old", "new")  # the overlap: clients move to the new token
        assert eventually(lambda: status_with(service, "new") == 200)
        assert status_with(service, "old") == 200
        write_tokens(tokens_file, "new")  # every client has moved: the old token goes
        assert eventually(lambda: status_with(service, "old") == 401)
        assert status_with(service, "new") == 200
    finally:
        stop_service(server, thread)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_file_is_looked_at_once_a_second_and_read_again_when_it_changed(tmp_path: Path) -> None:
    path, clock = tmp_path / "tokens", Clock()
    path.write_text("old\n", encoding="utf-8")
    tokens = TokenSet([], path, clock=clock)
    path.write_text("new\n", encoding="utf-8")  # rewritten in place, within the same mtime tick
    assert tokens.client_of("Bearer old") is not None  # not looked at again within the second
    clock.now += 1.0
    assert tokens.client_of("Bearer old") is None and tokens.client_of("Bearer new") is not None


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        pytest.param(lambda path: path.unlink(), True, False, id="deleted_keeps_the_last_tokens"),
        pytest.param(lambda path: path.write_text(""), False, False, id="emptied_accepts_nothing"),
        pytest.param(lambda path: path.write_text("old\nnot a token\nnew\n"), True, True, id="a_bad_line_is_skipped"),
    ],
)
def test_a_file_that_goes_wrong_never_opens_the_service(
    tmp_path: Path, change: Callable[[Path], object], old: bool, new: bool
) -> None:
    path, clock = tmp_path / "tokens", Clock()
    path.write_text("old\n", encoding="utf-8")
    tokens = TokenSet([], path, clock=clock)
    change(path)
    clock.now += 1.0
    assert tokens.enabled
    assert (tokens.client_of("Bearer old") is not None, tokens.client_of("Bearer new") is not None) == (old, new)
    assert tokens.client_of("Bearer ") is None and tokens.client_of(None) is None


def test_a_client_is_named_by_a_digest_never_by_its_token() -> None:
    tokens = TokenSet(["s3cret-token"])
    client = tokens.client_of("Bearer s3cret-token")
    assert client is not None and "s3cret" not in client
    assert client == tokens.client_of("Bearer s3cret-token") != TokenSet(["other"]).client_of("Bearer other")


def test_the_tokens_variable_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_API_TOKENS", " a-1, b-2,,c-3 ")
    secrets = [secret.get_secret_value() for secret in Settings().api_tokens]
    assert secrets == ["a-1", "b-2", "c-3"]
    assert "a-1" not in repr(Settings())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--api-token", "has space"], "--api-token / RLVR_API_TOKEN: Value error, a token must be"),
        pytest.param(["--api-tokens", "ok,has space"], "--api-tokens / RLVR_API_TOKENS: Value error, a token must"),
        pytest.param(["--api-tokens-file", "/nonexistent/tokens"], "--api-tokens-file / RLVR_API_TOKENS_FILE"),
    ],
)
def test_a_bad_token_setting_stops_rlvr_serve_without_showing_the_token(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", "0", "--sandbox-backend", "none", *args],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert message in done.stderr and "has space" not in done.stderr and "Traceback" not in done.stderr, done.stderr
