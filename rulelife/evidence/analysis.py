"""Bundle-level analysis of a model-labelled query log, for ``rulelife analyze``.

How the rules of one bundle behave together on traffic: which pairs fire on
the same queries (and disagree on the intent), which rules fire but never win,
how much of each intent × locale the bundle answers, and what the rules leave
to the model.

Counting is split as DESIGN.md "Scale" asks: :func:`count_chunk` turns one
chunk into :class:`AnalysisCounts`, counts add up with ``+`` (or
:func:`merge`), and :func:`finalize` turns the total into a
:class:`BundleAnalysis`. Chunks can be counted on any number of workers.

Rows count as *labelled* where ``model_intent`` is present. In a production
log the runtime leaves ``model_intent`` empty where a rule answered outside
the shadow sample, so labelled traffic under-represents the rules' traffic
there; on a fully labelled log (simulated, or replayed through the model) the
per-intent coverage and the residual report are exact.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rulelife.config import Workspace
from rulelife.engines.fold import fold_log
from rulelife.rules.matcher import CompiledRule, Matcher
from rulelife.serving.bundle import BundleStore

__all__ = ["AnalysisCounts", "AnalysisPass", "BundleAnalysis", "analyze", "ConfidenceCounts", "count_chunk", "finalize", "merge"]

# 20 equal bins of width 0.05 on [0, 1]: fine enough to see where the mass
# moves, coarse enough that a day of one intent fills them.
BINS = 20
# Below this the classifier is more unsure than sure; a common threshold for review.
LOW_CONFIDENCE = 0.5


@dataclass
class ConfidenceCounts:
    """Additive summary of model confidences: a histogram, their count, sum and low share."""

    histogram: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    scored: int = 0  # rows with a confidence (the histogram's total)
    total: float = 0.0  # sum of the confidences, for the mean
    low: int = 0  # confidences below LOW_CONFIDENCE

    @classmethod
    def of(cls, values: np.ndarray) -> ConfidenceCounts:
        # The log contract bounds confidences to [0, 1] and the reader
        # quarantines the rest; clipping only keeps float noise such as
        # 1.0000001 in the end bins instead of dropping it.
        values = np.clip(values[~np.isnan(values)], 0.0, 1.0)
        histogram, _ = np.histogram(values, bins=BINS, range=(0.0, 1.0))
        low = int((values < LOW_CONFIDENCE).sum())
        return cls(histogram.astype(np.int64), int(values.size), float(values.sum()), low)

    def __add__(self, other: ConfidenceCounts) -> ConfidenceCounts:
        return ConfidenceCounts(
            self.histogram + other.histogram, self.scored + other.scored, self.total + other.total, self.low + other.low
        )

    @property
    def mean(self) -> float:
        return self.total / self.scored if self.scored else float("nan")

    @property
    def low_share(self) -> float:
        return self.low / self.scored if self.scored else float("nan")


@dataclass
class AnalysisCounts:
    """Partial counts of one or more chunks; ``a + b`` is the counts of both."""

    intents: dict[str, str]  # rule id -> intent, for every rule of the matcher
    safety_intents: tuple[str, ...] = ()
    queries: int = 0
    answered: int = 0  # queries a rule wins
    labelled: int = 0
    overlapping: int = 0  # queries on which two or more rules fire
    conflicting: int = 0  # ... of which two fired rules have different intents
    fires: Counter = field(default_factory=Counter)  # rule id -> queries it fires on
    wins: Counter = field(default_factory=Counter)  # rule id -> queries it wins
    pairs: Counter = field(default_factory=Counter)  # (a, b), a < b -> queries both fire on
    beaten: Counter = field(default_factory=Counter)  # (loser, winner) -> queries
    cell_queries: Counter = field(default_factory=Counter)  # (model_intent, locale) -> labelled queries
    cell_answered: Counter = field(default_factory=Counter)  # (model_intent, locale) -> of which answered
    labelled_confidence: ConfidenceCounts = field(default_factory=ConfidenceCounts)
    residual_confidence: ConfidenceCounts = field(default_factory=ConfidenceCounts)  # labelled, no rule wins
    overlapped: Counter = field(default_factory=Counter)  # rule id -> queries it fires on with another rule
    conflicted: Counter = field(default_factory=Counter)  # ... with a rule of another intent
    labelled_fires: Counter = field(default_factory=Counter)  # rule id -> labelled queries it fires on
    agrees: Counter = field(default_factory=Counter)  # ... of which the model said the rule's intent
    safety_fps: Counter = field(default_factory=Counter)  # ... of which the model said another, safety, intent

    @classmethod
    def empty(cls, matcher: Matcher, safety_intents: Sequence[str] = ()) -> AnalysisCounts:
        return cls(intents={rule.id: rule.intent for rule in matcher.rules}, safety_intents=tuple(safety_intents))

    def add(self, chunk: pd.DataFrame, matcher: Matcher) -> AnalysisCounts:
        """Return these counts plus those of ``chunk`` (``self`` is unchanged)."""
        return self + count_chunk(chunk, matcher)

    def __add__(self, other: AnalysisCounts) -> AnalysisCounts:
        if not isinstance(other, AnalysisCounts):
            return NotImplemented
        if self.intents != other.intents or self.safety_intents != other.safety_intents:
            raise ValueError(
                "cannot add counts of different bundles: their rules, intents or safety intents differ; "
                "count every chunk with the same matcher"
            )
        return AnalysisCounts(
            intents=dict(self.intents),
            safety_intents=self.safety_intents,
            queries=self.queries + other.queries,
            answered=self.answered + other.answered,
            labelled=self.labelled + other.labelled,
            overlapping=self.overlapping + other.overlapping,
            conflicting=self.conflicting + other.conflicting,
            fires=self.fires + other.fires,
            wins=self.wins + other.wins,
            pairs=self.pairs + other.pairs,
            beaten=self.beaten + other.beaten,
            cell_queries=self.cell_queries + other.cell_queries,
            cell_answered=self.cell_answered + other.cell_answered,
            labelled_confidence=self.labelled_confidence + other.labelled_confidence,
            residual_confidence=self.residual_confidence + other.residual_confidence,
            overlapped=self.overlapped + other.overlapped,
            conflicted=self.conflicted + other.conflicted,
            labelled_fires=self.labelled_fires + other.labelled_fires,
            agrees=self.agrees + other.agrees,
            safety_fps=self.safety_fps + other.safety_fps,
        )


def merge(a: AnalysisCounts, b: AnalysisCounts) -> AnalysisCounts:
    """The counts of both ``a`` and ``b`` (the reduce step of a distributed run)."""
    return a + b


@dataclass
class AnalysisPass:
    """:func:`count_chunk` as a step of a log fold (:mod:`rulelife.engines.fold`): it holds the
    bundle's compiled rules and rebuilds the matcher where it runs, never ships it."""

    rules: list[CompiledRule]
    safety_intents: tuple[str, ...] = ()
    _matcher: Matcher | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_matcher": None}

    def __call__(self, chunk: pd.DataFrame) -> AnalysisCounts:
        if self._matcher is None:
            self._matcher = Matcher(self.rules)
        return count_chunk(chunk, self._matcher, self.safety_intents)


def count_chunk(chunk: pd.DataFrame, matcher: Matcher, safety_intents: Sequence[str] = ()) -> AnalysisCounts:
    """Count one chunk of a query log against the bundle's ``matcher`` (``safety_intents``: the
    model intents on which a rule of another intent is a safety false positive)."""
    missing = {"text", "locale", "model_intent", "model_confidence"} - set(chunk.columns)
    if missing:
        raise ValueError(f"the chunk lacks the query-log columns {sorted(missing)}; it has {list(chunk.columns)}")
    counts = AnalysisCounts.empty(matcher, safety_intents)
    results = matcher.match_many(chunk["text"], chunk["locale"])
    intents = counts.intents
    answered = np.fromiter((result is not None for result in results), dtype=bool, count=len(results))
    # Few distinct sets of fired rules exist (a handful per rule), so count the
    # sets in one pass and update the per-rule counters once per set.
    for fired, n in Counter(result.fired for result in results if result is not None).items():
        counts.wins[fired[0]] += n  # fired is winner first
        for rule_id in fired:
            counts.fires[rule_id] += n
        if len(fired) > 1:
            counts.overlapping += n
            fired_intents = Counter(intents[r] for r in fired)
            if len(fired_intents) > 1:
                counts.conflicting += n
            for rule_id in fired:
                counts.overlapped[rule_id] += n
                if fired_intents[intents[rule_id]] < len(fired):  # another fired rule answers another intent
                    counts.conflicted[rule_id] += n
            for pair in itertools.combinations(sorted(fired), 2):
                counts.pairs[pair] += n
            for loser in fired[1:]:
                counts.beaten[loser, fired[0]] += n
    counts.queries = len(results)
    counts.answered = int(answered.sum())

    labelled = chunk["model_intent"].notna().to_numpy(bool)
    counts.labelled = int(labelled.sum())
    # Per rule that fires (winner or not) on labelled queries: does the model say its intent?
    model = chunk["model_intent"].to_numpy(object)
    safety = set(counts.safety_intents)
    pairs = Counter((result.fired, model[i]) for i, result in enumerate(results) if result is not None and labelled[i])
    for (fired, said), n in pairs.items():
        for rule_id in fired:
            counts.labelled_fires[rule_id] += n
            if said == intents[rule_id]:
                counts.agrees[rule_id] += n
            elif said in safety:
                counts.safety_fps[rule_id] += n
    cells = pd.DataFrame(
        {
            "model_intent": chunk["model_intent"].to_numpy(object)[labelled],
            "locale": chunk["locale"].astype(object).where(chunk["locale"].notna(), None).to_numpy(object)[labelled],
            "answered": answered[labelled],
        }
    )
    grouped = cells.groupby(["model_intent", "locale"], dropna=False, sort=False)["answered"].agg(["size", "sum"])
    for key, size, hits in zip(grouped.index, grouped["size"], grouped["sum"]):
        key = tuple(None if pd.isna(k) else k for k in key)
        counts.cell_queries[key] += int(size)
        if hits:
            counts.cell_answered[key] += int(hits)

    confidence = pd.to_numeric(chunk["model_confidence"], errors="coerce").to_numpy(float, na_value=np.nan)
    counts.labelled_confidence = ConfidenceCounts.of(confidence[labelled])
    counts.residual_confidence = ConfidenceCounts.of(confidence[labelled & ~answered])
    return counts


def finalize(counts: AnalysisCounts) -> BundleAnalysis:
    """Turn summed counts into the analysis."""
    return BundleAnalysis(counts)


class BundleAnalysis:
    """What a bundle's rules do together on a query log (see :func:`finalize`).

    Named by shape: a singular attribute is one number for the log
    (``coverage``), a plural method returns one row per item (``rule_fires()``,
    ``rule_overlaps()``, ``coverages()``).

    Attributes
    ----------
    queries, labelled, answered
        Rows, rows with a model label, rows a rule wins.
    coverage
        Share of all queries the bundle answers.
    labelled_coverage
        Share of labelled queries the bundle answers.
    overlap, conflict
        Share of queries on which two or more rules fire; ... of which with
        different intents.
    labelled_confidence_mean, residual_confidence_mean
        Mean model confidence on labelled traffic, and on the labelled traffic
        no rule answers (the residual the model is left with).
    labelled_low_confidence_share, residual_low_confidence_share
        The same two populations' shares of confidences below 0.5.

    Examples
    --------
    >>> from rulelife import Matcher, Rule
    >>> matcher = Matcher.from_rules([
    ...     Rule(id="order_tracking.order", intent="order_tracking", patterns=["my order"], owner="docs"),
    ...     Rule(id="return_request.refund", intent="return_request", patterns=["refund"], owner="docs"),
    ... ])
    >>> log = pd.DataFrame({
    ...     "text": ["where is my order", "refund my order", "hello", "refund please"],
    ...     "locale": ["en-US"] * 4,
    ...     "model_intent": pd.array(["order_tracking", "return_request", "chitchat", None], dtype="string"),
    ...     "model_confidence": pd.array([0.9, 0.6, 0.3, None], dtype="Float64"),
    ... })
    >>> analysis = finalize(count_chunk(log.iloc[:2], matcher) + count_chunk(log.iloc[2:], matcher))
    >>> analysis.coverage, analysis.conflict
    (0.75, 0.25)
    >>> analysis.rule_overlaps()[["rule_a", "rule_b", "overlap", "conflict"]]
                     rule_a                 rule_b  overlap  conflict
    0  order_tracking.order  return_request.refund        1      True
    >>> round(analysis.labelled_confidence_mean, 2), analysis.residual_confidence_mean
    (0.6, 0.3)
    """

    def __init__(self, counts: AnalysisCounts):
        self.counts = counts
        self.queries = counts.queries
        self.labelled = counts.labelled
        self.answered = counts.answered
        self.coverage = _share(counts.answered, counts.queries)
        self.labelled_coverage = _share(sum(counts.cell_answered.values()), counts.labelled)
        self.overlap = _share(counts.overlapping, counts.queries)
        self.conflict = _share(counts.conflicting, counts.queries)
        self.labelled_confidence_mean = counts.labelled_confidence.mean
        self.residual_confidence_mean = counts.residual_confidence.mean
        self.labelled_low_confidence_share = counts.labelled_confidence.low_share
        self.residual_low_confidence_share = counts.residual_confidence.low_share

    def rule_fires(self) -> pd.DataFrame:
        """Per rule: queries it fires on and wins, and its share of all queries; most firing first."""
        c = self.counts
        frame = pd.DataFrame(
            {
                "rule_id": list(c.intents),
                "intent": list(c.intents.values()),
                "fires": [c.fires[r] for r in c.intents],
                "wins": [c.wins[r] for r in c.intents],
            },
            columns=["rule_id", "intent", "fires", "wins"],
        ).astype({"fires": "int64", "wins": "int64"})
        frame["fire_share"] = frame["fires"] / self.queries if self.queries else np.nan
        return frame.sort_values(["fires", "rule_id"], ascending=[False, True], ignore_index=True)

    def rule_overlaps(self) -> pd.DataFrame:
        """Every pair of rules that fired on the same queries, most overlapping first.

        ``conflict`` is True when the two rules answer different intents: on
        those queries only the priority decides what the customer gets.
        """
        intents = self.counts.intents
        rows = [
            (a, b, intents[a], intents[b], n, intents[a] != intents[b]) for (a, b), n in self.counts.pairs.items()
        ]
        frame = pd.DataFrame(rows, columns=["rule_a", "rule_b", "intent_a", "intent_b", "overlap", "conflict"])
        frame = frame.astype({"overlap": "int64", "conflict": "bool"})
        return frame.sort_values(["overlap", "rule_a", "rule_b"], ascending=[False, True, True], ignore_index=True)

    def rule_conflicts(self) -> pd.DataFrame:
        """The rows of :meth:`rule_overlaps` whose two rules have different intents."""
        frame = self.rule_overlaps()
        return frame[frame["conflict"]].reset_index(drop=True)

    def shadowed_rules(self) -> pd.DataFrame:
        """Rules that fire but never win, with the rule that most often wins over them.

        Such a rule changes nothing the customer sees; it is dead weight, or a
        sign that its priority is wrong.
        """
        c = self.counts
        rows = []
        for rule_id in c.intents:
            if c.fires[rule_id] and not c.wins[rule_id]:
                winners = Counter({w: n for (loser, w), n in c.beaten.items() if loser == rule_id})
                top, top_n = min(winners.items(), key=lambda kv: (-kv[1], kv[0]))
                rows.append((rule_id, c.intents[rule_id], c.fires[rule_id], top, top_n))
        frame = pd.DataFrame(rows, columns=["rule_id", "intent", "fires", "shadowed_by", "shadowed_by_queries"])
        frame = frame.astype({"fires": "int64", "shadowed_by_queries": "int64"})
        return frame.sort_values(["fires", "rule_id"], ascending=[False, True], ignore_index=True)

    def coverages(self) -> pd.DataFrame:
        """Per (model_intent, locale) of labelled traffic: queries, answered, and their ratio."""
        c = self.counts
        keys = sorted(c.cell_queries, key=lambda k: (k[0], k[1] is None, k[1] or ""))
        frame = pd.DataFrame(
            {
                "model_intent": pd.array([k[0] for k in keys], dtype="string"),
                "locale": pd.array([k[1] for k in keys], dtype="string"),
                "queries": np.array([c.cell_queries[k] for k in keys], dtype=np.int64),
                "answered": np.array([c.cell_answered[k] for k in keys], dtype=np.int64),
            }
        )
        frame["coverage"] = frame["answered"] / frame["queries"]
        return frame

    def residual_summary(self) -> pd.DataFrame:
        """Histogram of model confidence: all labelled traffic next to the residual no rule answers.

        One row per bin of width 0.05 (``[bin_low, bin_high)``, the last bin
        includes 1). If the rules take the easy queries, the residual's mass
        sits lower: a retrain or a threshold review should be told. The means
        and low-confidence shares are the ``*_confidence_mean`` and
        ``*_low_confidence_share`` attributes.
        """
        edges = np.linspace(0.0, 1.0, BINS + 1)
        labelled, residual = self.counts.labelled_confidence, self.counts.residual_confidence
        return pd.DataFrame(
            {
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "labelled": labelled.histogram,
                "residual": residual.histogram,
                "labelled_share": labelled.histogram / labelled.scored if labelled.scored else np.nan,
                "residual_share": residual.histogram / residual.scored if residual.scored else np.nan,
            }
        )

    def to_dict(self) -> dict:
        """Everything, JSON-ready (``rulelife analyze --json``); NaN and NA become None."""
        singular = {
            name: _plain(getattr(self, name))
            for name in (
                "queries",
                "labelled",
                "answered",
                "coverage",
                "labelled_coverage",
                "overlap",
                "conflict",
                "labelled_confidence_mean",
                "residual_confidence_mean",
                "labelled_low_confidence_share",
                "residual_low_confidence_share",
            )
        }
        tables = {
            "rule_fires": self.rule_fires(),
            "rule_overlaps": self.rule_overlaps(),
            "shadowed_rules": self.shadowed_rules(),
            "coverages": self.coverages(),
            "residual_summary": self.residual_summary(),
        }
        return singular | {name: records(frame) for name, frame in tables.items()}


def _share(part: int, whole: int) -> float:
    # An empty log has no coverage rather than a coverage of 0: NaN says "no data".
    return part / whole if whole else float("nan")


def _plain(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    """A frame as JSON-ready rows (NaN and NA as None)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def analyze(
    workspace: Workspace,
    *,
    log=None,
    since=None,
    until=None,
    bundle_number: int | None = None,
    rules: Sequence[CompiledRule] | None = None,
    engine: str = "local",
    spark=None,
):
    """Overlap, conflicts, shadowing, coverage, agreement and residual traffic over the query log,
    counted on ``engine`` (see :func:`rulelife.engines.fold.fold_log`).

    The rules are those of the published bundle (or bundle ``bundle_number``),
    or ``rules`` (published or not, e.g.
    :func:`rulelife.evidence.summary.registry_rules` of a mined batch and the
    live rules, so the batch is checked before it goes to shadow).
    Returns ``(bundle or None, analysis)``.
    """
    bundle = None
    if rules is None:
        bundles = BundleStore(workspace.bundle_dir)
        bundle = bundles.current() if bundle_number is None else bundles.load(bundle_number)
        rules = bundle.matcher.rules
    step = AnalysisPass(list(rules), tuple(workspace.settings.safety_intents))
    counts = fold_log(step, log if log is not None else workspace.log_dir,
                      since=since, until=until, engine=engine, spark=spark,
                      known_intents=workspace.settings.intents or None, quarantine_dir=workspace.quarantine_dir)
    return bundle, finalize(counts)
