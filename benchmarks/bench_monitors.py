"""Benchmark the five shipped monitors on a year of synthetic metrics history.

    .venv/bin/python -m benchmarks.bench_monitors [--days 365 --rules 50 --locales 3 --reps 5]

The workload is the nightly job's: every monitor's ``check`` for the last day
of the history (days × rules × locales rows, default 365 × 50 × 3 = 54,750).
A few rules carry injected faults (an agreement drop, a coverage drop, a
safety error, an overdue expiry) so the alarm paths (ruptures, evidence) run
too. The baseline, measured in the same run, is one
``groupby(["rule_id", "locale"]).sum()`` of the count columns over the same
table: the least any per-series monitor has to do. Times are medians over
interleaved repetitions (``benchmarks/_timing.py``); the target is ≤ 5 s for
all five monitors together.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from benchmarks._timing import interleaved, median, paired_ratio
from monitors import AgreementCusum, AgreementFloor, CoverageDrift, Expiry, SafetyFalsePositive
from rulelife.config import Settings
from rulelife.monitoring.contract import METRIC_COLUMNS, MonitorContext, RuleInfo

__all__ = ["Config", "main", "run", "synthetic_history"]

INTENTS = ("order_tracking", "faq", "promotion", "product_question", "chitchat")
LOCALES = ("en-US", "de-DE", "ja-JP", "fr-FR", "es-ES")
START = date(2025, 1, 1)


@dataclass(frozen=True)
class Config:
    days: int = 365
    rules: int = 50
    locales: int = 3
    reps: int = 5
    seed: int = 0


def synthetic_history(config: Config) -> tuple[pd.DataFrame, MonitorContext]:
    """A metrics table with every contract column and a context knowing every rule."""
    rng = np.random.default_rng(config.seed)
    days, rules, locales = config.days, config.rules, LOCALES[: config.locales]
    rule_ids = [f"{INTENTS[r % len(INTENTS)]}.rule_{r:03d}" for r in range(rules)]
    shape = (rules, len(locales), days)
    traffic = rng.poisson(20_000, size=(len(locales), days))
    base_rate = rng.uniform(0.002, 0.03, size=(rules, len(locales), 1))
    rate = np.broadcast_to(base_rate, shape).copy()
    rate[1::10, 0, -5:] *= 0.6  # coverage drops on a few rules
    fires = rng.poisson(rate * traffic[None, :, :])
    shadow = rng.binomial(fires, 0.05)
    p = np.full(shape, 0.97)
    p[::10, :, -20:] = 0.88  # agreement drops on a few rules
    agree = rng.binomial(shadow, p)
    safety = np.zeros(shape, dtype="int64")
    safety[3, 1, -1] = 1  # one safety error today
    idx = pd.MultiIndex.from_product([rule_ids, locales, pd.date_range(START, periods=days)],
                                     names=["rule_id", "locale", "date"])
    frame = idx.to_frame(index=False)
    frame["rule_version"] = "v1"
    frame["intent"] = frame["rule_id"].str.split(".").str[0]
    frame["traffic"] = np.broadcast_to(traffic[None], shape).ravel()
    frame["fires"] = fires.ravel()
    frame["fire_rate"] = frame["fires"] / frame["traffic"]
    frame["shadow_n"] = shadow.ravel()
    frame["agree_n"] = agree.ravel()
    frame["agreement"] = frame["agree_n"] / frame["shadow_n"].where(frame["shadow_n"] > 0)
    frame["safety_fp"] = safety.ravel()
    frame["fp_by_class"] = [{} for _ in range(len(frame))]
    frame = frame[list(METRIC_COLUMNS)].astype(
        {name: dtype for name, dtype in METRIC_COLUMNS.items() if name != "fp_by_class"})
    day = START + timedelta(days=days - 1)
    expires = {rid: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=days - (20 if i % 17 == 0 else -30))
               for i, rid in enumerate(rule_ids)}
    infos = {rid: RuleInfo(rule_id=rid, intent=rid.split(".")[0], state="active", version="v1",
                           expires_at=expires[rid]) for rid in rule_ids}
    return frame, MonitorContext(day=day, settings=Settings(), rules=infos)


def run(config: Config, progress=print) -> dict:
    """Time every monitor's nightly check and the baseline; one JSON-ready dict."""
    history, context = synthetic_history(config)
    monitors = [cls() for cls in (AgreementCusum, AgreementFloor, CoverageDrift, SafetyFalsePositive, Expiry)]
    progress(f"history: {len(history):,} rows ({config.days} days × {config.rules} rules × "
             f"{config.locales} locales); day {context.day}")
    counts = ["traffic", "fires", "shadow_n", "agree_n", "safety_fp"]
    passes = {"baseline": lambda: history.groupby(["rule_id", "locale"])[counts].sum()}
    for m in monitors:
        passes[m.name] = (lambda m=m: m.check(history, context))
    passes["all_five"] = lambda: [m.check(history, context) for m in monitors]
    findings = {m.name: len(m.check(history, context)) for m in monitors}  # warm-up, and a sanity count
    seconds = interleaved(passes, config.reps)
    report = {
        "config": config.__dict__,
        "rows": len(history),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "findings": findings,
        "seconds": {name: median(values) for name, values in seconds.items()},
        "ratio_to_baseline": {name: paired_ratio(seconds, name, "baseline") for name in seconds if name != "baseline"},
    }
    return report


def format_table(report: dict) -> str:
    lines = [f"monitors over {report['rows']:,} history rows (median of {report['config']['reps']} reps)",
             f"{'monitor':<18}{'seconds':>10}{'× baseline':>12}{'findings':>10}"]
    for name, s in report["seconds"].items():
        ratio = report["ratio_to_baseline"].get(name)
        lines.append(f"{name:<18}{s:>10.4f}{(f'{ratio:.1f}' if ratio else '-'):>12}"
                     f"{report['findings'].get(name, ''):>10}")
    total = report["seconds"]["all_five"]
    lines.append(f"all five monitors: {total:.3f} s (target ≤ 5 s: {'met' if total <= 5 else 'MISSED'}), "
                 f"{report['ratio_to_baseline']['all_five']:.1f} × one groupby-sum over the same table")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--locales", type=int, default=3, choices=range(1, len(LOCALES) + 1))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    report = run(Config(days=args.days, rules=args.rules, locales=args.locales, reps=args.reps),
                 progress=lambda msg: print(msg, flush=True))
    print(format_table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
