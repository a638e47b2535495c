"""What ``normalize`` costs on 100K simulated queries, against an earlier version in the same run.

Run: ``.venv/bin/python -m benchmarks.bench_normalize [--against REV] [--queries 100000] [--reps 7] [--json out.json]``

Inputs, each ``--queries`` texts:

- ``simulated``: the first texts of ``simulate_traffic(start=2026-01-01,
  queries_per_day=10000, seed=1)`` (the spine benchmark's traffic: English,
  Spanish and Japanese, about a third not ASCII);
- ``hostile``: the same texts, every third one disguised as an attacker or
  a confused keyboard would: a Latin letter of one word swapped for its
  Cyrillic look-alike, a zero-width joiner inside a word, or the text in
  full-width letters. It exercises the look-alike step on every third text.

Sides, each timed over the whole input ``--reps`` times in rotating order
(:func:`benchmarks._timing.interleaved`), figures the median of the paired
per-repetition ratios:

- ``normalize``: this checkout's :func:`rulelife.rules.normalize.normalize`;
- ``against``: ``normalize`` as it is in git revision ``--against`` (loaded
  from ``git show REV:rulelife/rules/normalize.py``, which imports only the
  standard library), for a before/after ratio measured in one run;
- ``floor``: ``" ".join(NFKC(text).casefold().split())``, the work no
  normalisation can skip, so the figure stays meaningful once ``--against``
  is the same version.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import types
import unicodedata
from pathlib import Path

from benchmarks._timing import interleaved, median, paired_ratio
from rulelife.rules.normalize import normalize

__all__ = ["hostile_texts", "load_normalize", "run"]

ROOT = Path(__file__).resolve().parents[1]
# Latin letters and a Cyrillic look-alike of each.
_LOOKALIKE = {"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у"}


def simulated_texts(queries: int) -> list[str]:
    from rulelife.simulate import simulate_traffic

    days = queries // 9_000 + 1  # about 10,000 a day
    texts = simulate_traffic(start=dt.date(2026, 1, 1), days=days, queries_per_day=10_000, seed=1)["text"].tolist()
    if len(texts) < queries:
        raise ValueError(f"the simulator gave {len(texts):,} texts, fewer than {queries:,}")
    return texts[:queries]


def _disguise(text: str, kind: int, rng: random.Random) -> str:
    if kind == 0:  # one look-alike inside a word
        spots = [i for i, char in enumerate(text) if char in _LOOKALIKE]
        if spots:
            i = rng.choice(spots)
            return text[:i] + _LOOKALIKE[text[i]] + text[i + 1:]
        return text
    if kind == 1:  # a zero-width joiner inside the text
        i = rng.randrange(len(text) + 1)
        return text[:i] + "\u200d" + text[i:]
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)  # full-width ASCII


def hostile_texts(texts: list[str], seed: int = 7) -> list[str]:
    """``texts`` with every third one disguised (look-alike, joiner or full width, in turn)."""
    rng = random.Random(seed)
    return [_disguise(t, (i // 3) % 3, rng) if i % 3 == 0 else t for i, t in enumerate(texts)]


def load_normalize(revision: str):
    """``normalize`` as it is in git ``revision`` of this repository."""
    source = subprocess.run(["git", "show", f"{revision}:rulelife/rules/normalize.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"normalize_at_{revision}")
    exec(compile(source, f"{revision}:rulelife/rules/normalize.py", "exec"), module.__dict__)  # our own code
    return module.normalize, getattr(module, "NORMALIZATION_VERSION", None)


def _floor(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def run(*, queries: int = 100_000, reps: int = 7, against: str = "HEAD", progress=print) -> dict:
    from rulelife.rules.normalize import NORMALIZATION_VERSION

    old, old_version = load_normalize(against)
    simulated = simulated_texts(queries)
    inputs = {"simulated": simulated, "hostile": hostile_texts(simulated)}
    figures = {}
    for name, texts in inputs.items():
        progress(f"normalize on {len(texts):,} {name} texts: {reps} reps of 3 sides")
        sides = {"normalize": normalize, "against": old, "floor": _floor}
        for function in sides.values():  # warm the lazily filled translation tables
            for text in texts[:5_000]:
                function(text)
        seconds = interleaved({side: (lambda f=function: [f(t) for t in texts]) for side, function in sides.items()},
                              reps)
        figures[name] = {
            "texts": len(texts),
            "not_ascii_share": round(sum(not t.isascii() for t in texts) / len(texts), 3),
            "changed_by_new_version_share": round(sum(normalize(t) != old(t) for t in texts) / len(texts), 4),
            **{f"{side}_s": round(median(s), 4) for side, s in seconds.items()},
            "ratio_against": round(paired_ratio(seconds, "normalize", "against"), 3),
            "ratio_floor": round(paired_ratio(seconds, "normalize", "floor"), 3),
        }
    return {"meta": {"queries": queries, "reps": reps, "against": against, "against_version": old_version,
                     "version": NORMALIZATION_VERSION, "load_average": os.getloadavg()},
            "figures": figures}


def format_table(report: dict) -> str:
    meta = report["meta"]
    lines = [f"normalize v{meta['version']} against {meta['against']} (v{meta['against_version']}), "
             f"{meta['queries']:,} texts, median of {meta['reps']} reps, load {meta['load_average'][0]:.2f}",
             f"{'input':10} {'not ASCII':>9} {'changed':>8} {'normalize s':>12} {'against s':>10} {'floor s':>8} "
             f"{'/against':>9} {'/floor':>7}"]
    lines += [f"{name:10} {f['not_ascii_share']:9.3f} {f['changed_by_new_version_share']:8.4f} "
              f"{f['normalize_s']:12.4f} {f['against_s']:10.4f} {f['floor_s']:8.4f} "
              f"{f['ratio_against']:9.3f} {f['ratio_floor']:7.3f}" for name, f in report["figures"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="git revision whose normalize is the before side")
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    report = run(queries=args.queries, reps=args.reps, against=args.against,
                 progress=lambda msg: print(msg, file=sys.stderr))
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
