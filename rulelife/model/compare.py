"""A candidate model against the current one, on the residual it would serve.

A cheaper model (a distilled one, say) replaces the current one only on the
traffic the rules leave, so it must be judged there: two models that tie on
all traffic can differ on the hard residual. :class:`CompareCounts` counts,
per scope (``residual``, ``all``) and intent, the rows both models answered,
how often they agree, and, where ``true_intent`` exists, how often each was
right and how often only one of them was (the discordant pairs that decide
a paired comparison). The intent of a row is its true label where known,
the current model's answer otherwise.

The candidate's answers come from a log column or from a file joined by
query id (:func:`read_candidates`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rulelife.errors import LogError
from rulelife.model.residual import accuracy

__all__ = ["COMPARE_FIELDS", "CompareCounts", "ComparePass", "decide", "read_by_query_id", "read_candidates"]

COMPARE_FIELDS = ("n", "agree", "labelled", "current_correct", "candidate_correct", "candidate_only", "current_only")
SCOPES = ("residual", "all")


@dataclass
class CompareCounts:
    """``cells[(scope, intent)]`` is an int64 vector over :data:`COMPARE_FIELDS`; ``a + b`` counts both."""

    cells: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    missing: int = 0  # rows the current model answered but the candidate did not

    def __add__(self, other: CompareCounts) -> CompareCounts:
        cells = dict(self.cells)
        for key, vector in other.cells.items():
            cells[key] = cells[key] + vector if key in cells else vector
        return CompareCounts(cells, self.missing + other.missing)

    def table(self) -> pd.DataFrame:
        """Per scope and intent, plus an ``(all intents)`` row per scope: agreement and both accuracies."""
        rows = []
        for scope in SCOPES:
            keys = sorted(k for k in self.cells if k[0] == scope)
            total = sum((self.cells[k] for k in keys), np.zeros(len(COMPARE_FIELDS), dtype=np.int64))
            for intent, vector in [("(all intents)", total), *[(k[1], self.cells[k]) for k in keys]]:
                rows.append(_row(scope, intent, dict(zip(COMPARE_FIELDS, (int(v) for v in vector)))))
        return pd.DataFrame(rows)


def _row(scope: str, intent: str, c: dict) -> dict:
    agreement = accuracy(c["agree"], c["n"])
    current = accuracy(c["current_correct"], c["labelled"])
    candidate = accuracy(c["candidate_correct"], c["labelled"])
    return {"scope": scope, "intent": intent, **c, "agreement": agreement["accuracy"],
            "current_accuracy": current["accuracy"], "current_low": current["low"], "current_high": current["high"],
            "candidate_accuracy": candidate["accuracy"], "candidate_low": candidate["low"],
            "candidate_high": candidate["high"], "decision": decide(c)}


def decide(c: Mapping[str, int], *, alpha: float = 0.05) -> str:
    """The README's decision table for one scope: switch, equivalent, keep, or label more.

    Paired test on the discordant rows (McNemar's exact form): both models saw
    the same queries, so only the rows where exactly one was right carry
    evidence of a difference, and a binomial test on them is exact at any n.

    >>> decide({"labelled": 200, "candidate_only": 20, "current_only": 4})
    'candidate better'
    >>> decide({"labelled": 200, "candidate_only": 5, "current_only": 6})
    'no difference shown'
    >>> decide({"labelled": 0, "candidate_only": 0, "current_only": 0})
    'no labels: judge on agreement, or label a sample'
    """
    from scipy.stats import binomtest

    if not c["labelled"]:
        return "no labels: judge on agreement, or label a sample"
    discordant = c["candidate_only"] + c["current_only"]
    if discordant == 0 or binomtest(c["candidate_only"], discordant, 0.5).pvalue >= alpha:
        return "no difference shown"
    return "candidate better" if c["candidate_only"] > c["current_only"] else "current better"


class ComparePass:
    """Per-chunk step (picklable): the candidate from ``column`` or from ``answers`` (query id -> intent)."""

    def __init__(self, *, column: str | None = None, answers: Mapping[str, str] | None = None):
        if (column is None) == (answers is None):
            raise ValueError("give the candidate's column or its answers by query id, not both")
        self.column, self.answers = column, dict(answers) if answers is not None else None

    def __call__(self, chunk: pd.DataFrame) -> CompareCounts:
        chunk = chunk.reset_index(drop=True)
        if self.column is not None:
            if self.column not in chunk:
                raise LogError(f"the log has no column {self.column!r} for the candidate's answers; name the "
                               "column that holds them with --candidate-column, or join a file with --candidate-file")
            candidate = chunk[self.column].astype("string")
        else:
            candidate = chunk["query_id"].astype("string").map(self.answers).astype("string")
        current, truth = chunk["model_intent"], chunk["true_intent"]
        both = (current.notna() & candidate.notna()).to_numpy(dtype=bool)
        labelled = both & truth.notna().to_numpy(dtype=bool)
        cur_ok = labelled & (current == truth).fillna(False).to_numpy(dtype=bool)
        cand_ok = labelled & (candidate == truth).fillna(False).to_numpy(dtype=bool)
        flags = pd.DataFrame({
            "n": both, "agree": both & (current == candidate).fillna(False).to_numpy(dtype=bool),
            "labelled": labelled, "current_correct": cur_ok, "candidate_correct": cand_ok,
            "candidate_only": cand_ok & ~cur_ok, "current_only": cur_ok & ~cand_ok,
        }).astype(np.int64)
        intent = truth.fillna(current).fillna("<none>").astype(object).to_numpy()
        residual = chunk["rule_id"].isna().to_numpy()
        cells: dict = {}
        for scope, rows in (("all", np.ones(len(chunk), dtype=bool)), ("residual", residual)):
            sums = flags[rows].groupby(intent[rows], sort=False).sum()
            cells.update({(scope, k): v.astype(np.int64) for k, v in zip(sums.index, sums.to_numpy())})
        missing = int((current.notna() & candidate.isna()).sum())
        return CompareCounts(cells, missing)


def read_candidates(path: Path, *, id_column: str = "query_id", intent_column: str = "candidate_intent"
                    ) -> dict[str, str]:
    """The candidate's answers from a CSV or Parquet file, by query id."""
    return read_by_query_id(path, id_column=id_column, value_column=intent_column, what="candidate",
                            options=("--candidate-id-column", "--candidate-intent-column"))


def read_by_query_id(path: Path, *, id_column: str, value_column: str, what: str, options: tuple[str, str]
                     ) -> dict[str, str]:
    """``value_column`` of a CSV or Parquet file, by query id (blank values left out).

    ``what`` names the file in messages and ``options`` the two CLI options
    that rename its columns, so each command's errors point at its own fix.
    """
    path = Path(path)
    if not path.is_file():
        raise LogError(f"{path}: no such {what} file; pass a CSV or Parquet file with columns "
                       f"{id_column}, {value_column}")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    absent = [c for c in (id_column, value_column) if c not in frame.columns]
    if absent:
        raise LogError(f"{path}: missing column(s) {', '.join(absent)}; it has {', '.join(map(str, frame.columns))}. "
                       f"Rename them or pass {options[0]} / {options[1]}")
    duplicated = frame[id_column][frame[id_column].duplicated()]
    if not duplicated.empty:
        raise LogError(f"{path}: query id {duplicated.iloc[0]!r} appears more than once; keep one row a query")
    values = frame[value_column].astype("string").replace("", pd.NA)
    return {str(k): str(v) for k, v in zip(frame[id_column], values) if not pd.isna(v)}
