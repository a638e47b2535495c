"""Mine, gate and measure on real customer-support intents (Bitext, 27 intents, 8,100 utterances).

Run: ``.venv/bin/python -m benchmarks.bench_bitext [--folds 5] [--json out.json]``

Setup
-----
- **Model.** TF-IDF (word 1-2-grams, sublinear tf) + logistic regression stands
  in for the production model. Every utterance gets an out-of-fold prediction
  and confidence from stratified k-fold cross-validation, so the whole set is
  traffic with realistic model errors (the model never saw the row it labels).
- **Traffic.** Rows shuffled (seeded) and spread uniformly over 60 days from
  2026-01-01, locale en-US, written as daily Parquet logs.
- **Safety intents.** ``contact_human_agent``, ``complaint``, ``get_refund``
  (the escalation / complaint / money-back intents that exist in the data).
- **Workspace.** A temporary SQLite workspace; Settings overrides: the 27
  intents, the safety intents, and the dataset floors lowered from 1,000 /
  5,000 to 100 rows: an intent has about 150 utterances in a 30-day window,
  so the default floors could never be met. Everything else is the default.
- **Flow.** ``mine_workspace`` on days 1-30 -> ``build_datasets`` on days 1-30
  -> ``promote`` (the real gate) for every candidate -> the active rules are
  measured on days 31-60: share of traffic they answer, agreement with the
  model and with the TRUE labels, safety false positives (the rule fires, its
  intent differs, and the model / the true label is a safety intent).
- **Compared.** The miner with ``merge="intent"`` (one rule per intent, up to
  20 patterns: on this little traffic a rule needs its whole intent's queries
  to give the interval gate 75 production rows), and a naive miner (one pattern a rule,
  no near-duplicate merging, no safety skip, no excludes, precision 0.9),
  each under ``gate_on = lower_bound`` and ``gate_on = point``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from rulelife import promotion, registry
from rulelife.config import Workspace
from rulelife.errors import GateRefused
from rulelife.matcher import Matcher
from rulelife.mining import mine_workspace
from rulelife.operations import open_store
from rulelife.simulate import write_log

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bitext_cs_intent"
SAFETY = ("contact_human_agent", "complaint", "get_refund")
START = dt.date(2026, 1, 1)
DAYS = 60
FLOOR = 100
VARIANTS = {
    "miner": {"merge": "intent", "max_patterns": 20},
    "naive": {"max_patterns": 1, "ignore_safety": True, "exclude_from": 0.9, "min_precision": 0.9},
}


def load_bitext(folder: Path, intents: list[str] | None = None) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in sorted(Path(folder).glob("*.csv"))]
    data = pd.concat(frames, ignore_index=True)[["utterance", "intent"]]
    if intents:
        data = data[data["intent"].isin(intents)].reset_index(drop=True)
    return data


def model_traffic(data: pd.DataFrame, *, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Out-of-fold model predictions, as a 60-day en-US query log with the true intent kept."""
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          LogisticRegression(C=10.0, max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, data["utterance"], data["intent"], cv=cv, method="predict_proba")
    classes = np.array(sorted(data["intent"].unique()))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    seconds = np.sort(rng.uniform(0, DAYS * 86400, len(data)))
    ts = pd.Timestamp(START, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    rows = data.iloc[order].reset_index(drop=True)
    p = proba[order]
    return pd.DataFrame({
        "query_id": pd.array([f"b-{i:05d}" for i in range(len(rows))], dtype="string"),
        "ts": ts,
        "text": pd.array(rows["utterance"], dtype="string"),
        "locale": pd.array(["en-US"] * len(rows), dtype="string"),
        "model_intent": pd.array(classes[p.argmax(axis=1)], dtype="string"),
        "model_confidence": pd.array(p.max(axis=1), dtype="Float64"),
        "true_intent": pd.array(rows["intent"], dtype="string"),
    })


def measure(rules, test: pd.DataFrame, safety=SAFETY) -> dict:
    """What the promoted rules do on held-out traffic."""
    matcher = Matcher.from_rules(rules)
    hits = matcher.match_many(test["text"].tolist(), "en-US")
    fired = np.array([h is not None for h in hits])
    rule_intent = np.array([h.intent if h else "" for h in hits], dtype=object)
    model = test["model_intent"].to_numpy(object)
    truth = test["true_intent"].to_numpy(object)
    n = int(fired.sum())
    wrong_model = fired & (rule_intent != model)
    wrong_truth = fired & (rule_intent != truth)
    return {
        "rules": len(rules),
        "test_rows": len(test),
        "fires": n,
        "coverage": n / len(test),
        "agreement_model": float((fired & ~wrong_model).sum() / n) if n else None,
        "agreement_true": float((fired & ~wrong_truth).sum() / n) if n else None,
        "model_accuracy_on_fired": float((model[fired] == truth[fired]).mean()) if n else None,
        "safety_fp_model": int((wrong_model & np.isin(model, safety)).sum()),
        "safety_fp_true": int((wrong_truth & np.isin(truth, safety)).sum()),
    }


def run_one(traffic: pd.DataFrame, *, gate_on: str, variant: str, root: Path, min_support: int = 20,
            floor: int = FLOOR) -> dict:
    mid = START + dt.timedelta(days=DAYS // 2 - 1)
    Workspace.create(root)
    intents = sorted(traffic["true_intent"].unique())
    ws = Workspace.load(root, intents=intents, safety_intents=list(SAFETY), dataset_floor=floor,
                        dataset_floor_high_traffic=floor, gate_on=gate_on)
    train = traffic[traffic["ts"].dt.date <= mid]
    write_log(train.drop(columns=["true_intent"]), ws.log_dir)
    params = dict(VARIANTS[variant])
    ignore_safety = params.pop("ignore_safety", False)
    if ignore_safety:
        ws = Workspace.load(root, intents=intents, safety_intents=[], dataset_floor=floor,
                            dataset_floor_high_traffic=floor, gate_on=gate_on)
    started = time.perf_counter()
    report = mine_workspace(ws, since=START, until=mid, min_support=min_support, **params)
    mine_seconds = time.perf_counter() - started
    ws = Workspace.load(root, intents=intents, safety_intents=list(SAFETY), dataset_floor=floor,
                        dataset_floor_high_traffic=floor, gate_on=gate_on)
    store = open_store(ws)
    ids = [c.id for c in report.written]
    promoted, refused = [], {}
    if ids:
        promotion.build_datasets(ws, ids, since=START, until=mid, actor="bench", store=store)
        for rule_id in ids:
            try:
                promotion.promote(ws, rule_id, actor="bench", store=store, republish=False)
                promoted.append(rule_id)
            except GateRefused as exc:
                refused[rule_id] = exc.reasons
    active = registry.active_rules(store)
    store.dispose()
    test = traffic[traffic["ts"].dt.date > mid].reset_index(drop=True)
    result = measure(active, test)
    refusal_kinds: dict[str, int] = {}
    for reasons in refused.values():
        for reason in reasons:
            kind = "safety" if "safety" in reason else "agreement" if "agreement" in reason else \
                "evidence" if "evidence" in reason else "other"
            refusal_kinds[kind] = refusal_kinds.get(kind, 0) + 1
    return {"variant": variant, "gate_on": gate_on, "candidates": len(report.candidates), "written": len(ids),
            "promoted": len(promoted), "refusals": refusal_kinds, "mine_seconds": round(mine_seconds, 2),
            "train_rows": len(train), **result}


def run(data_dir: Path = DATA, *, folds: int = 5, intents: list[str] | None = None, seed: int = 0,
        variants=("miner", "naive"), gates=("lower_bound", "point"), min_support: int = 20,
        floor: int = FLOOR) -> dict:
    data = load_bitext(data_dir, intents)
    traffic = model_traffic(data, folds=folds, seed=seed)
    accuracy = float((traffic["model_intent"] == traffic["true_intent"]).mean())
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-bitext-") as tmp:
        for variant in variants:
            for gate_on in gates:
                print(f"running {variant} / {gate_on} ...", file=sys.stderr)
                results.append(run_one(traffic, gate_on=gate_on, variant=variant, root=Path(tmp) / f"{variant}-{gate_on}",
                                       min_support=min_support, floor=floor))
    return {"meta": {"rows": len(traffic), "intents": int(traffic["true_intent"].nunique()), "folds": folds,
                     "model_accuracy_oof": accuracy, "safety_intents": list(SAFETY), "dataset_floor": floor,
                     "min_support": min_support, "days": DAYS},
            "results": results}


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.1%}" if isinstance(x, float) else str(x)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out = run(args.data, folds=args.folds)
    m = out["meta"]
    print(f"Bitext: {m['rows']} utterances, {m['intents']} intents, out-of-fold model accuracy "
          f"{m['model_accuracy_oof']:.1%}; mine days 1-30, measure days 31-60; dataset floor {m['dataset_floor']}")
    cols = ["variant", "gate_on", "candidates", "promoted", "coverage", "agreement_model", "agreement_true",
            "safety_fp_model", "safety_fp_true", "refusals"]
    print(" | ".join(cols))
    for r in out["results"]:
        print(" | ".join(_fmt(r[c]) for c in cols))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
