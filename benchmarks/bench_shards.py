"""Would sharding a large bundle's automaton shorten the reload stall, and at what cost per query?

    .venv/bin/python -m benchmarks.bench_shards [--quick] [--json out.json]

Restoring a pyahocorasick automaton from a bundle and freeing the one it
replaces are single C calls that hold the interpreter lock, so every request
thread of the process waits for each whole. Split into ``k`` automata over a
share of the phrases each (round robin), every call is about ``1/k`` as long,
but a query must walk all ``k``. For ``k`` in ``shards``, over the same
``patterns`` synthetic phrases:

- ``restore_ms``: the longest single restore (``pickle.loads`` of one shard,
  the call a reload's stall is made of) and ``free_ms`` the longest free;
- ``walk``: walking ``queries`` simulated queries through every shard, CPU
  time, as a ratio to walking the one automaton (interleaved, ``reps``
  times, median of paired ratios). The walk is what a query costs beyond
  normalising it (``bench_spine``'s baseline is ``normalize`` + this walk),
  so ``k`` shards add ``walk_ratio - 1`` walks to every query.
"""

from __future__ import annotations

import gc
import pickle
import sys
import time
from dataclasses import dataclass

import ahocorasick

from benchmarks._synth import synth_queries, synth_rules
from benchmarks._timing import bench_main, finish_meta, interleaved, median, paired_ratio, run_meta
from rulelife.rules.normalize import normalize

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run"]


@dataclass(frozen=True)
class Config:
    patterns: int = 100_000
    shards: tuple[int, ...] = (1, 2, 4, 8)
    queries: int = 50_000
    reps: int = 5


FULL = Config()
QUICK = Config(patterns=20_000, queries=10_000, reps=3)


def _automaton(phrases: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for key, phrase in enumerate(phrases):
        automaton.add_word(phrase, key)
    automaton.make_automaton()
    return automaton


def run(config: Config, progress=lambda msg: None) -> dict:
    meta = run_meta(config)
    rules, vocab = synth_rules(config.patterns)
    phrases = [normalize(p) for rule in rules for p in (*rule.patterns, *rule.exclude)]
    texts = [normalize(t) for t in synth_queries(config.queries, vocab, phrases[::50], seed=3)]
    rows, walks = [], {}
    for k in config.shards:
        progress(f"{k} shard(s)")
        shards = [_automaton(phrases[i::k]) for i in range(k)]
        blobs = [pickle.dumps(shard, protocol=5) for shard in shards]
        restores, frees = [], []
        for _ in range(config.reps):
            for blob in blobs:
                gc.collect()
                start = time.perf_counter()
                restored = pickle.loads(blob)
                restores.append(time.perf_counter() - start)
                start = time.perf_counter()
                del restored
                frees.append(time.perf_counter() - start)
        rows.append({"shards": k, "restore_ms": median(sorted(restores)[-config.reps:]) * 1e3,
                     "free_ms": median(sorted(frees)[-config.reps:]) * 1e3})

        def walk(shards=shards) -> None:
            for text in texts:
                for shard in shards:
                    for _ in shard.iter(text):
                        pass

        walks[f"k{k}"] = walk
    progress("walking queries")
    seconds = interleaved(walks, config.reps, clock=time.thread_time)
    for row in rows:
        row["walk_ratio"] = paired_ratio(seconds, f"k{row['shards']}", "k1")
        row["walk_us"] = median(seconds[f"k{row['shards']}"]) / len(texts) * 1e6
    report = {"patterns": config.patterns, "queries": config.queries, "rows": rows, "meta": finish_meta(meta)}
    return report


def format_table(report: dict) -> str:
    lines = [f"{report['patterns']:,} phrases, {report['queries']:,} queries",
             f"    {'shards':>6} {'longest restore ms':>19} {'longest free ms':>16} {'walk us':>8} {'walk ratio':>11}"]
    for row in report["rows"]:
        lines.append(f"    {row['shards']:>6} {row['restore_ms']:>19.1f} {row['free_ms']:>16.1f} {row['walk_us']:>8.2f} "
                     f"{row['walk_ratio']:>11.2f}")
    m = report["meta"]
    lines.append(f"load average {m['load_average']} -> {m['load_average_end']}, {m['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_shards", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL, quick_help="20K phrases, under a minute")


if __name__ == "__main__":
    sys.exit(main())
