"""bench_realdata: the held-out flow on a Bitext slice, the measurement by hand, and every input error."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import _realdata
from benchmarks.bench_realdata import CONFIGS, SAFETY, format_report, main, run
from rulelife.config import Workspace
from rulelife.rules.definition import Rule
from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import publish_rules

INTENTS = ["cancel_order", "track_order", "recover_password", "newsletter_subscription", "check_invoice",
           "contact_human_agent", "complaint", "get_refund"]


def _recount_safety_fp(rules: list[dict], label: str) -> int:
    """Safety false positives recounted from the per-rule examples: the label is a safety intent the rule missed."""
    return sum(ex[label] in SAFETY and ex[label] != rule["intent"]
               for rule in rules for ex in rule["safety_fp_examples"])


def test_heldout_flow_on_a_bitext_slice(shared_data):
    # One configuration keeps the run short: a slice's intents have too few held-out rows for floors of 100.
    report = run(shared_data / "bitext_cs_intent", intents=INTENTS, quick=True, configs=CONFIGS[1:2],
                 flows=("heldout",), progress=lambda msg: None)
    json.loads(json.dumps(report))  # JSON-ready as --json writes it

    meta = report["meta"]
    assert meta["intents"] == len(INTENTS) and meta["folds"] == 3 and 0.5 < meta["model_accuracy_oof"] <= 1
    assert report["skipped"] == {}
    (result,) = report["results"]
    assert (result["flow"], result["config"]) == ("heldout", "point/30")
    # Chosen on days 0-14, judged on 15-29, measured on 30-59: three disjoint windows.
    assert (result["select_days"], result["gate_days"], result["measure_days"]) == ([0, 14], [15, 29], [30, 59])
    assert result["promoted"] > 0 and result["fires"] > 0
    rules = result["rules"]
    assert 0 < result["measured_rows"] < meta["rows"]
    assert 0 <= result["coverage"] <= 1
    assert result["fires"] == sum(r["fires"] for r in rules)
    assert result["coverage"] == result["fires"] / result["measured_rows"]
    assert result["promoted"] == result["active"] == len(rules) <= result["candidates"]
    # Every refused candidate failed at least one named gate check.
    assert len(result["refused"]) == result["candidates"] - result["promoted"]
    assert sum(result["refusals"].values()) >= len(result["refused"])
    for rule in rules:
        assert rule["agree_model"] <= rule["fires"] and rule["agree_true"] <= rule["fires"]
    assert result["agreement_model"] == sum(r["agree_model"] for r in rules) / result["fires"]
    assert result["agreement_true"] == sum(r["agree_true"] for r in rules) / result["fires"]
    for label in ("model", "true"):
        total = result[f"safety_fp_{label}"]
        assert total == sum(r[f"safety_fp_{label}"] for r in rules)
        assert total == _recount_safety_fp(rules, f"{label}_intent")

    table = format_report(report).splitlines()
    assert table[0].startswith(f"{meta['rows']} rows, {len(INTENTS)} intents")
    assert sum(line.startswith("| heldout | point/30 |") for line in table) == 1


def test_measure_counts_what_the_runtime_answers(tmp_path):
    workspace = Workspace.create(tmp_path)
    refund = Rule(id="get_refund.money_back", intent="get_refund", patterns=("money back",), owner="t")
    publish_rules(BundleStore(workspace.bundle_dir), [refund])
    measured = pd.DataFrame({
        "query_id": ["q1", "q2", "q3", "q4"],
        "text": ["I want my money back", "money back or a human now", "where is my order", "money back please"],
        "locale": ["en-US"] * 4,
        "model_intent": ["get_refund", "contact_human_agent", "track_order", "get_refund"],
        "true_intent": ["get_refund", "complaint", "track_order", "complaint"],
    })
    out = _realdata.measure(workspace, measured, SAFETY)
    assert (out["fires"], out["coverage"]) == (3, 3 / 4)
    assert (out["agreement_model"], out["agreement_true"]) == (2 / 3, 1 / 3)
    assert (out["safety_fp_model"], out["safety_fp_true"]) == (1, 2)
    (rule,) = out["rules"]
    assert rule["rule_id"] == "get_refund.money_back" and rule["patterns"] == ["money back"]
    assert [ex["text"] for ex in rule["safety_fp_examples"]] == ["money back or a human now", "money back please"]


def _csv(folder, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "part.csv").write_text(text, encoding="utf-8")


def test_load_folder_detects_columns_case_insensitively(tmp_path):
    _csv(tmp_path, "id,Sentence,Label\n1,hello there,greet\n2,bye now,leave\n")
    data = _realdata.load_folder(tmp_path)
    assert data.to_dict("list") == {"text": ["hello there", "bye now"], "intent": ["greet", "leave"]}


@pytest.mark.parametrize(("csv", "options", "message"), [
    (None, {}, "no CSV files found; pass --data with a folder of CSV files"),
    ("body,kind\nhi,greet\n", {}, "none of the columns body, kind is one of utterance|text|query|sentence; "
                                  "name the column with --text-col"),
    ("body,kind\nhi,greet\n", {"text_col": "body"}, "none of the columns body, kind is one of intent|label|category"),
    ("text,intent\nhi,greet\n", {"text_col": "body"}, "no column 'body' (columns: text, intent); fix --text-col"),
    ("text,intent\nhi,greet\n,greet\n", {}, "line 3: empty 'text' or 'intent'; fill or remove the row"),
    ("text,intent\nhi,greet\n", {"intents": ["greet", "leave"]}, "no rows for intent(s) leave; the data has greet"),
])
def test_load_folder_errors_name_the_fix(tmp_path, csv, options, message):
    if csv is not None:
        _csv(tmp_path, csv)
    with pytest.raises(_realdata.DataError) as err:
        _realdata.load_folder(tmp_path, **options)
    assert message in str(err.value)


def test_too_few_rows_for_the_folds_names_the_intent():
    data = pd.DataFrame({"text": ["a", "b", "c"], "intent": ["x", "x", "y"]})
    with pytest.raises(_realdata.DataError, match="intent 'y' has 1 row"):
        _realdata.model_traffic(data, folds=2)


def test_cli_refuses_a_misspelt_safety_intent_in_one_line(tmp_path, capsys):
    _csv(tmp_path, "text,intent\n" + "".join(f"q{i},{'ab'[i % 2]}\n" for i in range(10)))
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path), "--safety", "a,Complaint"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: safety intent(s) Complaint not in the data; pass --safety with intents spelled as the " \
                  "data spells them (a, b)"


def test_cli_refuses_an_unknown_flow(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path), "--flows", "window,nightly"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == "error: unknown flow(s) nightly; choose among heldout, shadow, window"
