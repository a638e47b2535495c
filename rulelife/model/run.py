"""The model's side over a workspace's query log: what each command calls.

Each reads the log with :func:`~rulelife.engines.fold.fold_log` on the
engine asked for, with the workspace's intents and quarantine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from sqlmodel import select

from rulelife.config import Workspace
from rulelife.engines.fold import fold_log
from rulelife.errors import ConfigError
from rulelife.mining import MIN_CONFIDENCE
from rulelife.model.calibration import CalibrationPass, CalibrationReport, calibrate
from rulelife.model.compare import CompareCounts, ComparePass, read_by_query_id, read_candidates
from rulelife.model.residual import ResidualPass, ResidualReport
from rulelife.model.training_mix import (
    MixCount,
    MixCounts,
    MixPart,
    MixSample,
    mix_rates,
    prepare_folder,
    replace_folder,
    write_manifest,
)
from rulelife.serving.bundle import BundleStore
from rulelife.store import RuleVersionRow, Store

__all__ = ["compare_models", "export_training_mix", "measure_calibration", "measure_residual", "rule_intents"]


def rule_intents(store: Store) -> dict[str, str]:
    """Every registered rule id and its intent (a log may name rules since disabled or retired)."""
    with store.session() as session:
        return {rule_id: intent for rule_id, intent in
                session.exec(select(RuleVersionRow.rule_id, RuleVersionRow.intent).order_by(RuleVersionRow.id))}


def _fold(workspace: Workspace, step, log, since, until, engine: str, spark, combine=None, extra_columns=()):
    options = {"combine": combine} if combine is not None else {}
    return fold_log(step, log if log is not None else workspace.log_dir, since=since, until=until, engine=engine,
                    spark=spark, known_intents=workspace.settings.intents or None,
                    quarantine_dir=workspace.quarantine_dir, extra_columns=extra_columns, **options)


def measure_residual(workspace: Workspace, *, log=None, since: dt.date | None = None, until: dt.date | None = None,
                     store: Store | None = None, engine: str = "local", spark=None) -> ResidualReport:
    """The residual's share, confidence and the model's accuracy over the log window."""
    store = store or Store.from_workspace(workspace)
    counts = _fold(workspace, ResidualPass(rule_intents(store)), log, since, until, engine, spark)
    return ResidualReport(counts)


def measure_calibration(workspace: Workspace, *, log=None, since: dt.date | None = None,
                        until: dt.date | None = None, reference: str | None = None,
                        threshold: float = MIN_CONFIDENCE, labels_file: Path | None = None,
                        labels_columns: Sequence[str] = ("query_id", "true_intent"), store: Store | None = None,
                        engine: str = "local", spark=None) -> CalibrationReport:
    """Each model version's calibration over the log window, and the threshold that keeps the reference
    version's precision at ``threshold`` (see :mod:`rulelife.model.calibration`)."""
    labels = (read_by_query_id(labels_file, id_column=labels_columns[0], value_column=labels_columns[1],
                               what="labels", options=("--labels-id-column", "--labels-intent-column"))
              if labels_file is not None else None)
    store = store or Store.from_workspace(workspace)
    counts = _fold(workspace, CalibrationPass(rule_intents(store), labels), log, since, until, engine, spark)
    return calibrate(counts, reference=reference, threshold=threshold)


def export_training_mix(workspace: Workspace, out: Path, *, share: float = 0.3, residual_rate: float = 1.0,
                        seed: int = 0, log=None, since: dt.date | None = None, until: dt.date | None = None,
                        store: Store | None = None, engine: str = "local", spark=None) -> dict:
    """Write the training mix (Parquet parts and ``manifest.json``) to ``out``; return the manifest.

    Two passes over the log: one counts usable rows per stratum (to set the
    rate that makes rule rows ``share`` of the mix), one samples and writes.
    The export is built beside ``out`` and moved in place when whole, so a
    failed run leaves ``out`` as it was.
    """
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"--share must be at least 0 and below 1 (the rule-answered share of the mix), got {share}")
    if not 0.0 < residual_rate <= 1.0:
        raise ConfigError(f"--residual-rate must be above 0 and at most 1, got {residual_rate}")
    store = store or Store.from_workspace(workspace)
    intents, safety = rule_intents(store), tuple(workspace.settings.safety_intents)
    counts: MixCounts = _fold(workspace, MixCount(intents, safety), log, since, until, engine, spark)
    rates = mix_rates(counts, share, residual_rate)
    out = Path(out)
    staging = prepare_folder(out)
    try:
        part = _fold(workspace, MixSample(intents, safety, rates, seed, staging), log, since, until, engine, spark)
        pointer = BundleStore(workspace.bundle_dir).pointer()
        options = {"share": share, "residual_rate": residual_rate, "seed": seed,
                   "rates": {"residual": rates[0], "rule_answered": rates[1]},
                   "bundle_version": pointer["number"] if pointer else None, "safety_intents": list(safety),
                   "window": {"since": since, "until": until}}
        manifest = write_manifest(staging, part if part is not None else MixPart(), counts, options)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, out)
    return manifest


def compare_models(workspace: Workspace, *, candidate_column: str | None = None, candidate_file: Path | None = None,
                   candidate_columns: Sequence[str] = ("query_id", "candidate_intent"), log=None,
                   since: dt.date | None = None, until: dt.date | None = None, engine: str = "local", spark=None
                   ) -> CompareCounts:
    """Agreement and accuracy of a candidate model against the current one, per scope and intent."""
    if (candidate_column is None) == (candidate_file is None):
        raise ConfigError("give the candidate's answers with --candidate-column or --candidate-file (one of them)")
    if candidate_file is not None:
        step = ComparePass(answers=read_candidates(candidate_file, id_column=candidate_columns[0],
                                                   intent_column=candidate_columns[1]))
        return _fold(workspace, step, log, since, until, engine, spark)
    # The candidate's column is beyond the log contract: the reader reads it only when asked.
    return _fold(workspace, ComparePass(column=candidate_column), log, since, until, engine, spark,
                 extra_columns=(candidate_column,))
