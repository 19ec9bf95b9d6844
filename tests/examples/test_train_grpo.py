"""examples/train_grpo.py end to end: two GRPO steps of a tiny model on the CPU, scored by a real rlvr service.

The example runs in a subprocess, as a user runs it, so that TRL's and accelerate's process-wide state stays
out of the test process. What it proves: the script trains, TRL logs rlvr's rewards and component metrics, and
every completion TRL generated was scored by the service exactly once (once, too, with one reward function per
component: they share one scoring call per batch).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SANDBOXES, LiveService, scored_per_checker, start_service, stop_service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "train_grpo.py"
DATASET = ROOT / "examples" / "data" / "arith.jsonl"

STEPS = 2
NUM_GENERATIONS = 4
BATCH_SIZE = 4  # completions per micro-batch
GRADIENT_ACCUMULATION = 2
# TRL 1.16 (one process, num_iterations=1) generates once per optimizer step: steps_per_generation defaults to
# gradient_accumulation_steps, and one generation batch is per_device_train_batch_size * steps_per_generation
# completions (generation_batch_size), i.e. 2 prompts x 4 generations here.
COMPLETIONS = STEPS * BATCH_SIZE * GRADIENT_ACCUMULATION
R1_MATH_CHECKERS = ("math", "format", "language")


def trainer_deps_missing() -> None:
    """Skip (locally) or fail (CI: RLVR_REQUIRE_SANDBOXES=1) when the trainer's packages are not installed."""
    missing = [name for name in ("torch", "trl") if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed"
    hint = "; `make setup` installs them (pip install torch==2.13.0, then pip install -e '.[dev,trl]')"
    if REQUIRE_SANDBOXES:
        pytest.fail(f"RLVR_REQUIRE_SANDBOXES=1 but {reason}{hint}", pytrace=False)
    pytest.skip(f"{reason}{hint}")


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    """A service of its own (math needs no sandbox), so that its item counts are this module's alone."""
    live, server, thread = start_service(workers=1, sandbox={"backend": "none"})
    yield live
    stop_service(server, thread)


def train(service: LiveService, output_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), "--model", "tiny", "--dataset", str(DATASET), "--url", service.url]
    command += ["--max-steps", str(STEPS), "--num-generations", str(NUM_GENERATIONS)]
    command += ["--per-device-train-batch-size", str(BATCH_SIZE)]
    command += ["--gradient-accumulation-steps", str(GRADIENT_ACCUMULATION)]
    command += ["--max-completion-length", "16", "--output-dir", str(output_dir), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("RLVR_URL", None)  # the URL given on the command line is the one used
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(
    ("flags", "reward_keys"),
    [
        pytest.param((), ["rewards/rlvr/mean"], id="combined"),
        pytest.param(("--components",), [f"rewards/rlvr_{c}/mean" for c in R1_MATH_CHECKERS], id="components"),
    ],
)
def test_two_grpo_steps_scored_by_rlvr(
    service: LiveService, tmp_path: Path, flags: tuple[str, ...], reward_keys: list[str]
) -> None:
    trainer_deps_missing()
    before = scored_per_checker(service.url)

    run = train(service, tmp_path, *flags)

    assert run.returncode == 0, f"train_grpo.py exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    steps = [entry for entry in state["log_history"] if "loss" in entry]
    assert [entry["step"] for entry in steps] == list(range(1, STEPS + 1))
    for entry in steps:
        # TRL's per-function means (None only for a component that applied to nothing, e.g. language on noise)...
        assert set(reward_keys) <= entry.keys(), sorted(entry)
        assert entry[reward_keys[0]] is not None
        # ...and what rlvr.trl logs through log_metric: component means, the masked and no-signal fractions.
        assert {"rlvr/math/mean", "rlvr/format/mean", "rlvr/no_signal_frac"} <= entry.keys(), sorted(entry)
        assert entry["rlvr/masked_frac"] == 0.0  # every answer parses: nothing may be masked

    after = scored_per_checker(service.url)
    scored = {checker: after.get(checker, 0.0) - before.get(checker, 0.0) for checker in R1_MATH_CHECKERS}
    assert scored == dict.fromkeys(R1_MATH_CHECKERS, float(COMPLETIONS))
