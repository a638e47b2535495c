"""Memory figure: what request locales cost a loaded runtime.

    .venv/bin/python -m benchmarks.bench_locales [--quick] [--json out.json]

A fresh interpreter loads a bundle of ``patterns`` synthetic patterns
(every rule ``en-US``) and answers one query in ``en-US``; its resident set
then is the baseline. It then answers one query in each of ``locales`` random
locale strings (what a client that sends anything could make it see: tags
like ``xq-ZV`` and junk of 1-16 characters), and its resident set is read
again. The runtime maps a locale it does not know to the set of the locale
specs it meets, so the strings cost a cache entry each, not a set of rule
indices each. Both figures are read after a full collection
(``VmRSS``), ``reps`` times in fresh interpreters; the ratio is the median.
"""

from __future__ import annotations

import gc
import random
import string
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks._memory import measure_in_subprocess
from benchmarks._synth import synth_rules
from benchmarks._timing import bench_main, finish_meta, median, run_meta
from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import publish_rules

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "rss_after_locales", "run"]


@dataclass(frozen=True)
class Config:
    patterns: int = 100_000
    locales: int = 10_000
    reps: int = 3


FULL = Config()
QUICK = Config(patterns=10_000, locales=2_000, reps=1)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status: this figure needs Linux")


def _random_locales(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if i % 2:
            out.append(f"{''.join(rng.choices(string.ascii_lowercase, k=2))}-"
                       f"{''.join(rng.choices(string.ascii_uppercase, k=2))}")
        else:
            out.append("".join(rng.choices(string.printable, k=rng.randint(1, 16))))
    return out


def rss_after_locales(store: str, locales: int, seed: int = 0) -> dict:
    """In this process: load ``store``'s bundle, answer in ``en-US``, then in ``locales`` random locales."""
    from rulelife import RuleClassifier

    clf = RuleClassifier.from_store(store)
    text = "so where is my order now"
    clf.decide(text, locale="en-US", query_id="q-0")
    gc.collect()
    one = _rss_mb()
    for i, locale in enumerate(_random_locales(locales, seed)):
        clf.decide(text, locale=locale, query_id=f"q-{i}")
    gc.collect()
    return {"rss_one_mb": one, "rss_many_mb": _rss_mb(), "cached_locales": len(clf._serving.matcher._locale_cache)}


def run(config: Config, progress=lambda msg: None) -> dict:
    meta = run_meta(config)
    with tempfile.TemporaryDirectory() as tmp:
        progress(f"building a bundle of {config.patterns:,} patterns")
        rules, _ = synth_rules(config.patterns)
        publish_rules(BundleStore(Path(tmp)), rules)
        rows = []
        for rep in range(config.reps):
            progress(f"repetition {rep + 1}/{config.reps}")
            rows.append(measure_in_subprocess("benchmarks.bench_locales:rss_after_locales",
                                              {"store": tmp, "locales": config.locales, "seed": rep})["result"])
    report = {"patterns": config.patterns, "locales": config.locales, "rows": rows,
              "rss_one_mb": median([r["rss_one_mb"] for r in rows]),
              "rss_many_mb": median([r["rss_many_mb"] for r in rows]),
              "ratio": median([r["rss_many_mb"] / r["rss_one_mb"] for r in rows]),
              "cached_locales": rows[-1]["cached_locales"]}
    report["meta"] = finish_meta(meta)
    return report


def format_table(report: dict) -> str:
    m = report["meta"]
    return "\n".join([
        f"resident memory at {report['patterns']:,} patterns (median of {len(report['rows'])} fresh interpreters)",
        (f"    after one locale: {report['rss_one_mb']:.1f} MB; after {report['locales']:,} random locales: "
         f"{report['rss_many_mb']:.1f} MB; ratio {report['ratio']:.3f} ({report['cached_locales']:,} locale "
         "strings cached)"),
        f"load average {m['load_average']} -> {m['load_average_end']}, {m['elapsed_s']:.0f} s",
    ])


def main(argv=None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_locales", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL,
                      quick_help="10K patterns, 2,000 locales, one interpreter")


if __name__ == "__main__":
    sys.exit(main())
