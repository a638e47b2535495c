"""The training-mix export: labels by precedence, safety never from a rule, shares, reproducibility."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from rulelife.errors import ConfigError
from rulelife.model.run import export_training_mix
from rulelife.model.training_mix import MixCounts, mix_rates, sample_key
from tests.model.conftest import AGENT_ID, DAY1, DAY2, ROWS, WHERE_ID, write_day

UNLABELLED = [row[:4] + (None,) for row in ROWS]


def read_export(folder) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))], ignore_index=True)


def test_labels_come_from_the_best_source_and_never_a_safety_rule(ws, tmp_path):
    write_day(ws, UNLABELLED, DAY1)
    manifest = export_training_mix(ws, tmp_path / "mix", share=0.5)
    # Residual rows 5-8 (model), rule rows 1 and 3 (shadow: the model answered), 2 (the rule's intent);
    # row 4 is a safety rule's answer with no model label: left out.
    assert manifest["rows_by_source"] == {"model": 4, "rule": 1, "shadow": 2}
    assert manifest["safety_rows_left_out"] == {f"{AGENT_ID}|en-US": 1}
    assert manifest["rates"] == {"residual": 1.0, "rule_answered": 1.0}  # 0.5 of 4 + a would need 4 rule rows; 3 exist
    frame = read_export(tmp_path / "mix").set_index("query_id")
    assert frame.loc[f"q-{DAY1}-2", ["label", "label_source"]].tolist() == ["return_request", "shadow"]
    assert frame.loc[f"q-{DAY1}-1", ["label", "label_source"]].tolist() == ["order_tracking", "rule"]
    assert f"q-{DAY1}-3" not in frame.index


def test_true_labels_win(ws, tmp_path):
    write_day(ws, ROWS, DAY1)
    manifest = export_training_mix(ws, tmp_path / "mix", share=0.5)
    assert manifest["rows_by_source"] == {"model": 1, "true": 6}  # row 8 has no label but the model's


def test_rule_rows_make_up_the_share_and_the_export_is_reproducible(ws, tmp_path):
    # 3,000 residual rows and 3,000 rule rows (no model label): share 0.3 needs 3000 * 0.3 / 0.7 = 1285.7 rule rows.
    residual = [(None, None, "faq", 0.8, None)] * 3000
    answered = [(WHERE_ID, False, None, None, None)] * 3000
    write_day(ws, residual + answered, DAY2)
    first = export_training_mix(ws, tmp_path / "a", share=0.3, seed=7)
    again = export_training_mix(ws, tmp_path / "b", share=0.3, seed=7, engine="local-pool")
    other = export_training_mix(ws, tmp_path / "c", share=0.3, seed=8)
    assert first["rates"]["rule_answered"] == pytest.approx(1285.714 / 3000, abs=1e-4)
    rule_rows = first["rows_by_source"]["rule"]
    assert first["rows_by_source"]["model"] == 3000
    assert abs(rule_rows / first["rows"] - 0.3) < 0.02
    assert again["content_hash"] == first["content_hash"]
    assert set(read_export(tmp_path / "a")["query_id"]) == set(read_export(tmp_path / "b")["query_id"])
    assert other["content_hash"] != first["content_hash"]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["content_hash"] == first["content_hash"]


def test_mix_rates_by_hand():
    counts = MixCounts(Counter({("<residual>", "en"): 600, ("a", "en"): 100, ("b", "de"): 900}))
    # share 0.2 of a mix over 600 kept residual rows: 150 rule rows out of 1000 usable.
    assert mix_rates(counts, 0.2, 1.0) == (1.0, 0.15)
    assert mix_rates(counts, 0.2, 0.5) == (0.5, 0.075)
    assert mix_rates(counts, 0.0, 1.0) == (1.0, 0.0)


def test_sample_key_is_uniform_and_fixed_by_seed():
    ids = pd.Series([f"q{i}" for i in range(20_000)])
    keys = sample_key(ids, 3)
    assert (keys == sample_key(ids, 3)).all() and not (keys == sample_key(ids, 4)).all()
    assert 0.0 <= keys.min() and keys.max() < 1.0 and abs((keys < 0.3).mean() - 0.3) < 0.01


def test_a_folder_that_is_not_an_export_is_refused_and_kept(ws, tmp_path):
    write_day(ws, ROWS, DAY1)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an earlier training-mix export"):
        export_training_mix(ws, out)
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="--share"):
        export_training_mix(ws, tmp_path / "x", share=1.0)


def test_an_export_replaces_an_earlier_one_whole(ws, tmp_path):
    write_day(ws, ROWS, DAY1)
    out = tmp_path / "mix"
    export_training_mix(ws, out, share=0.5)
    second = export_training_mix(ws, out, share=0.0)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == second["files"]
    assert len(read_export(out)) == second["rows"] == 4  # the residual's four rows only
