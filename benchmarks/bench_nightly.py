"""Benchmark the nightly job (issue 4): a 1M-row day for 50 rules, and every monitor over a year.

    .venv/bin/python -m benchmarks.bench_nightly [--quick] [--json out.json]

[3] ``nightly.run_nightly(workspace, day)`` over one simulated day of about
    a million queries, replayed through a published bundle of 50 active
    rules (the 28 shipped ones and 22 synthetic ones whose phrases are
    frequent, single-intent n-grams of the simulated traffic), with every
    default monitor and tickets to the folder sink. Timed on a warm
    validation cache; the cold first run (great-expectations) is reported
    apart. Baseline, same run: stream the day's file with
    ``ParquetFile.iter_batches``, ``normalize`` every text and
    ``Matcher.match_many`` with the bundle's matcher. Target ratio ≤ 1.5.
[4] every monitor over 365 days × 50 rules × 3 locales, target ≤ 5 s:
    :mod:`benchmarks.bench_monitors`, re-run here so one command prints
    every issue-4 figure.

Repetitions run in rotating order; figures are medians, ratios are medians of
per-repetition ratios (``benchmarks/README.md``).
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from benchmarks import bench_monitors
from benchmarks._timing import bench_main, finish_meta, interleaved, median, paired_ratio, run_meta
from benchmarks.bench_gate import ACTOR, new_workspace
from rulelife.monitoring import nightly
from rulelife.rules.definition import Rule, intent_slug
from rulelife.rules.lifecycle import State
from rulelife.rules.matcher import Matcher
from rulelife.rules.normalize import normalize
from rulelife.rules.stopwords import stop_words_for
from rulelife.serving import publish
from rulelife.serving.replay import replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.simulate import simulate_traffic, write_log
from rulelife.store import registry

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run", "scan_day", "synthetic_rules"]

DAY = dt.date(2026, 3, 4)  # a Wednesday: weekday factor ~1, so the day holds ~queries rows
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    queries: int = 1_000_000
    rules: int = 50
    nightly_reps: int = 5
    monitors: bench_monitors.Config = field(default_factory=bench_monitors.Config)
    settings: dict = field(default_factory=dict)


FULL = Config()
QUICK = Config(queries=50_000, nightly_reps=3, monitors=bench_monitors.Config(days=90, rules=50, locales=3, reps=3))


def synthetic_rules(count: int, existing: list[Rule], *, sample: int = 40_000, seed: int = 17) -> list[Rule]:
    """``count`` rules of two phrases each, mined from simulated traffic.

    A phrase is a 2- or 3-word n-gram of the normalised en-US or es-ES text
    (Japanese has no spaces to split on) with a content word, no digit, no
    one-letter word at either end, seen at least 20 times, 90 % of them
    under one true intent, and no shipped pattern: what an author would
    write after reading the log, so the extra rules fire on real traffic at
    realistic rates and pass lint.
    """
    frame = simulate_traffic(start=DAY - dt.timedelta(days=60), days=1, queries_per_day=sample, seed=seed)
    taken = {normalize(p) for rule in existing for p in rule.patterns}
    seen: Counter[tuple[str, str]] = Counter()
    by_intent: Counter[tuple[str, str, str]] = Counter()
    for text, locale, intent in zip(frame["text"], frame["locale"], frame["true_intent"]):
        if locale == "ja-JP":
            continue
        stop = stop_words_for([locale])
        words = _WORD.findall(normalize(text))
        grams = {" ".join(words[i : i + n]) for n in (2, 3) for i in range(len(words) - n + 1)
                 if not any(c.isdigit() for w in words[i : i + n] for c in w)
                 and len(words[i]) > 1 and len(words[i + n - 1]) > 1  # not "s the release" from "what's"
                 and not all(w in stop for w in words[i : i + n])}
        for gram in grams:
            seen[(locale, gram)] += 1
            by_intent[(locale, gram, intent)] += 1
    best = {}
    for (locale, gram, intent), n in by_intent.items():
        if n >= 0.9 * seen[(locale, gram)] and n >= 20 and gram not in taken:
            best[(locale, gram)] = intent
    chosen: list[str] = []
    groups: dict[tuple[str, str], list[str]] = {}
    for (locale, gram), intent in sorted(best.items(), key=lambda kv: (-seen[kv[0]], kv[0])):
        if any(gram in c or c in gram for c in chosen):
            continue  # a sub- or super-phrase of one already taken adds no rule of its own
        chosen.append(gram)
        groups.setdefault((locale, intent), []).append(gram)
    pairs = [(key, phrases[i : i + 2]) for key, phrases in groups.items() for i in range(0, len(phrases) - 1, 2)]
    pairs.sort(key=lambda kv: -sum(seen[(kv[0][0], g)] for g in kv[1]))
    if len(pairs) < count:
        raise ValueError(f"the simulated sample yields only {len(pairs)} synthetic rules, {count} wanted; "
                         "raise sample")
    return [Rule(id=f"{intent_slug(intent)}.bench_{locale[:2]}_{k:02d}", intent=intent, patterns=phrases,
                 locales=[locale], match="word", priority=0, owner="bench@example.com",
                 description="synthetic benchmark rule")
            for k, ((locale, intent), phrases) in enumerate(pairs[:count])]


def _write_rule(rules_dir: Path, rule: Rule) -> None:
    folder, name = rule.id.split(".", 1)
    path = rules_dir / folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"id": rule.id, "intent": rule.intent, "patterns": list(rule.patterns), "locales": list(rule.locales),
            "match": rule.match, "priority": rule.priority, "owner": rule.owner, "description": rule.description}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def scan_day(path: Path, matcher: Matcher, batch_rows: int = 250_000) -> int:
    """The baseline: stream the file with pyarrow, normalise and match every text; rows scanned."""
    rows = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["text", "locale"]):
        normalized = [normalize(t) if t is not None else None for t in batch.column("text").to_pylist()]
        matcher.match_many(normalized, batch.column("locale").to_pylist(), normalized=True)
        rows += batch.num_rows
    return rows


def _deployment(config: Config, root: Path, progress):
    """A workspace whose published bundle holds ``config.rules`` active rules; workspace, bundle."""
    workspace, store = new_workspace(root, config.settings)
    shipped = registry.list_rules(store)
    extra = synthetic_rules(config.rules - len(shipped),
                            [registry.rule_definition(store, s.rule_id, s.latest_version) for s in shipped])
    for rule in extra:
        _write_rule(workspace.rules_dir, rule)
    registry.sync_workspace(workspace, actor=ACTOR, store=store)
    for status in registry.list_rules(store):
        registry.transition(store, status.rule_id, State.ACTIVE, actor=ACTOR, reason="benchmark deployment",
                            expiry_days=workspace.settings.expiry_days)
    bundle = publish.publish_active(workspace, actor=ACTOR, store=store).bundle
    store.dispose()
    progress(f"[3] bundle {bundle.number}: {len(bundle.rules)} active rules, {bundle.pattern_count} patterns")
    return workspace, bundle


def bench_nightly(config: Config, root: Path, progress=print) -> dict:
    """Figure 3: run_nightly over one replayed day against the raw streaming scan + match."""
    workspace, bundle = _deployment(config, root, progress)
    progress(f"[3] simulating and replaying one day of ~{config.queries:,} queries")
    frame = simulate_traffic(start=DAY, days=1, queries_per_day=config.queries, seed=11)
    classifier = RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=workspace.settings.shadow_rate)
    replayed = replay(frame, classifier)
    (path,) = write_log(replayed, workspace.log_dir)
    rows, answered = len(replayed), int(replayed["rule_id"].notna().sum())
    del frame, replayed
    progress(f"[3] cold nightly run over {rows:,} rows (great-expectations validates the file)")
    start = time.perf_counter()
    cold = nightly.run_nightly(workspace, DAY)
    cold_s = time.perf_counter() - start
    runs: list = []
    passes = {"nightly": lambda: runs.append(nightly.run_nightly(workspace, DAY)),
              "baseline": lambda: scan_day(path, bundle.matcher)}
    progress(f"[3] timing {config.nightly_reps} reps of nightly and the scan")
    seconds = interleaved(passes, config.nightly_reps)
    warm = runs[-1]
    nightly_s = median(seconds["nightly"])
    ratio = paired_ratio(seconds, "nightly", "baseline")
    return {
        "rows": rows, "rule_answers": answered, "rules": len(bundle.rules), "patterns": bundle.pattern_count,
        "reps": config.nightly_reps, "cold_nightly_s": cold_s, "nightly_s": nightly_s,
        "baseline_s": median(seconds["baseline"]), "ratio": ratio, "target_ratio": 1.5, "met": ratio <= 1.5,
        "cold_ge_batches": cold.log.get("ge_batches"), "warm_files_cached": len(warm.log.get("files_cached", [])),
        "warm_run": {"status": warm.status, "metric_rows": warm.metric_rows, "findings": len(warm.findings),
                     "tickets_opened": warm.tickets_opened, "exit_code": warm.exit_code},
        "seconds_per_rep": seconds,
    }


def run(config: Config, progress=print) -> dict:
    """Measure both figures under ``config``; return them as one JSON-ready dict."""
    meta = run_meta(config)
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-nightly-") as tmp:
        figure3 = bench_nightly(config, Path(tmp), progress)
    progress(f"[4] monitors over {config.monitors.days} days x {config.monitors.rules} rules x "
             f"{config.monitors.locales} locales, {config.monitors.reps} reps")
    figure4 = bench_monitors.run(config.monitors, progress)
    figure4["target_s"] = 5.0
    figure4["met"] = figure4["seconds"]["all_five"] <= 5.0
    finish_meta(meta)
    return {"meta": meta, "nightly": figure3, "monitors": figure4}


def format_table(report: dict) -> str:
    """The figures as a compact plain-text table."""
    n, meta = report["nightly"], report["meta"]
    lines = [
        f"[3] run_nightly over {n['rows']:,} rows ({n['rule_answers']:,} rule answers), {n['rules']} rules "
        f"({n['patterns']} patterns); target ratio <= {n['target_ratio']}",
        f"    nightly {n['nightly_s']:.2f} s (warm cache)  baseline scan+normalize+match_many {n['baseline_s']:.2f} s  "
        f"ratio {n['ratio']:.2f}  {'met' if n['met'] else 'MISSED'}",
        f"    cold first run (great-expectations) {n['cold_nightly_s']:.2f} s; warm run: {n['warm_run']['metric_rows']} "
        f"metric rows, {n['warm_run']['findings']} findings",
        "[4] " + bench_monitors.format_table(report["monitors"]).replace("\n", "\n    "),
        f"    load average {meta['load_average'][0]:.2f} -> {meta['load_average_end'][0]:.2f} on "
        f"{meta['cpus']} CPUs; {meta['elapsed_s']:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_nightly", doc=__doc__, run=run, format_table=format_table, quick=QUICK,
                      full=FULL, quick_help="reduced sizes for a smoke run (about a minute)")

if __name__ == "__main__":
    raise SystemExit(main())
