"""Time and size of the rule health report over a year of fifty rules.

    .venv/bin/python -m benchmarks.bench_report [--quick] [--days 365 --rules 50] [--out report.html]

A temporary SQLite workspace gets ``days`` × ``rules`` × 3 locales of
synthetic ``DailyMetricRow`` rows (binomial agreement near 0.98, Poisson
fires), with drifts injected the way the monitors meet them (an agreement
drop in one locale, a fire-rate drop), plus state changes, auto-disables,
tickets, evaluations and rules close to expiry. The figure is the time of
``write_report`` (no query log, so no residual view: reading a log is the
nightly job's cost, not the page's) and the file size, next to a same-run
baseline: reading the metrics table into pandas with ``pandas.read_sql``.
Targets: written in at most 10 s, at most 5 MB.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from rulelife.config import Workspace
from rulelife.report import write_report
from rulelife.store import AuditRow, DailyMetricRow, EvaluationRow, PromotionRow, RuleStateRow, Store, TicketRow

__all__ = ["Synthetic", "main", "run", "synthesize"]

LOCALES = {"en-US": 6000, "es-ES": 2000, "ja-JP": 2000}  # queries a day
INTENTS = ("order_tracking", "faq", "product_question", "recommendation", "promotion", "chitchat")
TARGET_SECONDS, TARGET_MB = 10.0, 5.0


@dataclass(frozen=True)
class Synthetic:
    """What :func:`synthesize` injected (the ground truth a test or a reader checks against)."""

    start: date
    days: int
    rule_ids: list[str]
    agreement_drops: dict[str, tuple[str, date]]  # rule -> (locale, first day of the drop)
    coverage_drops: dict[str, date]
    disabled: dict[str, date]


def _evaluation(rule_id: str, intent: str, rng: np.random.Generator) -> dict:
    n, agree = 1000, int(rng.binomial(1000, 0.975))
    p = agree / n
    stratum = {"stratum": "production", "n": n, "agree": agree, "agreement": p, "low": p - 0.012, "high": p + 0.009,
               "fires": n, "false_positives": n - agree, "safety_false_positives": {}, "safety_fp_upper_bound": 3 / n}
    return {"rule_id": rule_id, "rule_version": "v1", "intent": intent, "dataset_hash": "0" * 64, "rows": n,
            "production": {"estimate": p, "low": p - 0.012, "high": p + 0.009, "n": n, "effective_n": float(n)},
            "production_raw": [agree, n], "samples_to_settle": 0, "strata": [stratum],
            "disagreements": {"chitchat": (n - agree) // 2, "faq": n - agree - (n - agree) // 2},
            "dominant_disagreement": None, "class_fp_rates": {"chitchat": 0.01}, "severity_weighted_fp": 0.0,
            "safety_false_positives": 0, "safety_examples": [],
            "slices": {"locale": [{"value": "en-US", "n": n, "agree": agree, "agreement": p, "low": p - 0.012,
                                   "high": p + 0.009}]},
            "fire_count": 30 * n, "fires_per_day": float(n), "safety_fp_in_log": {}, "notes": []}


def synthesize(store: Store, *, days: int, rules: int, start: date | None = None, seed: int = 0,
               now: datetime | None = None) -> Synthetic:
    """Write ``days`` of metrics for ``rules`` rules in 3 locales, with drifts, into ``store``.

    ``start`` defaults to ``days`` days before today, so the last day is yesterday
    and expiry dates (wall-clock times) fall near the report's clock.
    """
    rng = np.random.default_rng(seed)
    start = start or datetime.now(UTC).date() - timedelta(days=days)
    now = now or datetime.combine(start + timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    rule_ids = [f"{INTENTS[i % len(INTENTS)]}.rule_{i:02d}" for i in range(rules)]
    # Every 7th rule's agreement drops in en-US 40 days before the end; every
    # 5th rule fires 40% less from 30 days before the end; drops past the
    # floor get the rule disabled 3 days later, as the floor monitor would.
    drop_day = start + timedelta(days=max(days - 40, days // 2))
    coverage_day = start + timedelta(days=max(days - 30, days // 2))
    agreement_drops = {r: ("en-US", drop_day) for i, r in enumerate(rule_ids) if i % 7 == 3}
    coverage_drops = {r: coverage_day for i, r in enumerate(rule_ids) if i % 5 == 1}
    disabled = {r: drop_day + timedelta(days=3) for i, r in enumerate(rule_ids) if i % 14 == 3}
    day_list = [start + timedelta(days=d) for d in range(days)]
    rows = []
    for i, rule_id in enumerate(rule_ids):
        intent = rule_id.split(".")[0]
        rate = rng.uniform(0.01, 0.06)
        for locale, traffic in LOCALES.items():
            expected = np.full(days, rate * traffic)
            agree_p = np.full(days, rng.uniform(0.975, 0.995))
            if rule_id in coverage_drops:
                expected[(coverage_drops[rule_id] - start).days:] *= 0.6
            if rule_id in agreement_drops and agreement_drops[rule_id][0] == locale:
                agree_p[(drop_day - start).days:] = 0.90
            fires = rng.poisson(expected)
            shadow = rng.binomial(fires, 0.2)
            agree = rng.binomial(shadow, agree_p)
            last = days if rule_id not in disabled else (disabled[rule_id] - start).days + 1
            for d in range(last):
                rows.append({"day": day_list[d], "rule_id": rule_id, "rule_version": "v1", "intent": intent,
                             "locale": locale, "traffic": traffic, "fires": int(fires[d]),
                             "fire_rate": fires[d] / traffic, "shadow_n": int(shadow[d]), "agree_n": int(agree[d]),
                             "agreement": agree[d] / shadow[d] if shadow[d] else None, "safety_fp": 0,
                             "fp_by_class": json.dumps({"chitchat": int(shadow[d] - agree[d])} if shadow[d] > agree[d]
                                                       else {}), "examples": "[]"})
    with store.engine.begin() as conn:  # one executemany: the ORM would take longer than the report
        conn.execute(DailyMetricRow.__table__.insert(), rows)
    with store.session() as session:
        for i, rule_id in enumerate(rule_ids):
            intent = rule_id.split(".")[0]
            state = "disabled" if rule_id in disabled else "active"
            # A few rules expire within the revalidation horizon.
            expires = now + timedelta(days=3 + i) if i % 9 == 0 else now + timedelta(days=60 + i)
            session.add(RuleStateRow(rule_id=rule_id, intent=intent, state=state, version="v1", latest_version="v1",
                                     updated_at=now, expires_at=expires if state == "active" else None))
            promoted = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(days=i % 5)
            session.add(PromotionRow(rule_id=rule_id, rule_version="v1", dataset_hash="0" * 64, at=promoted,
                                     actor="bench", from_state="candidate", to_state="active"))
            session.add(EvaluationRow(rule_id=rule_id, rule_version="v1", dataset_hash="0" * 64, at=promoted,
                                      actor="bench", passed=True, reasons="[]",
                                      metrics=json.dumps(_evaluation(rule_id, intent, rng))))
        for rule_id, day in disabled.items():
            finding = {"subject": rule_id, "check": "agreement_floor", "day": day.isoformat(), "action": "disable",
                       "summary": f"{rule_id} stayed below the 95% floor in en-US for 3 days, so it is disabled.",
                       "evidence": {"locale": "en-US", "floor": 0.95}}
            session.add(AuditRow(rule_id=rule_id, at=now, actor="nightly", action="auto_disable", from_state="active",
                                 to_state="disabled", to_version="v1", reason="agreement_floor",
                                 evidence=json.dumps(finding)))
        for n, (rule_id, day) in enumerate(coverage_drops.items()):
            key = f"{rule_id}::coverage_drift"
            session.add(TicketRow(dedupe_key=key, open_key=key, subject=rule_id, check="coverage_drift",
                                  locale="en-US", severity="warning", title=f"Fire rate of {rule_id} dropped 40%",
                                  created_at=now, updated_at=now, findings=1 + n % 3, first_day=day,
                                  last_day=day + timedelta(days=n % 3),
                                  evidence=json.dumps({"locale": "en-US", "relative_change": -0.4,
                                                       "fire_rate_series": [
                                                           {"date": (day + timedelta(days=d)).isoformat(),
                                                            "value": 0.03 if d < 0 else 0.018, "n": 6000}
                                                           for d in range(-10, 3)]})))
    return Synthetic(start, days, rule_ids, agreement_drops, coverage_drops, disabled)


def _baseline(store: Store) -> float:
    started = time.perf_counter()
    pd.read_sql("SELECT * FROM daily_metrics", store.engine)
    return time.perf_counter() - started


def run(days: int, rules: int, out: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace.create(Path(tmp) / "ws")
        store = Store.from_workspace(workspace)
        synth = synthesize(store, days=days, rules=rules)
        baseline = _baseline(store)
        target = out or Path(tmp) / "report.html"
        started = time.perf_counter()
        result = write_report(workspace, target, since=synth.start, store=store, now=datetime.now(UTC))
        seconds = time.perf_counter() - started
        store.dispose()
        rows = days * rules * len(LOCALES)
        return {"days": days, "rules": rules, "metric_rows": rows, "seconds": round(seconds, 3),
                "mb": round(result.size / 1e6, 3), "baseline_read_sql_s": round(baseline, 3),
                "ratio_to_baseline": round(seconds / baseline, 1) if baseline else None,
                "counts": result.counts, "within_targets": seconds <= TARGET_SECONDS and result.size / 1e6 <= TARGET_MB}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 days × 10 rules: a smoke run")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--out", type=Path, help="keep the report here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    days, rules = (60, 10) if args.quick else (args.days, args.rules)
    figures = run(days, rules, args.out)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"report over {days} days × {rules} rules ({figures['metric_rows']:,} metric rows): "
              f"{figures['seconds']:.2f} s, {figures['mb']:.2f} MB (targets: ≤ {TARGET_SECONDS:g} s, ≤ {TARGET_MB:g} MB)")
        print(f"baseline, pandas.read_sql of the metrics table: {figures['baseline_read_sql_s']:.2f} s "
              f"(report / baseline = {figures['ratio_to_baseline']})")
    return 0 if figures["within_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
