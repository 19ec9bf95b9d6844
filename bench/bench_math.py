"""Math throughput: plain in-process math-verify (what open-r1 does) versus the rlvr service, side by side.

    python -m bench.bench_math [--distinct 400] [--prompts 64 --group 16] [--workers N]

(a) in-process, one item at a time: ``verify(parse(f"${reference}$"), parse(completion))`` with math-verify defaults;
(b) the service started as a user starts it (``rlvr serve``, default workers), driven with ``RewardClient``.
Both sides score the same items in the same run; the table prints items per second and the ratio (b)/(a).
It also scores the math-verify suite through the service and reports each process's resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench._service import rss_mb, running_service
from bench.math_data import distinct_items, grpo_batch
from rlvr import RewardClient

SUITE = Path(__file__).parents[1] / "tests" / "data" / "math-verify-suite.jsonl"


def in_process(pairs: Sequence[tuple[str, str]]) -> tuple[float, list[bool]]:
    from math_verify import parse, verify

    started = time.perf_counter()
    # References are bare LaTeX; plain math-verify needs them in $...$ (unwrapped, it reads "3i+2" as 3).
    verdicts = [bool(verify(parse(f"${reference}$"), parse(completion))) for completion, reference in pairs]
    return time.perf_counter() - started, verdicts


def via_service(client: RewardClient, items: list[dict[str, Any]]) -> tuple[float, list[float | None]]:
    started = time.perf_counter()
    result = client.score(items, rewards={"math": {}})
    return time.perf_counter() - started, result.rewards


def _suite_items() -> list[dict[str, Any]]:
    items = []
    for i, line in enumerate(SUITE.read_text().splitlines()):
        case = json.loads(line)
        settings = (
            {}
            if case["match_types"] == ["default"]
            else {
                "extract": case["match_types"],
                "boxed_priority": 0,
                "float_rounding": case["precision"],
                "strict": case["strict"],
                "allow_set_relation_comp": case["allow_set_relation_comp"],
            }
        )
        items.append(
            {"id": str(i), "completion": case["pred"], "reference": case["gold"], "rewards": {"math": settings}}
        )
    return items


def _flags(workers: int | None) -> list[str]:
    return ["--sandbox-backend", "none", *(["--workers", str(workers)] if workers else [])]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distinct", type=int, default=400)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="service workers (default: one per core)")
    args = parser.parse_args(argv)

    distinct = distinct_items(args.distinct)
    batch = grpo_batch(prompts=args.prompts, group=args.group)
    grpo_pairs = [(completion, reference) for _, completion, reference in batch]
    print(
        f"cores: {len(os.sched_getaffinity(0))}; distinct items: {len(distinct)}; "
        f"GRPO batch: {args.prompts} x {args.group} = {len(batch)}"
    )

    rows = []
    a_distinct, verdicts = in_process(distinct)
    a_grpo, _ = in_process(grpo_pairs)
    with running_service(*_flags(args.workers)) as (url, pid), RewardClient(url, timeout_s=3600) as client:
        warm = distinct_items(32, seed=99)
        via_service(client, [{"id": str(i), "completion": c, "reference": r} for i, (c, r) in enumerate(warm)])
        b_distinct, rewards = via_service(
            client, [{"id": str(i), "completion": c, "reference": r} for i, (c, r) in enumerate(distinct)]
        )
        b_grpo, _ = via_service(
            client,
            [{"id": str(i), "group": g, "completion": c, "reference": r} for i, (g, c, r) in enumerate(batch)],
        )
        client.score(_suite_items(), rewards={"math": {}})
        ready = httpx.get(f"{url}/readyz").json()
        worker_rss = [v / 2**20 for v in ready["workers"]["worker_rss_bytes"].values()]
        server_rss = rss_mb(pid)
    agree = sum(1 for v, r in zip(verdicts, rewards, strict=True) if float(v) == r) / len(verdicts)
    rows.append(("distinct answers", len(distinct) / a_distinct, len(distinct) / b_distinct))
    rows.append(("GRPO batch", len(batch) / a_grpo, len(batch) / b_grpo))

    print()
    print("| workload | (a) in-process math-verify, items/s | (b) rlvr service, items/s | (b)/(a) |")
    print("|---|---:|---:|---:|")
    for name, a, b in rows:
        print(f"| {name} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x |")
    print()
    print(f"verdict agreement (a) vs (b) on distinct items: {agree:.1%}")
    print(
        "memory after the math-verify suite: "
        + ", ".join(f"worker {i}: {mb:.0f} MB" for i, mb in enumerate(worker_rss))
        + f"; server: {server_rss:.0f} MB; total: {server_rss + sum(worker_rss):.0f} MB RSS"
    )


if __name__ == "__main__":
    main()
