"""Language checker benchmark: detector accuracy and time per 6,000-character chain of thought, side by side.

Run: ``.venv/bin/python -m bench.bench_language`` (pins itself to one core; about a minute).

1. Accuracy of each detector on labelled Latin-script segments (4-word fragments, clauses, sentences), choosing
   among the default candidate set, as the checker does; microseconds per clause or sentence; model load time.
2. ``check()`` on deterministic ~6,000-character mixed chains of thought (prose in one language, a fifth of the
   sentences in others, LaTeX, code and numbers mixed in): median and p90 CPU milliseconds per chain on one core
   (CPU time, best of 10 runs, so that other tenants of a shared machine inflate it less), the
   ratio to the fastest detector, and the mean absolute error of the score against the true share of target
   words (known from how each chain was built).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.language_data import SENTENCES, SHORT, build_cot, cot_text  # noqa: E402
from rewards.language import DETECTORS, LanguageSettings, check, count_words, get_detector  # noqa: E402
from rewards.result import Sample  # noqa: E402

# (main language, foreign languages, target): Latin targets need the detector, zh does not.
SCENARIOS = [
    ("en", ("zh", "fr"), "en"),
    ("en", ("de", "es"), "en"),
    ("fr", ("en",), "fr"),
    ("de", ("en", "ru"), "de"),
    ("zh", ("en",), "zh"),
    ("ja", ("en", "ko"), "ja"),
]
CHAINS_PER_SCENARIO = 8
ROUNDS = 10


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def load_times() -> dict[str, float]:
    seconds = {}
    candidates = LanguageSettings().candidates
    for name in DETECTORS:
        started = time.perf_counter()
        get_detector(name, candidates)
        seconds[name] = time.perf_counter() - started
    return seconds


def accuracy(name: str, snippets: dict[str, list[str]]) -> tuple[float, float, Counter[str]]:
    """Share of snippets named correctly, microseconds per snippet, and the confusions."""
    detector = get_detector(name, LanguageSettings().candidates)
    right, total, confusions = 0, 0, Counter[str]()
    started = time.process_time()
    for language, texts in snippets.items():
        for text in texts:
            found = detector.detect(text)
            right += found == language
            total += 1
            if found != language:
                confusions[f"{language}->{found}"] += 1
    return right / total, (time.process_time() - started) / total * 1e6, confusions


def true_share(parts: list[tuple[str, str]], target: str) -> float:
    words = Counter[str]()
    for language, text in parts:
        words[language] += count_words(text, target, None).total
    return words[target] / sum(words.values())


def chains() -> list[tuple[str, str, float]]:
    built = []
    for index, (main, foreign, target) in enumerate(SCENARIOS):
        for seed in range(CHAINS_PER_SCENARIO):
            parts = build_cot(1000 * index + seed, main, foreign)
            built.append((cot_text(parts), target, true_share(parts, target)))
    return built


def time_chains(name: str, items: list[tuple[str, str, float]], latin: bool) -> tuple[list[float], float]:
    """Milliseconds per chain (best of ROUNDS per chain) and the mean absolute score error."""
    per_chain, errors = [], []
    for text, target, share in items:
        if (target in {"zh", "ja"}) == latin:
            continue
        settings, sample = LanguageSettings(detector=name, target=target), Sample(completion=text)
        best = float("inf")
        for _ in range(ROUNDS):
            started = time.process_time()
            result = check(sample, settings)
            best = min(best, time.process_time() - started)
        per_chain.append(best * 1e3)
        errors.append(abs((result.score or 0.0) - share))
    return per_chain, statistics.fmean(errors)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    pin_to_one_core()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {sys.version.split()[0]}, pinned to CPU {sorted(os.sched_getaffinity(0))}, load average {load}")
    print(f"candidates: {', '.join(LanguageSettings().candidates)}\n")

    loads = load_times()
    print("1. Detector accuracy on labelled Latin-script segments (7 languages, default candidate set)\n")
    n_short, n_long = sum(map(len, SHORT.values())), sum(map(len, SENTENCES.values()))
    fragments = {language: [" ".join(text.split()[:4]) for text in texts] for language, texts in SHORT.items()}
    print(f"| detector | 4-word fragment (n={n_short}) | clause 5-11 words (n={n_short}) ", end="")
    print(f"| sentence 22-34 words (n={n_long}) | us/segment | load s |")
    print("|---|---|---|---|---|---|")
    confusions = {}
    for name in DETECTORS:
        fragment_acc, _, fragment_conf = accuracy(name, fragments)
        short_acc, short_us, short_conf = accuracy(name, SHORT)
        long_acc, long_us, long_conf = accuracy(name, SENTENCES)
        confusions[name] = fragment_conf + short_conf + long_conf
        us = (short_us * n_short + long_us * n_long) / (n_short + n_long)
        row = f"| {name} | {fragment_acc:.1%} | {short_acc:.1%} | {long_acc:.1%} | {us:.0f} | {loads[name]:.2f} |"
        print(row)
    print()
    for name, confused in confusions.items():
        print(f"  {name} errors: {dict(confused.most_common(6)) or 'none'}")

    items = chains()
    sizes = [len(text) for text, _, _ in items]
    print(f"\n2. check() per ~6,000-char chain of thought ({len(items)} chains, {min(sizes)}-{max(sizes)} chars; ")
    print("   CPU ms, best of 10 runs per chain; MAE = mean |score - true share of target words|)\n")
    print("| detector | Latin target: median ms | p90 ms | x fastest | MAE | CJK target: median ms | p90 ms | MAE |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {name: (time_chains(name, items, True), time_chains(name, items, False)) for name in DETECTORS}
    fastest = min(statistics.median(latin[0]) for latin, _ in rows.values())
    for name, ((latin_ms, latin_err), (cjk_ms, cjk_err)) in rows.items():
        median = statistics.median(latin_ms)
        print(
            f"| {name} | {median:.2f} | {p90(latin_ms):.2f} | {median / fastest:.1f}x | {latin_err:.3f} "
            f"| {statistics.median(cjk_ms):.2f} | {p90(cjk_ms):.2f} | {cjk_err:.3f} |"
        )


if __name__ == "__main__":
    main()
