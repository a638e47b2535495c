"""Build a rule's evaluation dataset from the query log in one streaming pass.

Three strata (default mix 60 / 25 / 15, see ``Settings.dataset_mix``):

- **production**: model-labelled queries the rule fires on, sampled within
  strata of (model intent, locale, length bucket) in proportion to their
  traffic. The population of every stratum is counted, so evaluation can
  weight each stratum by its true share and stay unbiased.
- **hard_negative**: queries that look like the rule's but the model labels
  otherwise, from the ``hard_negatives`` miner plugin; the rule firing on one
  of them (a false positive) is taken first, then vetoed, partial and
  shared-vocabulary look-alikes.
- **adversarial**: the curated file kept next to the rule.

Sizes: the dataset aims at the floor (``dataset_floor`` rows, or
``dataset_floor_high_traffic`` when the rule fired at least
``high_traffic_fires`` times in the window). A short hard-negative or
adversarial stratum is filled with more production rows; a short production
stratum is not padded with anything, because only production rows speak to
agreement: the dataset is then smaller than the floor and the gate says so.

Every count is a sum over chunks and every sample keeps the rows with the
smallest hash keys, so memory is bounded by the sample size, not the log, and
the same per-chunk function would run on partitions of a distributed engine.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rulelife.config import Settings
from rulelife.evidence.datasets.neighbourhood import BASE
from rulelife.evidence.datasets.strata import length_bucket, sample_keys
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import Matcher, compile_rule

__all__ = ["DATASET_COLUMNS", "BuiltDataset", "DatasetBuilder"]

DATASET_COLUMNS = [
    "query_id", "ts", "text", "locale", "model_intent", "model_confidence", "stratum", "stratum_key", "reason",
]
_REASON_ORDER = ("fires", "excluded", "partial_pattern", "shared_vocabulary")
_EXAMPLES = 5


class _BottomK:
    """Per group, the k rows with the smallest ``_key`` seen so far.

    Invariant: after a prune, ``_parts`` is one frame holding, for every
    group, its k smallest-key rows. Offers are buffered and pruned in bulk
    (one sort and one ``groupby().head``), so memory stays under
    ``buffer_rows`` plus k rows a group, however long the log.
    """

    def __init__(self, k: int, by: str, buffer_rows: int = 200_000):
        self.k = k
        self.by = by
        self.buffer_rows = max(buffer_rows, k)
        self._parts: list[pd.DataFrame] = []
        self._rows = 0

    def offer(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        self._parts.append(rows)
        self._rows += len(rows)
        if self._rows > self.buffer_rows:
            self._prune()

    def _prune(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame()
        frame = self._parts[0] if len(self._parts) == 1 else pd.concat(self._parts, ignore_index=True)
        frame = frame.sort_values("_key", kind="stable").groupby(self.by, sort=False, observed=True).head(self.k)
        self._parts, self._rows = [frame], len(frame)
        return frame

    def merge(self, other: _BottomK) -> _BottomK:
        """Add ``other``'s rows: the k smallest keys of the union are the k smallest of the two k-smallest."""
        self._parts.extend(other._parts)
        self._rows += other._rows
        if self._rows > self.buffer_rows:
            self._prune()
        return self

    def take(self, counts: dict[str, int]) -> pd.DataFrame:
        """The ``counts[g]`` smallest-key rows of each group g."""
        frame = self._prune()
        if frame.empty:
            return frame
        rank = frame.groupby(self.by, sort=False, observed=True).cumcount().to_numpy()
        limit = frame[self.by].astype(str).map(counts).fillna(0).to_numpy()
        return frame[rank < limit]


@dataclass
class BuiltDataset:
    """A built dataset before it is stored: rows, content hash and metadata."""

    rule: Rule
    rows: pd.DataFrame
    meta: dict
    content_hash: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.rows["stratum"].value_counts().items()}


class DatasetBuilder:
    """Streaming builder for one rule version; builders of two parts of a log merge.

    Every piece of state is a sum, a minimum/maximum or a bottom-k sample, so
    ``a.merge(b)`` after ``a.add(x)`` and ``b.add(y)`` holds what one builder
    fed ``x`` then ``y`` holds, whatever the order: the same per-chunk work runs
    on one process, a pool or Spark partitions (:mod:`rulelife.engines.fold`).

    Parameters
    ----------
    rule
        The rule version the dataset is for.
    settings
        Mix, floors and safety intents.
    miner
        A fitted hard-negative miner (``candidates(chunk) -> DataFrame`` with a
        ``hard_negative_reason`` column), or None to skip that stratum.
    """

    def __init__(self, rule: Rule, settings: Settings, miner=None):
        self.rule = rule
        self.settings = settings
        self.miner = miner
        self._matcher: Matcher | None = None  # built on first use: most callers pass ``fires``
        self._salt = f"{rule.id}@{rule.version}"
        cap = max(settings.dataset_floor, settings.dataset_floor_high_traffic)
        self._cap = cap
        # _production keeps, per stratum s, the cap smallest-key fired,
        # labelled rows; _population[s] counts all of them.
        self._production = _BottomK(cap, "stratum_key")
        self._population: Counter[str] = Counter()
        self._negatives = _BottomK(cap, "hard_negative_reason")
        self._negative_counts: Counter[str] = Counter()
        self._safety_fp: Counter[str] = Counter()
        self._safety_examples: list[dict] = []
        self.fires = 0
        self.labelled_fires = 0
        self.rows_seen = 0
        self._first_ts: pd.Timestamp | None = None
        self._last_ts: pd.Timestamp | None = None
        # _near[(word, intent)]: labelled queries holding the rule's content word, per safety
        # intent; intent "" counts all of them (see rulelife.evidence.datasets.neighbourhood).
        self._near: Counter = Counter()
        # _models[v]: fired, labelled rows model version v labelled (the log's model_version, where it names one).
        self._models: Counter[str] = Counter()

    def add(
        self, chunk: pd.DataFrame, normalized: list[str | None] | None = None, fires: np.ndarray | None = None
    ) -> None:
        """Count and sample one chunk of the log (contract columns and dtypes).

        Callers feeding one chunk to several builders pass what they computed
        once: ``normalized`` (the chunk's text, normalised) and ``fires`` (a
        boolean array: this rule fired on the row, e.g. from one matcher of
        all the rules' ``MatchResult.fired``).
        """
        if chunk.empty:
            return
        self.rows_seen += len(chunk)
        ts = chunk["ts"]
        low, high = ts.min(), ts.max()
        self._first_ts = low if self._first_ts is None else min(self._first_ts, low)
        self._last_ts = high if self._last_ts is None else max(self._last_ts, high)

        if fires is None:
            self._matcher = self._matcher or Matcher([compile_rule(self.rule)])
            if normalized is None:
                results = self._matcher.match_many(chunk["text"], chunk["locale"])
            else:
                results = self._matcher.match_many(normalized, chunk["locale"], normalized=True)
            fires = np.fromiter((r is not None for r in results), dtype=bool, count=len(results))
        labelled = chunk["model_intent"].notna().to_numpy()
        self.fires += int(fires.sum())
        production = chunk[fires & labelled]
        self.labelled_fires += len(production)
        if not production.empty:
            self._add_production(production)
        if self.miner is not None:
            self._add_negatives(self.miner.candidates(chunk, normalized))

    def add_neighbours(self, counts: Counter, words: tuple[str, ...]) -> None:
        """Add the content-word counts of one chunk (only this rule's words are kept)."""
        wanted = {*words, BASE}
        self._near.update({key: n for key, n in counts.items() if key[0] in wanted})

    def neighbourhood(self) -> dict[str, dict[str, int]]:
        """word -> {"total": labelled queries holding it, <safety intent>: those of that intent}."""
        out: dict[str, dict[str, int]] = {}
        for (word, intent), n in sorted(self._near.items()):
            out.setdefault(word, {"total": 0})["total" if intent == "" else intent] = n
        return out

    def _add_production(self, rows: pd.DataFrame) -> None:
        rows = rows.assign(
            _key=sample_keys(rows["query_id"], self._salt),
            stratum_key=rows["model_intent"].astype(str) + "|" + rows["locale"].astype(str) + "|"
            + length_bucket(rows["text"]).astype(str),
        )
        safety = [i for i in self.settings.safety_intents if i != self.rule.intent]
        unsafe = rows[rows["model_intent"].isin(safety)]
        for intent, count in unsafe["model_intent"].value_counts().items():
            self._safety_fp[str(intent)] += int(count)
        self._safety_examples = _first_examples(self._safety_examples, [
            {"query_id": row.query_id, "text": row.text, "model_intent": row.model_intent}
            for row in unsafe.sort_values("query_id").head(_EXAMPLES).itertuples()])
        for key, count in rows["stratum_key"].value_counts().items():
            self._population[str(key)] += int(count)
        if "model_version" in rows:
            for version, count in rows["model_version"].dropna().value_counts().items():
                self._models[str(version)] += int(count)
        self._production.offer(rows)

    def _add_negatives(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        rows = rows.assign(_key=sample_keys(rows["query_id"], self._salt),
                           hard_negative_reason=rows["hard_negative_reason"].astype(str))
        rows = rows[rows["hard_negative_reason"].isin(_REASON_ORDER)]
        for reason, count in rows["hard_negative_reason"].value_counts().items():
            self._negative_counts[str(reason)] += int(count)
        self._negatives.offer(rows)

    def merge(self, other: DatasetBuilder) -> DatasetBuilder:
        """Add what ``other`` (a builder of the same rule version) counted and sampled; returns self."""
        if (other.rule.id, other.rule.version) != (self.rule.id, self.rule.version):
            raise ValueError(f"cannot merge the builder of {other.rule.id}@{other.rule.version} into "
                             f"{self.rule.id}@{self.rule.version}")
        self.rows_seen += other.rows_seen
        self.fires += other.fires
        self.labelled_fires += other.labelled_fires
        firsts = [t for t in (self._first_ts, other._first_ts) if t is not None]
        lasts = [t for t in (self._last_ts, other._last_ts) if t is not None]
        self._first_ts = min(firsts) if firsts else None
        self._last_ts = max(lasts) if lasts else None
        self._production.merge(other._production)
        self._negatives.merge(other._negatives)
        self._population.update(other._population)
        self._negative_counts.update(other._negative_counts)
        self._safety_fp.update(other._safety_fp)
        self._safety_examples = _first_examples(self._safety_examples, other._safety_examples)
        self._near.update(other._near)
        self._models.update(other._models)
        return self

    def __getstate__(self) -> dict:
        # A partial crossing processes carries counts and samples; the
        # matchers are rebuilt where they are needed, never shipped.
        return {**self.__dict__, "_matcher": None, "miner": None}

    def target_size(self) -> int:
        s = self.settings
        return s.dataset_floor_high_traffic if self.fires >= s.high_traffic_fires else s.dataset_floor

    def finish(self, adversarial: pd.DataFrame | None, *, sources: list[str]) -> BuiltDataset:
        """Allocate the strata, assemble the rows and describe them."""
        notes: list[str] = []
        size = self.target_size()
        mix = self.settings.dataset_mix
        negatives = self._take_negatives(round(size * mix["hard_negative"]))
        adversarial_rows = self._adversarial_rows(adversarial, round(size * mix["adversarial"]), notes)
        production_target = size - len(negatives) - len(adversarial_rows)
        production, allocation = self._take_production(production_target)
        if len(production) < production_target:
            notes.append(
                f"production stratum short: {len(production)} fired, model-labelled queries in the window, "
                f"{production_target} wanted; widen the window or wait for traffic"
            )
        if len(negatives) < round(size * mix["hard_negative"]):
            notes.append(f"hard-negative stratum short ({len(negatives)}); filled with production rows")
        frames = [frame for frame in (production, negatives, adversarial_rows) if not frame.empty]
        # No row at all (the rule never fired in the window) is an empty dataset the gate refuses, not a crash.
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rows = _conform(rows)
        meta = {
            "sources": sources,
            "rows_seen": self.rows_seen,
            "fires": self.fires,
            "labelled_fires": self.labelled_fires,
            "target_size": size,
            "high_traffic": self.fires >= self.settings.high_traffic_fires,
            "mix": mix,
            "population": dict(self._population),
            # Which model's labels the evidence is: a dataset spanning a retrain names both versions.
            "model_versions": dict(sorted(self._models.items())),
            "allocation": allocation,
            "hard_negative_available": dict(self._negative_counts),
            "safety_fp_in_log": dict(self._safety_fp),
            "safety_fp_examples": self._safety_examples,
            "neighbourhood": self.neighbourhood(),
            "adversarial_file": None if adversarial is None else "present",
            "window_start": None if self._first_ts is None else self._first_ts.isoformat(),
            "window_end": None if self._last_ts is None else self._last_ts.isoformat(),
            "notes": notes,
        }
        built = BuiltDataset(rule=self.rule, rows=rows, meta=meta, notes=notes)
        built.content_hash = content_hash(rows, self.rule)
        return built

    def _take_production(self, target: int) -> tuple[pd.DataFrame, dict[str, int]]:
        total = sum(self._population.values())
        if total == 0 or target <= 0:
            return pd.DataFrame(), {}
        if total <= target:  # a census: every fired, labelled query
            allocation = dict(self._population)
        else:
            allocation = _allocate(self._population, target)
        rows = self._production.take(allocation).assign(stratum="production", reason="")
        return rows, {k: int(v) for k, v in allocation.items()}

    def _take_negatives(self, target: int) -> pd.DataFrame:
        # The rule firing against the model first (the hardest negatives), then
        # vetoed, partial and shared-vocabulary look-alikes.
        counts, left = {}, target
        for reason in _REASON_ORDER:
            counts[reason] = min(left, self._negative_counts[reason], self._cap)
            left -= counts[reason]
        rows = self._negatives.take(counts)
        if rows.empty:
            return pd.DataFrame()
        return rows.assign(stratum="hard_negative", stratum_key=rows["hard_negative_reason"],
                           reason=rows["hard_negative_reason"])

    def _adversarial_rows(self, adversarial: pd.DataFrame | None, target: int, notes: list[str]) -> pd.DataFrame:
        if adversarial is None:
            notes.append("no adversarial file next to the rule (allowed); its share went to production")
            return pd.DataFrame()
        rows = adversarial.head(target) if len(adversarial) > target else adversarial
        if len(adversarial) > target:
            notes.append(f"adversarial file has {len(adversarial)} rows; the first {target} were used")
        digest = [hashlib.sha256(f"{t}|{loc}".encode()).hexdigest()[:12] for t, loc in zip(rows["text"], rows["locale"])]
        return pd.DataFrame({
            "query_id": [f"adv-{d}" for d in digest],
            "ts": pd.NaT,
            "text": rows["text"].to_numpy(),
            "locale": rows["locale"].to_numpy(),
            "model_intent": rows["model_intent"].to_numpy(),
            "model_confidence": np.nan,
            "stratum": "adversarial",
            "stratum_key": "adversarial",
            "reason": rows["note"].to_numpy(),
        })


def _first_examples(a: list[dict], b: list[dict]) -> list[dict]:
    """The examples with the smallest query ids of two lists (order-free, so merges agree)."""
    merged = {e["query_id"]: e for e in [*a, *b]}
    return [merged[q] for q in sorted(merged)][:_EXAMPLES]


def _allocate(population: Counter[str], target: int) -> dict[str, int]:
    """Proportional allocation with largest remainders; every stratum gets at
    least one row when the target allows, so no stratum is invisible (its
    weight in the estimate still follows its population)."""
    total = sum(population.values())
    keys = sorted(population)
    exact = {k: target * population[k] / total for k in keys}
    alloc = {k: min(population[k], int(exact[k])) for k in keys}
    if target >= len(keys):
        for k in keys:
            if alloc[k] == 0:
                alloc[k] = 1
    left = target - sum(alloc.values())
    for k in sorted(keys, key=lambda k: exact[k] - int(exact[k]), reverse=True):
        if left <= 0:
            break
        if alloc[k] < population[k]:
            alloc[k] += 1
            left -= 1
    while left < 0:  # the minimum of one overshot: trim the largest strata
        k = max(keys, key=lambda k: alloc[k])
        alloc[k] -= 1
        left += 1
    return alloc


def _conform(rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index)
    for column in DATASET_COLUMNS:
        out[column] = rows[column] if column in rows else pd.NA
    out["ts"] = pd.to_datetime(out["ts"], utc=True).astype("datetime64[us, UTC]")
    out["model_confidence"] = pd.to_numeric(out["model_confidence"]).astype("Float64")
    for column in ("query_id", "text", "locale", "model_intent", "stratum", "stratum_key", "reason"):
        out[column] = out[column].astype("string")
    return out.sort_values(["stratum", "query_id"], ignore_index=True)


def content_hash(rows: pd.DataFrame, rule: Rule) -> str:
    """Hash of the rows (as text) and the rule version: equal data, equal hash."""
    digest = hashlib.sha256(f"{rule.id}@{rule.version}\n{','.join(rows.columns)}\n".encode())
    digest.update(rows.astype("string").fillna("\x00").to_csv(index=False).encode())
    return digest.hexdigest()
