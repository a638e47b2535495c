"""Figure 1: ``RuleClassifier.classify_many`` over simulated traffic, against the bare loop.

Baseline: ``list(automaton.iter(normalize(text)))`` for every text, over the
classifier's own automaton: the irreducible work of any matcher built on it.
``match_many`` is timed too, so the gap splits into matching and the Match
wrapping ``classify_many`` adds on top.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from benchmarks._timing import interleaved, median, paired_ratio
from benchmarks.latency import rs_available
from rulelife.rules.definition import load_rules
from rulelife.rules.normalize import normalize
from rulelife.serving.publish import publish_rules
from rulelife.serving.runtime import RuleClassifier

__all__ = ["RULES_DIR", "bench_throughput", "simulated_queries"]

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
_QUERIES_PER_DAY = 10_000


def simulated_queries(count: int) -> tuple[list[str], list[str | None], list[str]]:
    """The first ``count`` simulated rows from 2026-01-01, seed 1: texts, locales, ids."""
    from rulelife.simulate import simulate_traffic  # heavy, and finished in parallel: import late

    per_day = min(_QUERIES_PER_DAY, count)
    days = -(-count * 23 // 20 // per_day) or 1  # +15 %: daily volume is noisy
    while True:
        frame = simulate_traffic(start=dt.date(2026, 1, 1), days=days, queries_per_day=per_day, seed=1)
        if len(frame) >= count:
            break
        days += max(1, days // 10)
    frame = frame.iloc[:count]
    locales = [loc if isinstance(loc, str) else None for loc in frame["locale"].tolist()]
    return frame["text"].tolist(), locales, frame["query_id"].tolist()


def _passes(clf: RuleClassifier, rs: RuleClassifier | None, texts, locales, ids) -> dict:
    automaton_iter = clf.bundle.matcher.automaton.iter
    matcher = clf.bundle.matcher

    def baseline() -> None:
        for text in texts:
            list(automaton_iter(normalize(text)))

    passes = {
        "baseline": baseline,
        "classify_many": lambda: clf.classify_many(texts, locales, ids),
        "match_many": lambda: matcher.match_many(texts, locales),
    }
    if rs is not None:
        passes["classify_many_rs"] = lambda: rs.classify_many(texts, locales, ids)
    return passes


def _summary(seconds: dict[str, list[float]], n: int) -> dict:
    return {
        "texts": n,
        "baseline_s": median(seconds["baseline"]),
        "classify_many_s": median(seconds["classify_many"]),
        "match_many_s": median(seconds["match_many"]),
        "classify_many_us_per_query": median(seconds["classify_many"]) / n * 1e6,
        "baseline_us_per_query": median(seconds["baseline"]) / n * 1e6,
        "ratio": paired_ratio(seconds, "classify_many", "baseline"),
        "ratio_match_many": paired_ratio(seconds, "match_many", "baseline"),
        "ratio_rs": paired_ratio(seconds, "classify_many_rs", "baseline") if "classify_many_rs" in seconds else None,
        "seconds_per_rep": seconds,
    }


def bench_throughput(queries: int, reps: int, progress=print) -> dict:
    """Ratios of classify_many (and match_many) to the baseline, as simulated and de-duplicated."""
    progress(f"[1] simulating {queries:,} queries")
    texts, locales, ids = simulated_queries(queries)
    pairs = dict.fromkeys(zip(texts, locales))  # first-seen order, as match_many's cache keys
    unique_texts = [text for text, _ in pairs]
    unique_locales = [locale for _, locale in pairs]
    first_ids = dict(zip(zip(texts, locales), ids))
    unique_ids = [first_ids[pair] for pair in pairs]
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-") as tmp:
        publish_rules(Path(tmp), [rf.rule for rf in load_rules(RULES_DIR)])
        clf = RuleClassifier.from_store(tmp)
        rs = RuleClassifier.from_store(tmp, matcher_backend="ahocorasick_rs") if rs_available() else None
    results = clf.classify_many(texts, locales, ids)
    progress(f"[1] timing {reps} reps over {len(texts):,} simulated and {len(unique_texts):,} unique texts")
    # CPU time of this thread: every pass is single-threaded, and on a shared
    # machine wall time swings by ±20 % with what else runs.
    simulated = interleaved(_passes(clf, rs, texts, locales, ids), reps, clock=time.thread_time)
    unique = interleaved(_passes(clf, rs, unique_texts, unique_locales, unique_ids), reps, clock=time.thread_time)
    return {
        "queries": len(texts),
        "rules": len(clf.bundle.rules),
        "patterns": clf.bundle.pattern_count,
        "match_share": sum(r is not None for r in results) / len(texts),
        "duplicate_share": 1 - len(pairs) / len(texts),
        "duplicate_text_share": 1 - len(set(texts)) / len(texts),
        "reps": reps,
        "target_ratio": 1.3,
        "simulated": _summary(simulated, len(texts)),
        "unique": _summary(unique, len(unique_texts)),
    }
