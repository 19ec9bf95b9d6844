"""What the container costs: one mixed batch through the compose stack and through a service on the host.

    .venv/bin/python -m bench.bench_compose [--items 256 --rounds 3]      # needs Docker, docker-compose, the base

Both services run at once with the same settings (2 CPU workers, 2 docker sandboxes); rounds alternate between
them, each round a batch no earlier round put in the service's cache (math answers differ per round; code
programs carry a per-round tag). A quarter of the items are code (Python, 2 stdin tests each), the rest math in
the R1 template scored by math + format + language. Prints items/s per side, the ratio, and the image sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bench._service import running_service
from rlvr import RewardClient
from tests.deploy.test_compose import Stack

SPEC = {"math": {}, "format": {"weight": 0.2}, "language": {"weight": 0.1}}


def batch(size: int, round_no: int) -> tuple[list[dict[str, Any]], list[float | None]]:
    """The items, and the reward each code item must get (None for math items: their score varies by design)."""
    items: list[dict[str, Any]] = []
    expected: list[float | None] = []
    for i in range(size):
        if i % 4 == 3:
            right = i % 8 == 3
            program = f"# r{round_no} i{i}\nn = int(input())\nprint(n * 2 if {right} else n)"
            tests = [{"type": "stdin_stdout", "input": f"{k}\n", "output": f"{2 * k}\n"} for k in (3, 5)]
            completion = f"```python\n{program}\n```"
            items.append({"id": str(i), "profile": "code", "completion": completion, "tests": tests})
            expected.append(1.0 if right else 0.0)
        else:
            answer = 1000 * round_no + i
            shown = answer if i % 3 else answer + 1
            reasoning = f"We add the numbers one by one and the total comes to {shown} after the last step."
            completion = f"<think>\n{reasoning}\n</think>\n<answer>\n$\\boxed{{{shown}}}$\n</answer>"
            items.append({"id": str(i), "completion": completion, "reference": str(answer)})
            expected.append(None)
    return items, expected


def score_round(url: str, size: int, round_no: int) -> float:
    items, expected = batch(size, round_no)
    with RewardClient(url, rewards=SPEC, batch_size=size) as client:
        start = time.perf_counter()
        result = client.score(items)
        seconds = time.perf_counter() - start
    code = [(r.reward, e) for r, e in zip(result.results, expected, strict=True) if e is not None]
    assert all(reward == want for reward, want in code), "a code verdict differs"
    assert not any(r.mask for r in result.results), "an item was masked"
    return size / seconds


@contextmanager
def compose_stack(base_image: str) -> Iterator[Stack]:
    """The stack the compose test brings up (its own project and port), ready with its sandboxes warm."""
    stack = Stack()
    stack.env |= {"RLVR_BASE_IMAGE": base_image, "RLVR_LOG_LEVEL": "warning"}
    try:
        stack.compose("build")
        stack.compose("up", "-d")
        stack.wait_ready()
        deadline = time.monotonic() + 300
        while not httpx.get(f"{stack.url}/readyz", timeout=5).json()["sandbox"]["available"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the compose stack found no sandbox")
            time.sleep(1)
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "60")


def image_mb(image: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-image", default=os.environ.get("RLVR_BASE_IMAGE", "rlvr-base:bookworm"))
    args = parser.parse_args()
    flags = ("--workers", "2", "--sandbox-backend", "docker", "--sandbox-pool-size", "2")
    rates: dict[str, list[float]] = {"host": [], "compose": []}
    with compose_stack(args.base_image) as stack, running_service(*flags) as (host_url, _):
        urls = {"host": host_url, "compose": stack.url}
        for side in urls:  # warm-up: first sandboxes, first imports
            score_round(urls[side], 32, 0)
        for round_no in range(1, args.rounds + 1):
            for side, url in urls.items():
                rates[side].append(score_round(url, args.items, round_no * 2 + (side == "compose")))
    host, compose = statistics.median(rates["host"]), statistics.median(rates["compose"])
    print(f"one mixed batch of {args.items} items (a quarter code), median of {args.rounds} rounds, alternating\n")
    print("| service | items/s (median) | rounds |")
    print("|---|---:|---|")
    for side, median in (("host (`rlvr serve`)", host), ("compose stack (container)", compose)):
        key = "host" if side.startswith("host") else "compose"
        print(f"| {side} | {median:.1f} | {', '.join(f'{r:.1f}' for r in rates[key])} |")
    print(f"\ncompose / host throughput: {compose / host:.2f}x (cost of the container: {(1 - compose / host):.0%})\n")
    print("| image | size MB |")
    print("|---|---:|")
    for image in ("rlvr:latest", "rlvr-runtime:latest", args.base_image):
        print(f"| `{image}` | {image_mb(image):,.0f} |")
    extra = image_mb("rlvr:latest") - image_mb(args.base_image)
    print(f"\n`rlvr:latest` adds {extra:,.0f} MB to the base it shares with the runtime image")


if __name__ == "__main__":
    main()
