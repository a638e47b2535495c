"""Daily per-rule metrics from the runtime's query log.

The counting is a pure function of one chunk (:func:`count_chunk`) whose
outputs add up across chunks (:meth:`MetricCounts.__add__`); ratios (fire
rate, agreement) are computed only after summing (:func:`finalize`), never
averaged across chunks. The same function serves a streamed local read and,
run per partition, a distributed engine.

What the runtime wrote is the evidence: ``rule_id`` / ``rule_version`` say
which rule answered, ``shadow`` marks the sample for which the model was
called anyway, and only there does ``model_intent`` carry the model's label.

Shadow rules (``shadow_rules``: the ones that would have fired) are counted
with the same columns, in rows whose ``serving`` is ``"shadow"`` (``"active"``
for a rule that answered): ``fires`` are would-have-fired, ``shadow_n`` the
rows the model labelled (it answered because no active rule did, or the
query was in the shadow sample), and agreement and safety false positives
are judged on those. A shadow rule's labelled rows lean towards the queries
no active rule takes, since only the shadow sample labels the others.

``vetoed`` counts the rows whose ``lexicon_veto`` names the rule: a safety
lexicon phrase stopped it where it would have answered (the message went to
the model). Such a row is not one of the rule's fires.

``models`` counts the rows per day and ``model_version`` (the model that
labelled them, where the log says): a day's *dominant* version, the one
that labelled most of its rows, is what the nightly compares day to day to
see a retrained model (:mod:`rulelife.monitoring.model_changes`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rulelife.monitoring.contract import METRIC_COLUMNS
from rulelife.monitoring.model_versions import day_versions, dominant, versions_json
from rulelife.rules.matcher import locale_applies

__all__ = ["SERVING", "MetricCounts", "RuleVersionInfo", "count_chunk", "finalize"]

_KEYS = ["date", "rule_id", "rule_version", "locale", "serving"]
_ROW_KEYS = _KEYS[:4]  # one metrics row per these (see finalize: an active row wins over a shadow one)
_EXAMPLES = 3
SERVING = ("active", "shadow")  # values of the serving column
_HIT_SUMS = ["fires", "shadow_n", "agree_n", "safety_fp", "vetoed"]


@dataclass(frozen=True)
class RuleVersionInfo:
    """A rule version that was live on the day (from the bundles the log names)."""

    rule_id: str
    version: str
    intent: str
    locales: tuple[str, ...]
    serving: str = "active"  # "shadow": the bundle held it as a shadow rule


@dataclass
class MetricCounts:
    """Additive counts of part of a log.

    hits: per (date, rule_id, rule_version, locale, serving): fires, shadow_n, agree_n, safety_fp, vetoed
    classes: per (date, rule_id, rule_version, locale, serving, model_intent): disagreeing labelled fires
    traffic: per (date, locale): queries
    examples: per rule_id, the few disagreeing shadow queries with the smallest ids
    models: per (date, model_version): rows naming that model version
    """

    hits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[*_KEYS, *_HIT_SUMS]))
    classes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[*_KEYS, "model_intent", "n"]))
    traffic: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["date", "locale", "traffic"]))
    examples: dict[str, list[dict]] = field(default_factory=dict)
    models: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["date", "model_version", "n"]))

    def __add__(self, other: MetricCounts) -> MetricCounts:
        def add(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
            frames = [f for f in (a, b) if not f.empty]
            if not frames:
                return a
            both = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            return both.groupby(keys, as_index=False, sort=True).sum()

        examples = {k: list(v) for k, v in self.examples.items()}
        for rule_id, rows in other.examples.items():
            merged = {r["query_id"]: r for r in [*examples.get(rule_id, []), *rows]}
            examples[rule_id] = [merged[q] for q in sorted(merged)][:_EXAMPLES]
        return MetricCounts(
            hits=add(self.hits, other.hits, _KEYS),
            classes=add(self.classes, other.classes, [*_KEYS, "model_intent"]),
            traffic=add(self.traffic, other.traffic, ["date", "locale"]),
            examples=examples,
            models=add(self.models, other.models, ["date", "model_version"]),
        )


def count_chunk(chunk: pd.DataFrame, rule_intents: Mapping[str, str], safety_intents: Iterable[str], *,
                weights: Sequence[int] | np.ndarray | pd.Series | None = None) -> MetricCounts:
    """Counts of one chunk of the runtime's log (contract columns and dtypes).

    Parameters
    ----------
    chunk
        Rows of the log, with the contract dtypes (as ``iter_log`` yields them).
    rule_intents
        Each rule id that can appear -> its intent.
    safety_intents
        Intents a rule must never take from the model (``safety_fp``).
    weights
        How many log rows each row of ``chunk`` stands for, aligned with its
        rows (positive integers); default one each. A chunk of distinct rows
        with their multiplicities counts exactly as the rows expanded would,
        so an engine may group identical rows before they reach Python (the
        Spark engine does). A keyword, not a column: a log's extra columns
        pass through the reader, and one named like a weight must not change
        the counts.
    """
    n = np.ones(len(chunk), dtype="int64") if weights is None else _weights(weights, len(chunk))
    date = chunk["ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    locale = chunk["locale"].astype(str)
    traffic = (
        pd.DataFrame({"date": date, "locale": locale, "traffic": n})
        .groupby(["date", "locale"], as_index=False, sort=True)["traffic"]
        .sum()
    )
    models = _model_rows(chunk, date, n)
    hit = chunk["rule_id"].notna().to_numpy()
    tagged = chunk["shadow_rules"].notna().to_numpy() if "shadow_rules" in chunk else np.zeros(len(chunk), bool)
    vetoes = _veto_hits(chunk, date, locale, n)
    if not vetoes.empty:
        unknown = set(vetoes["rule_id"]) - set(rule_intents)
        if unknown:
            raise KeyError(f"rule ids in the log that no bundle of the day holds: {sorted(unknown)}")
    if not hit.any() and not tagged.any():
        return MetricCounts(hits=vetoes if not vetoes.empty else MetricCounts().hits, traffic=traffic,
                            models=models)
    rows = chunk[hit]
    active = pd.DataFrame({
        "date": date[hit],
        "rule_id": rows["rule_id"].astype(str),
        "rule_version": rows["rule_version"].astype(str),
        "locale": locale[hit],
        "serving": "active",
        "model_intent": rows["model_intent"],
        # An answering rule is labelled only in the shadow sample.
        "labelled": rows["shadow"].fillna(False).astype(bool) & rows["model_intent"].notna(),
        "query_id": rows["query_id"].astype(str),
        "text": rows["text"].astype(str),
        "n": n[hit],
    })
    frame = pd.concat([active, _shadow_frame(chunk, tagged, date, locale, n)], ignore_index=True) \
        if tagged.any() else active
    unknown = set(frame["rule_id"].unique()) - set(rule_intents)
    if unknown:
        raise KeyError(f"rule ids in the log that no bundle of the day holds: {sorted(unknown)}")
    intent = frame["rule_id"].map(rule_intents)
    labelled = frame["labelled"].astype(bool)
    agrees = labelled & (frame["model_intent"] == intent).fillna(False)
    disagrees = labelled & ~agrees
    safety = set(safety_intents)
    unsafe = disagrees & frame["model_intent"].isin(safety).fillna(False) & ~intent.isin(safety)
    counts = frame.assign(
        fires=frame["n"],
        shadow_n=labelled.astype("int64") * frame["n"],
        agree_n=agrees.astype("int64") * frame["n"],
        safety_fp=unsafe.astype("int64") * frame["n"],
    )
    hits = counts.assign(vetoed=0)
    if not vetoes.empty:
        hits = pd.concat([hits[[*_KEYS, *_HIT_SUMS]], vetoes], ignore_index=True)
    hits = hits.groupby(_KEYS, as_index=False, sort=True)[_HIT_SUMS].sum()
    wrong = frame[disagrees.to_numpy()]
    classes = (
        wrong.assign(model_intent=wrong["model_intent"].astype(str))
        .groupby([*_KEYS, "model_intent"], as_index=False, sort=True)["n"]
        .sum()
    )
    examples: dict[str, list[dict]] = {}
    # One example a query id, as MetricCounts.__add__ keeps them: a query
    # counted twice (weighted, or a duplicate) is still one example.
    distinct = wrong.sort_values("query_id", kind="stable").drop_duplicates("query_id")
    for rule_id, group in distinct.groupby("rule_id", sort=False):
        examples[str(rule_id)] = [
            {"query_id": r.query_id, "text": r.text, "locale": r.locale, "model_intent": str(r.model_intent)}
            for r in group.head(_EXAMPLES).itertuples()
        ]
    return MetricCounts(hits=hits, classes=classes, traffic=traffic, examples=examples, models=models)


def _model_rows(chunk: pd.DataFrame, date, n: np.ndarray) -> pd.DataFrame:
    """Per (date, model_version): the rows that name the version (a blank or missing cell names none)."""
    if "model_version" not in chunk:
        return MetricCounts().models
    version = chunk["model_version"].astype("string")
    named = (version.notna() & (version.str.strip() != "")).to_numpy(dtype=bool, na_value=False)
    if not named.any():
        return MetricCounts().models
    frame = pd.DataFrame({"date": date[named], "model_version": version[named].astype(str), "n": n[named]})
    return frame.groupby(["date", "model_version"], as_index=False, sort=True)["n"].sum()


def _veto_hits(chunk: pd.DataFrame, date, locale, n: np.ndarray) -> pd.DataFrame:
    """Per (date, rule, version, locale): rows whose lexicon_veto names the rule (the rule would have answered)."""
    if "lexicon_veto" not in chunk:
        return pd.DataFrame(columns=[*_KEYS, *_HIT_SUMS])
    where = np.flatnonzero(chunk["lexicon_veto"].notna().to_numpy())
    if not len(where):
        return pd.DataFrame(columns=[*_KEYS, *_HIT_SUMS])
    rows = []
    for at in where:  # vetoes are rare; the cell was validated by the reader
        for key in json.loads(chunk["lexicon_veto"].iat[at]):
            rule_id, version = key.rsplit("@", 1)
            rows.append((date.iat[at], rule_id, version, locale.iat[at], "active", 0, 0, 0, 0, int(n[at])))
    frame = pd.DataFrame(rows, columns=[*_KEYS, *_HIT_SUMS])
    return frame.groupby(_KEYS, as_index=False, sort=True)[_HIT_SUMS].sum()


def _shadow_frame(chunk: pd.DataFrame, tagged: np.ndarray, date, locale, n: np.ndarray) -> pd.DataFrame:
    """One row per (log row, shadow rule that would have fired on it)."""
    where = np.flatnonzero(tagged)
    cells = pd.Series(chunk["shadow_rules"].iloc[where].astype(str).to_numpy(), index=where)
    tags = cells.str.split(";").explode()
    at = tags.index.to_numpy()  # the position in the chunk of the row each tag came from
    pairs = tags.str.rsplit("@", n=1, expand=True) if len(tags) else pd.DataFrame({0: [], 1: []})
    model_intent = chunk["model_intent"].iloc[at].reset_index(drop=True)
    return pd.DataFrame({
        "date": date.iloc[at].reset_index(drop=True),
        "rule_id": pairs[0].astype(str).to_numpy(),
        "rule_version": pairs[1].astype(str).to_numpy(),
        "locale": locale.iloc[at].reset_index(drop=True),
        "serving": "shadow",
        "model_intent": model_intent,
        # The model's label is known wherever it was called: no active rule
        # answered, or the query was in the shadow sample.
        "labelled": model_intent.notna().to_numpy(),
        "query_id": chunk["query_id"].iloc[at].astype(str).to_numpy(),
        "text": chunk["text"].iloc[at].astype(str).to_numpy(),
        "n": n[at],
    })


def _weights(weights, rows: int) -> np.ndarray:
    """``weights`` as an int64 array, checked once: one positive integer a row."""
    values = np.asarray(weights)
    if values.shape != (rows,):
        raise ValueError(f"weights must hold one value a row: got shape {values.shape} for a chunk of {rows} rows")
    if values.dtype.kind not in "iu" or (values < 1).any():
        raise ValueError(f"weights must be positive integers (how many log rows each row stands for), got "
                         f"{values.dtype} with minimum {values.min() if rows else None}")
    return values.astype("int64", copy=False)


def finalize(counts: MetricCounts, rules: Iterable[RuleVersionInfo]) -> pd.DataFrame:
    """The metrics table: one row per live rule version × locale with traffic that
    day (a rule that did not fire gets fires 0, so a rule that stops firing shows)."""
    traffic = counts.traffic
    rules = list(rules)
    grid = []
    for rule in rules:
        for row in traffic.itertuples(index=False):
            if locale_applies(rule.locales, row.locale):
                grid.append((row.date, rule.rule_id, rule.version, row.locale, rule.serving, rule.intent,
                             int(row.traffic)))
    base = pd.DataFrame(grid, columns=[*_KEYS, "intent", "traffic"])
    hits = counts.hits.copy()
    if not hits.empty:
        # Fires by a version no bundle lists for a locale it covers still count (e.g. a locale added to the rule).
        extra = hits.merge(base[_KEYS], on=_KEYS, how="left", indicator=True)
        missing = extra[extra["_merge"] == "left_only"][_KEYS]
        if not missing.empty:
            intents = {r.rule_id: r.intent for r in rules}
            add = missing.merge(traffic, on=["date", "locale"], how="left")
            add["intent"] = add["rule_id"].map(intents).fillna("")
            base = pd.concat([base, add[[*_KEYS, "intent", "traffic"]]], ignore_index=True)
    table = base.merge(hits, on=_KEYS, how="left")
    for column in _HIT_SUMS:
        table[column] = table[column].fillna(0).astype("int64")
    table = _one_row_per_version(table)
    table["traffic"] = table["traffic"].fillna(0).astype("int64")
    table["fire_rate"] = np.where(table["traffic"] > 0, table["fires"] / table["traffic"].clip(lower=1), 0.0)
    agreement = pd.array(table["agree_n"] / table["shadow_n"].where(table["shadow_n"] > 0), dtype="Float64")
    table["agreement"] = agreement
    by_class: dict[tuple, dict[str, int]] = {}
    for row in counts.classes.itertuples(index=False):
        key = (row.date, row.rule_id, row.rule_version, row.locale, row.serving)
        by_class.setdefault(key, {})[row.model_intent] = int(row.n)
    table["fp_by_class"] = [by_class.get(tuple(k), {}) for k in table[_KEYS].itertuples(index=False, name=None)]
    table["date"] = pd.to_datetime(table["date"])
    for column, dtype in METRIC_COLUMNS.items():
        if dtype in ("string", "int64", "float64", "Float64"):
            table[column] = table[column].astype(dtype)
    table["serving"] = table["serving"].astype("string")
    # The model behind the day's labels: its dominant version and every version named (JSON, version -> rows).
    days = day_versions(counts.models)
    on = table["date"].dt.date
    table["model_version"] = pd.array([dominant(days.get(d, {})) for d in on], dtype="string")
    table["model_versions"] = pd.array([versions_json(days.get(d, {})) for d in on], dtype="string")
    # serving, vetoed and the model columns follow the monitors' columns: a reader of METRIC_COLUMNS sees
    # the table it always did.
    return table[[*METRIC_COLUMNS, "serving", "vetoed", "model_version", "model_versions"]].sort_values(
        _KEYS, ignore_index=True)


def _one_row_per_version(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (date, rule, version, locale) where a version was both shadow and active.

    That happens on the day a shadow rule is promoted (or over a range of
    days). The active row is kept unless only the shadow one fired: the
    shadow evidence of a version already promoted decides nothing more.
    """
    both = table.duplicated(_ROW_KEYS, keep=False).to_numpy()
    if not both.any():
        return table
    shadow = (table["serving"] == "shadow").to_numpy()
    keys = [table[k] for k in _ROW_KEYS]
    active_fires = table["fires"].where(~shadow, 0).groupby(keys).transform("sum").to_numpy()
    shadow_fires = table["fires"].where(shadow, 0).groupby(keys).transform("sum").to_numpy()
    shadow_only = (shadow_fires > 0) & (active_fires == 0)
    drop = both & np.where(shadow, ~shadow_only, shadow_only)
    return table[~drop].reset_index(drop=True)


def fp_json(value: Mapping[str, int]) -> str:
    return json.dumps(dict(sorted(value.items())))
