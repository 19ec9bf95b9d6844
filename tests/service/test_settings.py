"""One settings model: every field is a variable and a flag, the README's table is generated from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandboxes.config import SandboxConfig
from service.cli import parser, settings_from
from service.settings import FIELDS, SandboxSettings, Settings, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_settings_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", text, re.S)
    assert found is not None, "README.md lost its settings markers"
    assert found.group(1) == markdown_table(), (
        "README.md's settings table is stale: .venv/bin/python -m service.settings"
    )


def test_every_field_of_the_model_and_of_the_sandbox_config_is_reachable() -> None:
    paths = {setting.path for setting in FIELDS}
    assert {(name,) for name in Settings.model_fields if name != "sandbox"} <= paths
    assert {("sandbox", name) for name in SandboxConfig.model_fields} | {("sandbox", "backend")} <= paths
    assert len({s.env for s in FIELDS}) == len({s.flag for s in FIELDS}) == len(FIELDS)
    parsed = vars(parser().parse_args(["serve"]))  # every flag parses to its own destination
    assert set(parsed) - {"command"} == {s.dest for s in FIELDS}


def test_the_sandbox_defaults_are_the_backend_defaults() -> None:
    assert SandboxSettings().model_dump(exclude={"backend"}) == SandboxConfig().model_dump()


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        pytest.param({"RLVR_WORKERS": "3"}, [], {"workers": 3}, id="env"),
        pytest.param({"RLVR_WORKERS": "3"}, ["--workers", "5"], {"workers": 5}, id="flag_beats_env"),
        pytest.param({"RLVR_SANDBOX_POOL_SIZE": "7"}, [], {"sandbox.pool_size": 7}, id="nested_env"),
        pytest.param({}, ["--sandbox-queue-limit", "9"], {"sandbox.queue_limit": 9}, id="nested_flag"),
        pytest.param({"RLVR_SANDBOX_UID_BLOCK": "4"}, [], {"sandbox.uid_block": 4}, id="optional_set"),
        pytest.param({"RLVR_SANDBOX_UID_BLOCK": ""}, [], {"sandbox.uid_block": None}, id="empty_unsets"),
        pytest.param({}, ["--sandbox-backend", "none"], {"sandbox.backend": "none"}, id="choice"),
        pytest.param({"RLVR_PROFILES": '{"p": {"math": {}}}'}, [], {"profiles": {"p": {"math": {}}}}, id="json"),
        pytest.param({}, ["--sandbox-compile-cache-mb", "0"], {"sandbox.compile_cache_mb": 0}, id="compile_cache"),
        pytest.param(
            {"RLVR_PROFILES": "gsm8k:\n  math: {answer_mode: gsm8k}\n"},
            [],
            {"profiles": {"gsm8k": {"math": {"answer_mode": "gsm8k"}}}},
            id="yaml_text",
        ),
    ],
)
def test_variables_and_flags_set_the_model(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], flags: list[str], expected: dict[str, Any]
) -> None:
    for name in [s.env for s in FIELDS]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_from(parser().parse_args(["serve", *flags]))
    for dest, value in expected.items():
        node: Any = settings
        for part in dest.split("."):
            node = getattr(node, part)
        assert node == value, dest


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["--workers", "0"], {}, "--workers / RLVR_WORKERS: Input should be greater than or equal to 1"),
        pytest.param([], {"RLVR_SANDBOX_POOL_SIZE": "many"}, "--sandbox-pool-size / RLVR_SANDBOX_POOL_SIZE:"),
        pytest.param(["--sandbox-container-cpus", "nan"], {}, "--sandbox-container-cpus / RLVR_SANDBOX_CONTAINER_CPUS"),
        pytest.param([], {"RLVR_PROFILES": '{"p": {"nope": {}}}'}, "profile 'p': nope: unknown checker 'nope'"),
        pytest.param([], {"RLVR_DEFAULT_PROFILE": "nope"}, "RLVR_DEFAULT_PROFILE: unknown profile 'nope'"),
        pytest.param([], {"RLVR_PROFILES": "a: [1"}, "--profiles / RLVR_PROFILES: Value error, not valid JSON or YAML"),
        pytest.param([], {"RLVR_PROFILES": "- a\n- b"}, "--profiles / RLVR_PROFILES: Value error, must be a mapping"),
    ],
)
def test_a_bad_setting_stops_rlvr_serve_with_one_line_naming_it(
    args: list[str], env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", "0", *args],
        env={"PATH": "/usr/bin:/bin", "RLVR_SANDBOX_BACKEND": "none", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_serve_help_lists_every_flag_with_its_variable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    flat = " ".join(done.stdout.split())
    for setting in FIELDS:
        assert setting.flag in flat and setting.env in flat, setting.flag


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_profiles_come_from_a_yaml_or_json_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"profiles{suffix}"
    spec = {"strict": {"math": {"weight": 1.0}, "format": {"weight": 0.2, "mode": "strict"}}}
    path.write_text(json.dumps(spec) if suffix == ".json" else yaml.safe_dump(spec), encoding="utf-8")
    assert Settings(profiles=str(path)).profiles == spec
