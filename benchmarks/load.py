"""Figure 3: ``read_bundle`` (read, verify, load) on synthetic rule sets.

The breakdown repeats ``read_bundle``'s steps one by one, through the same
private helpers, so the parts add up to (about) the whole. Two baselines: a
bare pyahocorasick build of the same phrases (what loading would cost if
bundles shipped only the rules, i.e. what shipping the compiled state buys),
and a bare ``pickle.loads`` of the automaton alone (the floor of any load that
restores a pyahocorasick automaton).
"""

from __future__ import annotations

import gc
import hashlib
import json
import pickle
import tempfile
import time
from pathlib import Path

import ahocorasick

from benchmarks._memory import measure_in_subprocess
from benchmarks._synth import synth_rules
from benchmarks._timing import interleaved, median, paired_ratio
from rulelife.rules.matcher import Matcher
from rulelife.serving.bundle import BundleStore, _checksum, _join_automaton, _load_state, read_bundle
from rulelife.serving.publish import publish_rules

__all__ = ["bench_load", "loaded_memory"]

# read_bundle's steps in order (the compiled state holds per-rule columns, key table and automaton).
_STEPS = ("read_bytes", "sha256", "unpickle", "matcher_init")


def _bare_build(phrases: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for index, phrase in enumerate(phrases):
        automaton.add_word(phrase, index)
    automaton.make_automaton()
    return automaton


def _breakdown(path: Path) -> dict[str, float]:
    """Seconds per step of read_bundle, done one after the other, once (read_bundle
    itself hashes a large bundle in a second thread while it reads)."""
    clock = time.perf_counter
    t0 = clock()
    with open(path, "rb") as handle:
        handle.readline()
        header = json.loads(handle.readline())
        front = handle.read(header["rules_bytes"] + header.get("lexicon_bytes", 0))
        state = handle.read(header["state_bytes"])
        chunks = [handle.read(n) for part in header["automaton_chunks"] for n in part]
    t1 = clock()
    compiled = (state, *chunks)
    sealed = "compiled_sha256" in header  # the checksum covers the compiled part's hash, not the part
    if _checksum(header, front, *(() if sealed else compiled)) != header["checksum"] or \
            (sealed and hashlib.sha256(b"".join(compiled)).hexdigest() != header["compiled_sha256"]):
        raise AssertionError(f"{path} fails its checksum; the benchmark bundle is damaged")
    t2 = clock()
    gc.disable()  # as read_bundle does
    try:
        serving, _ = _load_state(state)
        serving = _join_automaton(serving, chunks[: len(header["automaton_chunks"][0])])
        t3 = clock()
        matcher = Matcher.from_state(serving, list)
        t4 = clock()
    finally:
        gc.enable()
    del matcher, serving
    return dict(zip(_STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)))


def _one_size(patterns: int, reps: int) -> dict:
    rules, _ = synth_rules(patterns, seed=patterns)
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-") as tmp:
        bundle = publish_rules(Path(tmp), rules).bundle
        path = bundle.path
        phrases = list(bundle.matcher.key_table[2])  # sorted normalised keys, as the bundle's automaton holds
        automaton = pickle.dumps(bundle.matcher.automaton, protocol=5)
        seconds = interleaved({"read_bundle": lambda: read_bundle(path), "bare_build": lambda: _bare_build(phrases),
                               "automaton_loads": lambda: pickle.loads(automaton)}, reps)
        steps = [_breakdown(path) for _ in range(reps)]
        memory = _memory(path)
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
        "automaton_loads_s": median(seconds["automaton_loads"]),
        "ratio": paired_ratio(seconds, "read_bundle", "bare_build"),
        "ratio_automaton_loads": paired_ratio(seconds, "read_bundle", "automaton_loads"),
        "seconds_per_rep": seconds,
        "memory": memory,
    }
    row["breakdown_s"] = {step: median([s[step] for s in steps]) for step in _STEPS}
    row["breakdown_sum_s"] = sum(row["breakdown_s"].values())
    return row


def _resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def loaded_memory(path: str) -> dict:
    """Resident MB a loaded bundle holds (after minus before the load), run in a fresh interpreter."""
    before = _resident_mb()
    bundle = read_bundle(Path(path))
    gc.collect()
    return {"loaded_mb": _resident_mb() - before, "patterns": bundle.pattern_count}


def _memory(path: Path) -> dict:
    measured = measure_in_subprocess("benchmarks.load:loaded_memory", {"path": str(path)})
    return {**measured["result"], "peak_mb": measured["peak_mb"] - measured["imports_mb"]}


def bench_load(pattern_counts: tuple[int, ...], reps: int, progress=print) -> list[dict]:
    """One row per size: read_bundle and bare-build medians, their ratio, and the step breakdown."""
    rows = []
    for patterns in pattern_counts:
        progress(f"[3] {patterns:,} patterns: {reps} reps of read_bundle and a bare build")
        rows.append(_one_size(patterns, reps))
    return rows
