"""Fixtures of the engine tests: a generated runtime log and one SparkSession.

The log: several simulated days and locales, replayed through bundles of the
shipped rules (two bundles, so a day names more than one), shadow rows at a
raised rate so every rule has some, a few bad rows, two files a day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rulelife.config import Workspace
from rulelife.rules.definition import load_rules
from rulelife.rules.lexicon import Lexicon, LexiconEntry
from rulelife.rules.matcher import compile_rule
from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import publish_rules
from rulelife.serving.replay import replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.simulate import simulate_traffic

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"
START = dt.date(2026, 3, 2)
DAYS = 3
SHADOW_RATE = 0.25


def make_runtime_log(root: Path, *, days: int = DAYS, queries_per_day: int = 1500, seed: int = 5,
                     files_per_day: int = 2, bad_rows: bool = True) -> tuple[Workspace, Path]:
    """A workspace with two published bundles and its runtime log under ``root/log``."""
    workspace = Workspace.create(root / "ws")
    bundles = BundleStore(workspace.bundle_dir)
    rules = [rf.rule for rf in load_rules(SHIPPED_RULES)]
    publish_rules(bundles, rules, actor="test")
    first = RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=SHADOW_RATE)
    # The second bundle moves two rules to shadow (matched, never answering):
    # the last day is served by it, so its log has shadow_rules to count.
    ordered = sorted(rules, key=lambda r: r.id)
    # ... and holds a safety lexicon, so its log has lexicon vetoes to count.
    lexicon = Lexicon(owner="test", phrases=[LexiconEntry(phrase="status", intent="escalation"),
                                             LexiconEntry(phrase="pedido", intent="return_request", locales=("es",))])
    publish_rules(bundles, [*ordered[2:], *(compile_rule(r, shadow=True) for r in ordered[:2])], actor="test",
                              lexicon=lexicon)
    second = RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=SHADOW_RATE)
    log = simulate_traffic(start=START, days=days, queries_per_day=queries_per_day, seed=seed)
    last_day = log["ts"].dt.date == START + dt.timedelta(days=days - 1)
    replayed = pd.concat([replay(log[~last_day].reset_index(drop=True), first),
                          replay(log[last_day].reset_index(drop=True), second)], ignore_index=True)
    # The model: model-1, a model-2 canary on one row in ten of the second day, model-2 on the last day
    # (the simulator's own model_version column is replaced, not appended to).
    day_index = (replayed["ts"].dt.date - START).map(lambda d: d.days).to_numpy()
    canary = (day_index == 1) & (np.arange(len(replayed)) % 10 == 0)
    replayed["model_version"] = pd.array(np.where((day_index >= days - 1) & (days > 1) | canary, "model-2",
                                                  "model-1"), dtype="string")
    if bad_rows:
        replayed.loc[7, "model_confidence"] = 1.5  # out of [0, 1]
        replayed.loc[11, "text"] = "   "  # blank
        replayed.loc[len(replayed) - 3, "model_intent"] = "weather"  # not an intent the model has
        replayed.loc[13, "lexicon_veto"] = "not json"  # a malformed veto cell
    out = root / "log"
    for day, frame in replayed.groupby(replayed["ts"].dt.date):
        folder = out / f"date={day}"
        folder.mkdir(parents=True)
        size = -(-len(frame) // files_per_day)
        for part in range(files_per_day):
            frame.iloc[part * size:(part + 1) * size].to_parquet(folder / f"part-{part:03d}.parquet", index=False,
                                                                 coerce_timestamps="us")
    return workspace, out


@pytest.fixture(scope="session")
def runtime_log(tmp_path_factory) -> tuple[Workspace, Path]:
    return make_runtime_log(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="session")
def spark(spark_available):
    """One local[2] session for every Spark test of the run."""
    from rulelife.engines import local_session

    session = local_session(2, app_name="rulelife-tests")
    yield session
    session.stop()
