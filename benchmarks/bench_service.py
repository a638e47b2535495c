"""Service figures: what a reload costs the requests being served, what logging a query costs, a cold start.

    .venv/bin/python -m benchmarks.bench_service [--quick] [--json out.json]

[1] Reload stall. One thread calls ``classify`` in a loop (the request
    thread); the main thread swaps in a new bundle of ``reload_patterns``
    synthetic patterns (two bundles alternate) ``reloads`` times, ``window_s``
    apart. Two ways, alternating by repetition:

    - ``walked``: the bundle is loaded and swapped in and the collector finds
      its objects, as the runtime did before (``read_bundle`` then a swap);
    - ``frozen``: ``RuleClassifier``'s own load path, which freezes the new
      bundle out of the collector (``gc.freeze``).

    Per way: the collector's pauses in the windows (from ``gc.callbacks``:
    count, longest, total), the request thread's worst call, and
    ``stalled_ms``, the total time of calls slower than 5 ms (what an HTTP
    worker's p99 feels). ``idle`` is the same window without a reload. The
    load itself (the automaton's unpickle holds the GIL) stalls both ways
    alike; ``load_s`` says how long it takes.
[2] Query-log cost. ``decide`` alone against ``decide`` then
    ``QueryLogWriter.write`` over the same simulated queries (the writer's
    own thread writes Parquet files meanwhile), interleaved; and the rows a
    second the writer turns into files.
[3] Cold start. A fresh interpreter from spawn to the first answer at each
    of ``cold_patterns``: ``from rulelife import RuleClassifier``, the load,
    one ``classify``. The baseline is a fresh interpreter that only unpickles
    the same bundle's automaton (stored alone) and walks it once: the floor of
    any runtime on pyahocorasick.
"""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks._synth import synth_queries, synth_rules, vocabulary
from benchmarks._timing import bench_main, finish_meta, interleaved, median, paired_ratio, run_meta
from rulelife.serving.bundle import BundleStore
from rulelife.serving.logwriter import QueryLogWriter
from rulelife.serving.publish import publish_rules
from rulelife.serving.runtime import RuleClassifier, _Serving

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run"]

SLOW_CALL_S = 0.005


@dataclass(frozen=True)
class Config:
    reload_patterns: int = 100_000
    reloads: int = 4
    window_s: float = 1.0
    reload_reps: int = 2
    log_queries: int = 200_000
    log_reps: int = 5
    cold_patterns: tuple[int, ...] = (10_000, 100_000)
    cold_reps: int = 3


FULL = Config()
QUICK = Config(reload_patterns=10_000, reloads=2, window_s=0.5, reload_reps=1, log_queries=20_000, log_reps=3,
               cold_patterns=(10_000,), cold_reps=1)


def _publish_two(root: Path, patterns: int) -> BundleStore:
    """A bundle folder with two bundles of ``patterns`` patterns (one rule apart); CURRENT names the first."""
    store = BundleStore(root)
    rules, _ = synth_rules(patterns)
    publish_rules(store, rules)
    store.build(rules[:-1])
    return store


class _Pauses:
    """The collector's pauses, from gc.callbacks, while recording."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0
        self.recording = False

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.recording:
            self.seconds.append(time.perf_counter() - self._start)


def _window(clf: RuleClassifier, swap, config: Config, pauses: _Pauses) -> dict:
    """Serve in a thread while ``swap`` runs ``config.reloads`` times; latencies and pauses of the window."""
    latencies: list[float] = []
    stop = threading.Event()

    def serve() -> None:
        classify, clock, record = clf.classify, time.perf_counter, latencies.append
        while not stop.is_set():
            start = clock()
            classify("where is my order please", locale="en-US", query_id="q-1")
            record(clock() - start)

    thread = threading.Thread(target=serve)
    thread.start()
    time.sleep(0.2)
    pauses.seconds.clear()
    pauses.recording = True
    loads = []
    for i in range(config.reloads):
        start = time.perf_counter()
        swap(i)
        loads.append(time.perf_counter() - start)
        time.sleep(config.window_s)
    pauses.recording = False
    stop.set()
    thread.join()
    return {"calls": len(latencies), "worst_ms": max(latencies) * 1e3,
            "stalled_ms": sum(x for x in latencies if x > SLOW_CALL_S) * 1e3,
            "gc_pauses": len(pauses.seconds), "gc_longest_ms": max(pauses.seconds, default=0.0) * 1e3,
            "gc_total_ms": sum(pauses.seconds) * 1e3, "load_s": median(loads) if loads else 0.0}


def bench_reload(config: Config, progress) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        progress(f"[1] building two bundles of {config.reload_patterns:,} patterns")
        store = _publish_two(Path(tmp), config.reload_patterns)
        clf = RuleClassifier.from_store(store.root)
        numbers = store.numbers()

        def walked(i: int) -> None:  # the runtime before: load, swap, and let the collector find it
            clf._serving = _Serving(store.load(numbers[i % 2 == 0]), None, clf._settings_for(clf.bundle))

        def frozen(i: int) -> None:
            clf._serving = clf._serve(lambda: store.load(numbers[i % 2 == 0]), None)

        ways = {"idle": lambda i: None, "walked": walked, "frozen": frozen}
        pauses = _Pauses()
        gc.callbacks.append(pauses)
        results: dict[str, list[dict]] = {name: [] for name in ways}
        try:
            for rep in range(config.reload_reps):
                names = list(ways)
                shift = rep % len(names)
                for name in names[shift:] + names[:shift]:
                    gc.unfreeze()  # every way starts from the same heap
                    gc.collect()
                    progress(f"[1] {name}, repetition {rep + 1}")
                    results[name].append(_window(clf, ways[name], config, pauses))
        finally:
            gc.callbacks.remove(pauses)
        out = {"patterns": config.reload_patterns, "reloads": config.reloads, "window_s": config.window_s}
        for name, rows in results.items():
            out[name] = {key: median([row[key] for row in rows]) for key in rows[0]}
        walked_, frozen_ = out["walked"], out["frozen"]
        out["ratio_stalled"] = frozen_["stalled_ms"] / walked_["stalled_ms"] if walked_["stalled_ms"] else None
        out["ratio_gc_total"] = frozen_["gc_total_ms"] / walked_["gc_total_ms"] if walked_["gc_total_ms"] else None
        return out


def bench_log(config: Config, progress) -> dict:
    progress(f"[2] query-log cost over {config.log_queries:,} queries")
    with tempfile.TemporaryDirectory() as tmp:
        rules, phrases = synth_rules(10_000)
        store = BundleStore(Path(tmp) / "bundles")
        publish_rules(store, rules)
        clf = RuleClassifier.from_store(store.root)
        texts = synth_queries(config.log_queries, vocabulary(5000), phrases, seed=1)
        ids = [f"q-{i}" for i in range(len(texts))]
        writer = QueryLogWriter(Path(tmp) / "logs", classifier=clf, max_wait=1.0)
        decide, write = clf.decide, writer.write

        def decide_only() -> None:
            for text, qid in zip(texts, ids):
                decide(text, locale="en-US", query_id=qid)

        def decide_and_write() -> None:
            for text, qid in zip(texts, ids):
                d = decide(text, locale="en-US", query_id=qid)
                write(d, query_id=qid, text=text, locale="en-US",
                      model_intent=None if d.match else "faq", model_confidence=None if d.match else 0.9)

        seconds = interleaved({"decide": decide_only, "decide_and_write": decide_and_write}, config.log_reps)
        start = time.perf_counter()
        writer.close()
        health = writer.health()
        drain_s = time.perf_counter() - start
    n = config.log_queries
    return {"queries": n, "decide_us": median(seconds["decide"]) / n * 1e6,
            "decide_and_write_us": median(seconds["decide_and_write"]) / n * 1e6,
            "ratio": paired_ratio(seconds, "decide_and_write", "decide"),
            "rows_written": health["rows_written"], "files_written": health["files_written"],
            "rows_dropped": health["rows_dropped"], "close_s": drain_s}


_COLD = """
import sys, time
start = time.perf_counter()
from rulelife import RuleClassifier
imported = time.perf_counter()
clf = RuleClassifier.from_store(sys.argv[1])
loaded = time.perf_counter()
clf.classify("where is my order", locale="en-US")
print(imported - start, loaded - imported, time.perf_counter() - loaded)
"""
_FLOOR = """
import pickle, sys, ahocorasick
with open(sys.argv[1], "rb") as handle:
    pickle.load(handle).iter("where is my order")
"""


def _spawn(code: str, arg: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, out


def bench_cold(config: Config, progress) -> list[dict]:
    rows = []
    for patterns in config.cold_patterns:
        with tempfile.TemporaryDirectory() as tmp:
            progress(f"[3] cold start at {patterns:,} patterns")
            store = BundleStore(Path(tmp))
            rules, _ = synth_rules(patterns)
            bundle = publish_rules(store, rules).bundle
            automaton = Path(tmp) / "automaton.pickle"
            automaton.write_bytes(pickle.dumps(bundle.matcher.automaton, protocol=5))
            cold, floor, parts = [], [], []
            for _ in range(config.cold_reps):
                seconds, out = _spawn(_COLD, str(store.root))
                cold.append(seconds)
                parts.append([float(x) for x in out.split()])
                floor.append(_spawn(_FLOOR, str(automaton))[0])
        rows.append({"patterns": patterns, "cold_start_s": median(cold), "floor_s": median(floor),
                     "ratio": median([c / f for c, f in zip(cold, floor)]),
                     "import_s": median([p[0] for p in parts]), "load_s": median([p[1] for p in parts]),
                     "first_answer_s": median([p[2] for p in parts])})
    return rows


def run(config: Config, progress=lambda msg: None) -> dict:
    meta = run_meta(config)
    report = {"reload": bench_reload(config, progress), "log": bench_log(config, progress),
              "cold": bench_cold(config, progress)}
    report["meta"] = finish_meta(meta)
    return report


def format_table(report: dict) -> str:
    r, w = report["reload"], report["log"]
    lines = [f"[1] reload stall at {r['patterns']:,} patterns, {r['reloads']} reloads {r['window_s']} s apart "
             f"(medians of repetitions)",
             f"    {'way':8} {'calls':>9} {'worst ms':>9} {'stalled ms':>11} {'gc pauses':>10} {'gc longest ms':>14} "
             f"{'gc total ms':>12} {'load s':>7}"]
    for name in ("idle", "walked", "frozen"):
        x = r[name]
        lines.append(f"    {name:8} {x['calls']:>9,.0f} {x['worst_ms']:>9.1f} {x['stalled_ms']:>11.1f} "
                     f"{x['gc_pauses']:>10.0f} {x['gc_longest_ms']:>14.1f} {x['gc_total_ms']:>12.1f} "
                     f"{x['load_s']:>7.3f}")
    ratio = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines.append(f"    frozen / walked: stalled {ratio(r['ratio_stalled'])}, collector time {ratio(r['ratio_gc_total'])}")
    lines.append(f"[2] query log over {w['queries']:,} queries: decide {w['decide_us']:.2f} us, decide + write "
                 f"{w['decide_and_write_us']:.2f} us, ratio {w['ratio']:.2f}; {w['rows_written']:,} rows in "
                 f"{w['files_written']} files, {w['rows_dropped']} dropped, close {w['close_s']:.2f} s")
    lines.append("[3] cold start to the first answer (fresh interpreter)")
    for c in report["cold"]:
        lines.append(f"    {c['patterns']:>7,} patterns: {c['cold_start_s']:.2f} s (import {c['import_s']:.2f}, "
                     f"load {c['load_s']:.2f}, first answer {c['first_answer_s'] * 1e3:.1f} ms); floor "
                     f"{c['floor_s']:.2f} s, ratio {c['ratio']:.2f}")
    m = report["meta"]
    lines.append(f"load average {m['load_average']} -> {m['load_average_end']}, {m['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_service", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL,
                      quick_help="small sizes, under a minute")


if __name__ == "__main__":
    sys.exit(main())
