"""Figure 2: single-query ``RuleClassifier.classify`` latency on synthetic en-US rule sets.

Each call is bracketed by ``perf_counter_ns`` with the collector disabled, so
a percentile is of the call itself, not of a collection that happened to land
in it. The baseline, ``list(automaton.iter(normalize(text)))``, is timed the
same way on the same queries, in the same repetition.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from benchmarks._synth import synth_queries, synth_rules
from benchmarks._timing import median, percentile
from rulelife.rules.normalize import normalize
from rulelife.serving.publish import publish_rules
from rulelife.serving.runtime import RuleClassifier

__all__ = ["bench_latency", "rs_available"]

_LOCALE = "en-US"


def _time_classify(classify, texts: list[str], ids: list[str]) -> list[int]:
    ns = time.perf_counter_ns
    out = [0] * len(texts)
    for i in range(len(texts)):
        text, query_id = texts[i], ids[i]
        start = ns()
        classify(text, locale=_LOCALE, query_id=query_id)
        out[i] = ns() - start
    return out


def _time_baseline(automaton_iter, texts: list[str]) -> list[int]:
    ns = time.perf_counter_ns
    out = [0] * len(texts)
    for i in range(len(texts)):
        text = texts[i]
        start = ns()
        list(automaton_iter(normalize(text)))
        out[i] = ns() - start
    return out


def _percentiles(durations: list[int]) -> tuple[float, float, float]:
    durations.sort()
    return percentile(durations, 0.5), percentile(durations, 0.99), sum(durations) / len(durations)


def _one_size(patterns: int, calls: int, reps: int) -> dict:
    rules, vocab = synth_rules(patterns, seed=patterns)
    phrases = [p for rule in rules for p in rule.patterns]
    texts = synth_queries(calls, vocab, phrases, seed=patterns + 1)
    ids = [f"q-{i:08d}" for i in range(calls)]
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-") as tmp:
        publish_rules(Path(tmp), rules)
        clf = RuleClassifier.from_store(tmp)
        # The optional backend, where ahocorasick-rs is installed: the same bundle, another walk.
        classifiers = {"classify": clf.classify}
        if rs_available():
            classifiers["classify_rs"] = RuleClassifier.from_store(tmp, matcher_backend="ahocorasick_rs").classify
    automaton_iter = clf.bundle.matcher.automaton.iter
    warm = min(calls, 20_000)
    for classify in classifiers.values():
        _time_classify(classify, texts[:warm], ids[:warm])
    _time_baseline(automaton_iter, texts[:warm])
    stats: dict[str, list[tuple[float, float, float]]] = {side: [] for side in (*classifiers, "baseline")}
    gc.collect()
    gc.disable()
    try:
        for rep in range(reps):
            # Rotate which side goes first, so none always runs warmer.
            sides = list(stats)
            for side in sides[rep % len(sides):] + sides[:rep % len(sides)]:
                if side == "baseline":
                    durations = _time_baseline(automaton_iter, texts)
                else:
                    durations = _time_classify(classifiers[side], texts, ids)
                stats[side].append(_percentiles(durations))
    finally:
        gc.enable()
    row = {"patterns": clf.bundle.pattern_count, "rules": len(rules), "calls": calls, "reps": reps,
           "match_share": sum(clf.classify(t, locale=_LOCALE) is not None for t in texts) / calls}
    for side, values in stats.items():
        row[f"{side}_p50_us"] = median([v[0] for v in values]) / 1000
        row[f"{side}_p99_us"] = median([v[1] for v in values]) / 1000
        row[f"{side}_mean_us"] = median([v[2] for v in values]) / 1000
    for side, suffix in (("classify", ""), ("classify_rs", "_rs")):
        if side in stats:
            row[f"ratio_p50{suffix}"] = median([c[0] / b[0] for c, b in zip(stats[side], stats["baseline"])])
            row[f"ratio_p99{suffix}"] = median([c[1] / b[1] for c, b in zip(stats[side], stats["baseline"])])
    return row


def rs_available() -> bool:
    """Whether the optional ahocorasick-rs backend is installed (its figures are then measured too)."""
    try:
        import ahocorasick_rs  # noqa: F401
    except ImportError:
        return False
    return True


def bench_latency(pattern_counts: tuple[int, ...], calls: int, reps: int, progress=print) -> list[dict]:
    """One row of p50 / p99 / mean (µs) for classify and the baseline per rule-set size."""
    rows = []
    for patterns in pattern_counts:
        progress(f"[2] {patterns:,} patterns: {reps} reps of {calls:,} calls")
        rows.append(_one_size(patterns, calls, reps))
    return rows
