"""Figure 3: ``read_bundle`` (read, verify, compile) on synthetic rule sets.

The breakdown repeats ``read_bundle``'s steps one by one, through the same
private helpers, so the parts add up to (about) the whole. The baseline is a
bare pyahocorasick build of the same phrases: what loading would cost if
bundles shipped only the rules, i.e. what shipping the compiled automaton buys.
"""

from __future__ import annotations

import gc
import io
import json
import tempfile
import time
from pathlib import Path

import ahocorasick

from benchmarks._synth import synth_rules
from benchmarks._timing import interleaved, median, paired_ratio
from rulelife.rules.matcher import Matcher
from rulelife.serving.bundle import MAGIC, BundleStore, _checksum, _CompiledOnly, read_bundle
from rulelife.serving.publish import publish_rules

__all__ = ["bench_load"]

# read_bundle's steps in order (the compiled state holds rules, key table and automaton).
_STEPS = ("read_bytes", "sha256", "unpickle", "matcher_init")


def _bare_build(phrases: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for index, phrase in enumerate(phrases):
        automaton.add_word(phrase, index)
    automaton.make_automaton()
    return automaton


def _breakdown(path: Path) -> dict[str, float]:
    """Seconds per step of read_bundle, done the same way, once."""
    clock = time.perf_counter
    t0 = clock()
    data = path.read_bytes()
    t1 = clock()
    end = data.find(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC) : end])
    payload = memoryview(data)[end + 1 :]
    if _checksum(header, payload) != header["checksum"]:
        raise AssertionError(f"{path} fails its checksum; the benchmark bundle is damaged")
    t2 = clock()
    gc.disable()  # as read_bundle does
    try:
        rules, keys, phrases, automaton = _CompiledOnly(io.BytesIO(payload[header["rules_bytes"] :])).load()
        t3 = clock()
        matcher = Matcher(rules, automaton=automaton, key_table=(keys, phrases))
        t4 = clock()
    finally:
        gc.enable()
    del matcher
    return dict(zip(_STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)))


def _one_size(patterns: int, reps: int) -> dict:
    rules, _ = synth_rules(patterns, seed=patterns)
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-") as tmp:
        bundle = publish_rules(Path(tmp), rules).bundle
        path = bundle.path
        phrases = list(bundle.matcher._phrases)  # sorted normalised keys, as the bundle's automaton holds
        seconds = interleaved({"read_bundle": lambda: read_bundle(path), "bare_build": lambda: _bare_build(phrases)}, reps)
        steps = [_breakdown(path) for _ in range(reps)]
        size = path.stat().st_size
        header = BundleStore.peek_header(path)
    row = {
        "patterns": bundle.pattern_count,
        "rules": len(rules),
        "reps": reps,
        "bundle_bytes": size,
        "compiled_bytes": header["compiled_bytes"],
        "rules_bytes": header["rules_bytes"],
        "read_bundle_s": median(seconds["read_bundle"]),
        "bare_build_s": median(seconds["bare_build"]),
        "ratio": paired_ratio(seconds, "read_bundle", "bare_build"),
        "seconds_per_rep": seconds,
    }
    row["breakdown_s"] = {step: median([s[step] for s in steps]) for step in _STEPS}
    row["breakdown_sum_s"] = sum(row["breakdown_s"].values())
    return row


def bench_load(pattern_counts: tuple[int, ...], reps: int, progress=print) -> list[dict]:
    """One row per size: read_bundle and bare-build medians, their ratio, and the step breakdown."""
    rows = []
    for patterns in pattern_counts:
        progress(f"[3] {patterns:,} patterns: {reps} reps of read_bundle and a bare build")
        rows.append(_one_size(patterns, reps))
    return rows
