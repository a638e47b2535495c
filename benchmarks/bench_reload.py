"""Reload figures: what one publish costs the serving process, loaded whole or derived.

    .venv/bin/python -m benchmarks.bench_reload [--quick] [--json out.json]

A :class:`~rulelife.serving.runtime.RuleClassifier` serves bundle A
(``patterns`` synthetic phrases) and has answered queries in two locales.
``CURRENT`` is then moved back and forth, ``reloads`` times each way, between
A and:

- ``disable``: A less one rule (what ``rulelife disable`` publishes);
- ``promote``: A plus one rule of 5 phrases (what a promotion publishes);
- ``equal``: A's content under another number (a nightly republish).

For each, ``refresh()`` is timed on the calling thread: its CPU time (the
whole process's, so the hashing thread counts) and the longest gap a
thread that wakes every 0.5 ms sees meanwhile (the longest any request
thread would have waited for the interpreter lock). Each measured reload
follows one unmeasured trip there and back: the first derivation after a
bundle was loaded whole also indexes its rules, reported apart
(``first_cpu_ms``). Each way is measured
twice in alternating passes: with the runtime as it is (``derived``: a few
rules' change served by a matcher derived from the one in service) and with
derivation off (``whole``: every new content loaded whole, as before), so
both see the same machine. Medians over the reloads; the ratio is whole
over derived.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks._synth import synth_rules
from benchmarks._timing import bench_main, finish_meta, median, run_meta
from rulelife._files import atomic_write
from rulelife.rules.definition import Rule
from rulelife.serving.bundle import BundleStore, encode_bundle
from rulelife.serving.publish import publish_rules
from rulelife.serving.runtime import RuleClassifier

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run"]

WAYS = ("disable", "promote", "equal")
MODES = ("derived", "whole")


@dataclass(frozen=True)
class Config:
    patterns: int = 100_000
    reloads: int = 10


FULL = Config()
QUICK = Config(patterns=10_000, reloads=4)


def _pointers(root: Path, patterns: int) -> dict[str, bytes]:
    store = BundleStore(root)
    rules, _ = synth_rules(patterns)
    first = publish_rules(store, rules).bundle
    promoted = Rule(id="zz.promoted", intent="faq", owner="bench",
                    patterns=["alpha beta gamma", "delta epsilon", "zeta eta", "theta iota", "kappa lambda"])
    built = {"a": first, "disable": store.build(rules[:-1])[0], "promote": store.build([*rules, promoted])[0]}
    data, _ = encode_bundle(rules, 99)  # equal content to A, another number
    atomic_write(store.path_of(99), data)
    built["equal"] = store.load(99)

    def pointer(bundle) -> bytes:
        return json.dumps({"number": bundle.number, "file": bundle.path.name, "checksum": bundle.checksum}).encode()

    return {name: pointer(bundle) for name, bundle in built.items()}


@contextmanager
def _derivation(on: bool):
    """Derivation on (the runtime as shipped) or off (every new content loaded whole)."""
    original = BundleStore.pointed
    if not on:
        BundleStore.pointed = lambda self, pointer, *, reuse=None, derive=False: original(self, pointer, reuse=reuse)
    try:
        yield
    finally:
        BundleStore.pointed = original


class _Gaps:
    """A thread that wakes every 0.5 ms and keeps the longest wait between two wake-ups."""

    def __init__(self):
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.0005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run(config: Config, progress=lambda msg: None) -> dict:
    meta = run_meta(config)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        progress(f"building bundles of {config.patterns:,} patterns")
        pointers = _pointers(root, config.patterns)
        atomic_write(root / "CURRENT", pointers["a"])
        clf = RuleClassifier(root)
        for locale in ("en-US", "es"):
            clf.decide("where is my order", locale=locale)
        samples = {(way, mode): {"cpu_ms": [], "stall_ms": [], "first_cpu_ms": []} for way in WAYS for mode in MODES}
        served: dict[tuple[str, str], str] = {}  # the matcher class each way ended up served by
        for rep in range(config.reloads):
            for way in WAYS:
                for mode in MODES if rep % 2 == 0 else MODES[::-1]:
                    with _derivation(mode == "derived"):
                        # Twice there and back: the first publish after a bundle was loaded whole also
                        # indexes that bundle's rules for the derivations to come (kept as first_cpu_ms).
                        for trip in range(2):
                            for target in (way, "a"):
                                atomic_write(root / "CURRENT", pointers[target])
                                with _Gaps() as gaps:
                                    started = time.process_time()
                                    if not clf.refresh():
                                        raise RuntimeError(f"the runtime did not take {target}: {clf.last_error}")
                                    spent = time.process_time() - started
                                if target != way:
                                    continue
                                served[(way, mode)] = type(clf.bundle.matcher).__name__
                                if trip == 0:
                                    samples[(way, mode)]["first_cpu_ms"].append(spent * 1e3)
                                else:
                                    samples[(way, mode)]["cpu_ms"].append(spent * 1e3)
                                    samples[(way, mode)]["stall_ms"].append(gaps.longest * 1e3)
            progress(f"reload {rep + 1}/{config.reloads}")
        clf.close()
    report: dict = {"patterns": config.patterns, "reloads": config.reloads, "ways": {}}
    for way in WAYS:
        row = {mode: {name: median(values) for name, values in samples[(way, mode)].items()} for mode in MODES}
        row["cpu_ratio"] = row["whole"]["cpu_ms"] / row["derived"]["cpu_ms"]
        row["served"] = {mode: served[(way, mode)] for mode in MODES}
        row["samples"] = {f"{way}/{mode}": samples[(way, mode)] for mode in MODES}
        report["ways"][way] = row
    report["meta"] = finish_meta(meta)
    return report


def format_table(report: dict) -> str:
    lines = [f"refresh() at {report['patterns']:,} patterns, median of {report['reloads']} reloads",
             f"    {'publish':8} {'whole cpu ms':>13} {'derived cpu ms':>15} {'whole/derived':>14} "
             f"{'whole stall ms':>15} {'derived stall ms':>17} {'first derived cpu ms':>21}"]
    for way, row in report["ways"].items():
        lines.append(f"    {way:8} {row['whole']['cpu_ms']:>13.1f} {row['derived']['cpu_ms']:>15.1f} "
                     f"{row['cpu_ratio']:>14.2f} {row['whole']['stall_ms']:>15.1f} {row['derived']['stall_ms']:>17.1f} "
                     f"{row['derived']['first_cpu_ms']:>21.1f}")
    m = report["meta"]
    lines.append(f"load average {m['load_average']} -> {m['load_average_end']}, {m['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_reload", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL,
                      quick_help="10K patterns, 4 reloads a way, well under a minute")


if __name__ == "__main__":
    sys.exit(main())
