"""Residual baselines: frozen once per bundle, and the nightly's ticket on a drop below one."""

from __future__ import annotations

from rulelife.model.baseline import baselines, check_residual, freeze_baselines
from rulelife.model.residual import ResidualPass, ResidualReport
from rulelife.monitoring import nightly
from rulelife.monitoring.residual_check import CHECK
from rulelife.serving.bundle import BundleStore
from tests.model.conftest import AGENT_ID, DAY1, DAY2, ROWS, WHERE_ID, log_frame, write_day

INTENTS = {WHERE_ID: "order_tracking", AGENT_ID: "escalation"}
# DAY2: rows 5 and 6 go wrong too, so the residual's accuracy falls from 2/3 to 0/3.
WORSE = [row if i not in (4, 5) else (None, None, "chitchat", row[3], "faq") for i, row in enumerate(ROWS)]


def report(rows, day, bundle=1) -> ResidualReport:
    return ResidualReport(ResidualPass(INTENTS)(log_frame(rows, day, bundle)))


def test_a_baseline_is_frozen_once_and_judges_later_days(store):
    assert freeze_baselines(store, report(ROWS, DAY1), min_labels=3) == [1]
    assert freeze_baselines(store, report(WORSE, DAY2), min_labels=3) == []  # frozen: kept
    base = baselines(store)[1]
    assert (base.residual_correct, base.residual_labelled, base.first_day) == (2, 3, DAY1)
    drops = check_residual(store, report(WORSE, DAY2), DAY2, margin=0.05, min_labels=3)
    assert [(d.bundle, d.accuracy["accuracy"], d.baseline["accuracy"]) for d in drops] == [(1, 0.0, 2 / 3)]
    assert check_residual(store, report(ROWS, DAY2), DAY2, margin=0.05, min_labels=3) == []
    assert check_residual(store, report(WORSE, DAY2), DAY2, margin=0.05, min_labels=4) == []  # too thin to judge
    assert freeze_baselines(store, report(WORSE, DAY2), min_labels=3, replace=True) == [1]
    assert baselines(store)[1].residual_correct == 0


def test_each_bundle_gets_its_own_baseline(store):
    both = ResidualReport(ResidualPass(INTENTS)(log_frame(ROWS, DAY1, 1)) + ResidualPass(INTENTS)(log_frame(WORSE, DAY2, 2)))
    assert freeze_baselines(store, both, min_labels=3) == [1, 2]
    assert {n: b.residual_correct for n, b in baselines(store).items()} == {1: 2, 2: 0}
    # Bundle 2 starts from its own (worse) residual: no drop is blamed on the model.
    assert check_residual(store, report(WORSE, DAY2, 2), DAY2, margin=0.05, min_labels=3) == []


def test_the_nightly_freezes_then_tickets_a_drop_once(ws, monkeypatch):
    monkeypatch.setattr(ws.settings, "residual_check", True)
    monkeypatch.setattr(ws.settings, "residual_min_labels", 3)
    write_day(ws, ROWS, DAY1)
    first = nightly.run_nightly(ws, DAY1, deliver=False)
    bundle = BundleStore(ws.bundle_dir).current().number
    assert any(f"residual baseline frozen for bundle(s) {bundle}" in note for note in first.notes)
    assert [f for f in first.findings if f["check"] == CHECK] == []
    write_day(ws, WORSE, DAY2)
    second = nightly.run_nightly(ws, DAY2, deliver=False)
    found = [f for f in second.findings if f["check"] == CHECK]
    assert [(f["subject"], f["evidence"]["residual_accuracy"]["accuracy"]) for f in found] == [(f"bundle:{bundle}", 0.0)]
    again = nightly.run_nightly(ws, DAY2, deliver=False)
    assert again.tickets_opened == 0 and [f["check"] for f in again.findings].count(CHECK) == 1


def test_the_nightly_skips_the_check_when_off_or_unlabelled(ws, monkeypatch):
    write_day(ws, ROWS, DAY1)
    off = nightly.run_nightly(ws, DAY1, deliver=False)
    assert not any("residual" in note for note in off.notes)
    monkeypatch.setattr(ws.settings, "residual_check", True)
    on = nightly.run_nightly(ws, DAY1, deliver=False)  # 3 labelled residual rows < the default 100
    assert any("fewer than 100 labelled residual queries" in note for note in on.notes)
