"""Figure 4: ``classify`` p50 with a 500-phrase safety lexicon against the same bundle without it.

The lexicon's phrases are folded into the rules' automaton, so the cost is
a larger automaton and the hits it produces; the target is a p50 ratio of
at most 1.15. Both classifiers serve the same synthetic rules and queries,
timed alternately in each repetition (see :mod:`benchmarks.latency`); the
figure is the median over repetitions of the paired p50 ratio.
"""

from __future__ import annotations

import gc
import random
import tempfile
from pathlib import Path

from benchmarks._synth import synth_phrases, synth_queries, synth_rules
from benchmarks._timing import median, percentile
from benchmarks.latency import _time_classify
from rulelife.rules.lexicon import Lexicon, LexiconEntry
from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import publish_rules
from rulelife.serving.runtime import RuleClassifier

__all__ = ["bench_lexicon"]

_SAFETY = ("escalation", "return_request")


def _classifier(root: Path, rules, lexicon) -> RuleClassifier:
    publish_rules(BundleStore(root), rules, lexicon=lexicon)
    return RuleClassifier.from_store(root)


def bench_lexicon(patterns: int, phrases: int, calls: int, reps: int, progress=print) -> dict:
    """p50 / p99 (µs) of classify with and without a ``phrases``-phrase lexicon, and their ratio."""
    progress(f"[4] lexicon of {phrases} phrases over {patterns:,} patterns: {reps} reps of {calls:,} calls")
    rules, vocab = synth_rules(patterns, seed=patterns)
    taken = {p for rule in rules for p in rule.patterns}
    rng = random.Random(patterns + 2)
    drawn = [p for p in synth_phrases(phrases * 2, vocab, rng) if p not in taken][:phrases]
    lexicon = Lexicon(owner="bench", phrases=[LexiconEntry(phrase=p, intent=_SAFETY[i % 2])
                                              for i, p in enumerate(drawn)])
    # Queries are drawn over rule and lexicon phrases alike, so some are vetoed.
    texts = synth_queries(calls, vocab, [*taken, *drawn], seed=patterns + 1)
    ids = [f"q-{i:08d}" for i in range(calls)]
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-") as a, tempfile.TemporaryDirectory() as b:
        plain = _classifier(Path(a), rules, None)
        guarded = _classifier(Path(b), rules, lexicon)
    sides = {"plain": plain.classify, "lexicon": guarded.classify}
    for classify in sides.values():
        _time_classify(classify, texts[: min(calls, 20_000)], ids)
    stats: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    gc.collect()
    gc.disable()
    try:
        for rep in range(reps):
            for name in (("plain", "lexicon") if rep % 2 == 0 else ("lexicon", "plain")):
                durations = sorted(_time_classify(sides[name], texts, ids))
                stats[name].append((percentile(durations, 0.5), percentile(durations, 0.99)))
    finally:
        gc.enable()
    vetoed = sum(d.veto is not None for d in guarded.decide_many(texts, "en-US"))
    return {
        "patterns": plain.bundle.pattern_count, "lexicon_phrases": len(guarded.bundle.lexicon), "calls": calls,
        "reps": reps, "veto_share": vetoed / calls, "target_ratio_p50": 1.15,
        "plain_p50_us": median([s[0] for s in stats["plain"]]) / 1000,
        "lexicon_p50_us": median([s[0] for s in stats["lexicon"]]) / 1000,
        "plain_p99_us": median([s[1] for s in stats["plain"]]) / 1000,
        "lexicon_p99_us": median([s[1] for s in stats["lexicon"]]) / 1000,
        "ratio_p50": median([g[0] / p[0] for g, p in zip(stats["lexicon"], stats["plain"])]),
    }
