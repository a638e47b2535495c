"""Helpers of ``benchmarks.bench_realdata``: labelled CSVs in, model-labelled traffic out, served rules measured.

Nothing here decides a rule's fate; the flows in ``bench_realdata`` call the
real workspace code for that. This module only prepares the traffic, writes
it as a query log and measures what the published bundle answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline, make_union

from rulelife.config import Workspace
from rulelife.evidence import promotion
from rulelife.model.residual import accuracy
from rulelife.serving.runtime import RuleClassifier
from rulelife.simulate import write_log

TEXT_COLUMNS = ("utterance", "text", "query", "sentence")
INTENT_COLUMNS = ("intent", "label", "category")
START = dt.date(2026, 1, 1)
DAYS = 60
LOCALE = "en-US"


class DataError(ValueError):
    """The data folder or an option cannot be used as given; the message says how to fix it."""


def _pick_column(columns: Sequence[str], candidates: Sequence[str], given: str | None, path: Path,
                 option: str) -> str:
    """The column named ``given``, else the first of ``candidates`` present (exact, then any case)."""
    if given is not None:
        if given not in columns:
            raise DataError(f"{path}: no column '{given}' (columns: {', '.join(columns)}); fix {option}")
        return given
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(f"{path}: none of the columns {', '.join(columns)} is one of {'|'.join(candidates)}; "
                    f"name the column with {option}")


def load_folder(folder: Path, *, text_col: str | None = None, intent_col: str | None = None,
                intents: Sequence[str] | None = None) -> pd.DataFrame:
    """Every CSV in ``folder`` as one frame with columns ``text`` and ``intent``.

    Parameters
    ----------
    folder
        Folder of CSV files, each with a text and an intent column.
    text_col, intent_col
        Column names; None detects them per file (``utterance|text|query|sentence``
        and ``intent|label|category``, first present wins).
    intents
        Keep only these intents (spelled as in the data); None keeps all.
    """
    folder = Path(folder)
    paths = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not paths:
        raise DataError(f"{folder}: no CSV files found; pass --data with a folder of CSV files")
    frames = []
    for path in paths:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        text = _pick_column(list(raw.columns), TEXT_COLUMNS, text_col, path, "--text-col")
        intent = _pick_column(list(raw.columns), INTENT_COLUMNS, intent_col, path, "--intent-col")
        frame = pd.DataFrame({"text": raw[text].str.strip(), "intent": raw[intent].str.strip()})
        blank = frame.index[(frame["text"] == "") | (frame["intent"] == "")]
        if len(blank):
            # Line numbers as an editor shows them: the header is line 1.
            raise DataError(f"{path}: line {blank[0] + 2}: empty '{text}' or '{intent}'; fill or remove the row "
                            f"({len(blank)} such row(s) in the file)")
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    if intents:
        unknown = sorted(set(intents) - set(data["intent"]))
        if unknown:
            raise DataError(f"{folder}: no rows for intent(s) {', '.join(unknown)}; "
                            f"the data has {', '.join(sorted(data['intent'].unique()))}")
        data = data[data["intent"].isin(intents)].reset_index(drop=True)
    return data


def check_safety(safety: Sequence[str], intents: Sequence[str]) -> None:
    """Refuse safety intents absent from the data: a misspelt one would count no false positive ever."""
    unknown = [s for s in safety if s not in intents]
    if unknown:
        raise DataError(f"safety intent(s) {', '.join(unknown)} not in the data; pass --safety with intents "
                        f"spelled as the data spells them ({', '.join(intents)})")


def model_traffic(data: pd.DataFrame, *, folds: int = 5, seed: int = 0, regularization: float = 10.0) -> pd.DataFrame:
    """Out-of-fold model predictions as a ``DAYS``-day en-US query log, ``true_intent`` kept as an extra column.

    Every row is labelled by a model that never saw it, so the log carries the
    model's real mistakes. The model, TF-IDF word 1-2-grams and char_wb
    2-5-grams into a logistic regression, stands in for the production model:
    char n-grams make it robust to the typos and inflections of real traffic.
    ``regularization`` is the regression's ``C`` (a larger one: a surer model);
    the rows, their order and their times depend on ``seed`` only.
    """
    smallest = data["intent"].value_counts()
    if smallest.min() < folds:
        raise DataError(f"intent '{smallest.idxmin()}' has {smallest.min()} row(s), fewer than the {folds} "
                        f"cross-validation folds; add rows or leave it out with --intents")
    model = make_pipeline(
        make_union(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        LogisticRegression(C=regularization, max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, data["text"], data["intent"], cv=cv, method="predict_proba")
    classes = np.array(sorted(data["intent"].unique()))  # predict_proba's column order
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    # Uniform arrival times, sorted, so shuffled rows spread evenly over the days.
    seconds = np.sort(rng.uniform(0, DAYS * 86400, len(data)))
    rows, p = data.iloc[order].reset_index(drop=True), proba[order]
    return pd.DataFrame({
        "query_id": pd.array([f"q-{i:06d}" for i in range(len(rows))], dtype="string"),
        "ts": pd.Timestamp(START, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
        "text": pd.array(rows["text"], dtype="string"),
        "locale": pd.array([LOCALE] * len(rows), dtype="string"),
        "model_intent": pd.array(classes[p.argmax(axis=1)], dtype="string"),
        "model_confidence": pd.array(p.max(axis=1), dtype="Float64"),
        "true_intent": pd.array(rows["intent"], dtype="string"),
    })


def day(index: int) -> dt.date:
    """The calendar date of day ``index`` (day 0 is ``START``)."""
    return START + dt.timedelta(days=index)


def days_slice(traffic: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    """The rows of days ``first`` to ``last``, both included."""
    dates = traffic["ts"].dt.date
    return traffic[(dates >= day(first)) & (dates <= day(last))].reset_index(drop=True)


def make_workspace(root: Path, log: pd.DataFrame, *, intents: Sequence[str], safety: Sequence[str], gate_on: str,
                   floor: int, **settings) -> Workspace:
    """A fresh workspace at ``root`` with ``log`` written to its logs folder as daily Parquet files.

    The settings are overrides only (nothing is written to rulelife.toml), so
    every later call must use the returned workspace.
    """
    Workspace.create(root)
    workspace = Workspace.load(root, intents=list(intents), safety_intents=list(safety),
                               dataset_floor=floor, dataset_floor_high_traffic=floor, gate_on=gate_on, **settings)
    write_log(log, workspace.log_dir)
    return workspace


def failed_checks(workspace: Workspace, rule_id: str, store) -> list[str]:
    """Names of the gate checks ``rule_id`` fails now (the structured form of a refusal's reasons)."""
    result = promotion.evaluate(workspace, rule_id, store=store, record=False)
    return [c.name for c in result.decision.checks if not c.passed]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def measure(workspace: Workspace, measured: pd.DataFrame, safety: Sequence[str]) -> dict:
    """What the published bundle answers on ``measured``, served by the runtime classifier.

    A safety false positive is a rule answer whose intent differs from the
    label while the label is a safety intent; it is counted against the
    model's label and against the true label. Every false positive is listed
    with its text in the per-rule rows, so the totals can be recounted.
    """
    classifier = RuleClassifier(workspace.bundle_dir, shadow_rate=workspace.settings.shadow_rate)
    matches = classifier.classify_many(measured["text"].tolist(), measured["locale"].tolist(),
                                       measured["query_id"].tolist())
    per_rule = {r.id: {"rule_id": r.id, "intent": r.intent, "patterns": list(r.patterns), "fires": 0,
                       "agree_model": 0, "agree_true": 0, "safety_fp_model": 0, "safety_fp_true": 0,
                       "safety_fp_examples": []} for r in classifier.bundle.rules}
    shadow_sampled = 0
    safety = set(safety)
    # The model's accuracy before the bundle (it serves every row) and after it (only what no rule answered).
    left = np.array([m is None for m in matches], dtype=bool)
    right = (measured["model_intent"] == measured["true_intent"]).to_numpy(dtype=bool)
    for match, text, model, truth in zip(matches, measured["text"], measured["model_intent"],
                                         measured["true_intent"]):
        if match is None:
            continue
        row = per_rule[match.rule_id]
        row["fires"] += 1
        row["agree_model"] += match.intent == model
        row["agree_true"] += match.intent == truth
        fp_model = match.intent != model and model in safety
        fp_true = match.intent != truth and truth in safety
        row["safety_fp_model"] += fp_model
        row["safety_fp_true"] += fp_true
        shadow_sampled += match.shadow
        if fp_model or fp_true:
            row["safety_fp_examples"].append({"text": text, "model_intent": model, "true_intent": truth,
                                              "pattern": match.pattern})
    rules = sorted(per_rule.values(), key=lambda r: (-r["fires"], r["rule_id"]))
    fires = sum(r["fires"] for r in rules)
    return {
        "bundle": classifier.bundle_version,
        "measured_rows": len(measured),
        "fires": fires,
        "shadow_sampled": shadow_sampled,
        "coverage": _share(fires, len(measured)),
        "agreement_model": _share(sum(r["agree_model"] for r in rules), fires),
        "agreement_true": _share(sum(r["agree_true"] for r in rules), fires),
        "safety_fp_model": sum(r["safety_fp_model"] for r in rules),
        "safety_fp_true": sum(r["safety_fp_true"] for r in rules),
        "model_accuracy_all": accuracy(int(right.sum()), len(right)),
        "model_accuracy_residual": accuracy(int(right[left].sum()), int(left.sum())),
        "rules": rules,
    }
