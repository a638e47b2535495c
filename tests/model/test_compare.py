"""A candidate model against the current one: counted by hand on the fixture's rows."""

from __future__ import annotations

import pandas as pd
import pytest

from rulelife.errors import ConfigError, LogError
from rulelife.model.compare import ComparePass, decide, read_candidates
from rulelife.model.run import compare_models
from tests.model.conftest import DAY1, ROWS, log_frame, write_day

# The candidate per fixture row: right on 1, 3, 5, 7; wrong on 6; silent where the current model was.
CANDIDATE = ["order_tracking", None, "order_tracking", None, "faq", "chitchat", "faq", "chitchat"]


def frame_with_candidate():
    frame = log_frame(ROWS, DAY1, 1)
    frame["candidate_intent"] = pd.array(CANDIDATE, dtype="string")
    return frame


def totals(counts):
    table = counts.table()
    return table[table["intent"] == "(all intents)"].set_index("scope")


def test_agreement_and_accuracy_per_scope():
    top = totals(ComparePass(column="candidate_intent")(frame_with_candidate()))
    fields = ["n", "agree", "labelled", "current_correct", "candidate_correct", "candidate_only", "current_only"]
    assert top.loc["all", fields].tolist() == [6, 3, 5, 3, 4, 2, 1]
    assert top.loc["residual", fields].tolist() == [4, 2, 3, 2, 2, 1, 1]
    assert top.loc["residual", "agreement"] == 0.5
    assert top.loc["all", "candidate_accuracy"] == 4 / 5 and top.loc["all", "current_accuracy"] == 3 / 5
    assert top.loc["all", "decision"] == "no difference shown"  # 2 against 1 discordant rows prove nothing


def test_per_intent_rows_use_the_true_label():
    table = ComparePass(column="candidate_intent")(frame_with_candidate()).table()
    faq = table[(table["scope"] == "residual") & (table["intent"] == "faq")].iloc[0]
    assert (faq["n"], faq["current_correct"], faq["candidate_correct"]) == (3, 2, 2)


def test_the_decision_table():
    assert decide({"labelled": 500, "candidate_only": 3, "current_only": 30}) == "current better"
    assert decide({"labelled": 500, "candidate_only": 30, "current_only": 3}) == "candidate better"
    assert decide({"labelled": 500, "candidate_only": 0, "current_only": 0}) == "no difference shown"


def test_a_candidate_file_joined_by_query_id(ws, tmp_path):
    frame = write_day(ws, ROWS, DAY1)
    answers = pd.DataFrame({"query_id": frame["query_id"], "candidate_intent": [c or "" for c in CANDIDATE]})
    path = tmp_path / "candidate.csv"
    answers.to_csv(path, index=False)
    top = totals(compare_models(ws, candidate_file=path))
    assert top.loc["all", ["n", "candidate_correct"]].tolist() == [6, 4]


def test_bad_candidate_input_is_explained(ws, tmp_path):
    write_day(ws, ROWS, DAY1)
    with pytest.raises(LogError, match="no column 'cand'"):
        compare_models(ws, candidate_column="cand")
    with pytest.raises(ConfigError, match="one of them"):
        compare_models(ws)
    path = tmp_path / "c.csv"
    path.write_text("query_id,intent\nq1,faq\n")
    with pytest.raises(LogError, match="missing column.*candidate_intent"):
        read_candidates(path)
    path.write_text("query_id,candidate_intent\nq1,faq\nq1,chitchat\n")
    with pytest.raises(LogError, match="'q1' appears more than once"):
        read_candidates(path)
