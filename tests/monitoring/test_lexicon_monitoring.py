"""Monitoring the safety boundary: vetoes counted per day, rule and locale, and the lexicon review cadence."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from rulelife.config import Workspace
from rulelife.monitoring import nightly
from rulelife.monitoring.metrics import RuleVersionInfo, count_chunk, finalize
from rulelife.report import write_report
from rulelife.rules.lexicon import lexicon_path
from rulelife.serving import publish
from rulelife.serving.replay import replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.store import DailyMetricRow, Store, TicketRow, registry

MESSAGE = "someone stole my wallet with my card in it, and now my card is blocked"
DAY = date(2026, 5, 31)


def veto(rule_id: str, version: str, phrase: str = "stole") -> str:
    return json.dumps({f"{rule_id}@{version}": phrase})


def chunk() -> pd.DataFrame:
    """Two vetoes of pin_blocked.blocked in en, one in fr (where card_stolen.report answered), one fire."""
    rows = [
        # text, locale, rule_id, rule_version, lexicon_veto
        (MESSAGE, "en", None, None, veto("pin_blocked.blocked", "aa")),
        (MESSAGE, "en", None, None, veto("pin_blocked.blocked", "aa")),
        ("report stolen, card blocked", "fr", "card_stolen.report", "bb", veto("pin_blocked.blocked", "aa")),
        ("my card is blocked", "en", "pin_blocked.blocked", "aa", None),
        ("hello", "en", None, None, None),
    ]
    frame = pd.DataFrame(rows, columns=["text", "locale", "rule_id", "rule_version", "lexicon_veto"])
    frame["query_id"] = [f"q-{i}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(hours=9)
    frame["model_intent"] = pd.array([None] * len(frame), dtype="string")
    frame["shadow"] = pd.array([None, None, False, False, None], dtype="boolean")
    frame["shadow_rules"] = pd.array([None] * len(frame), dtype="string")
    return frame.astype({c: "string" for c in ("text", "locale", "rule_id", "rule_version", "lexicon_veto")})


INTENTS = {"pin_blocked.blocked": "pin_blocked", "card_stolen.report": "card_stolen"}


def test_count_chunk_counts_vetoes_per_day_rule_and_locale_and_adds_up():
    counts = count_chunk(chunk(), INTENTS, ["card_stolen"])
    hits = counts.hits.set_index(["rule_id", "locale"])
    assert hits.loc[("pin_blocked.blocked", "en"), ["fires", "vetoed"]].tolist() == [1, 2]
    assert hits.loc[("pin_blocked.blocked", "fr"), ["fires", "vetoed"]].tolist() == [0, 1]
    assert hits.loc[("card_stolen.report", "fr"), ["fires", "vetoed"]].tolist() == [1, 0]
    # Additive: any split of the chunk sums to the whole, and weights count as repeated rows.
    whole = chunk()
    parts = count_chunk(whole.iloc[:1], INTENTS, []) + count_chunk(whole.iloc[1:], INTENTS, [])
    pd.testing.assert_frame_equal(parts.hits.reset_index(drop=True), counts.hits.reset_index(drop=True),
                                  check_dtype=False)
    weighted = count_chunk(whole.iloc[1:], INTENTS, [], weights=np.array([2, 1, 1, 1]))
    assert weighted.hits.set_index(["rule_id", "locale"]).loc[("pin_blocked.blocked", "en"), "vetoed"] == 2
    # A chunk whose only news is a veto still counts it.
    alone = count_chunk(whole.iloc[:1], INTENTS, [])
    assert alone.hits[["rule_id", "fires", "vetoed"]].values.tolist() == [["pin_blocked.blocked", 0, 1]]
    table = finalize(counts, [RuleVersionInfo("pin_blocked.blocked", "aa", "pin_blocked", ("*",)),
                              RuleVersionInfo("card_stolen.report", "bb", "card_stolen", ("*",))])
    by = table.set_index(["rule_id", "locale"])["vetoed"]
    assert by.to_dict() == {("card_stolen.report", "en"): 0, ("card_stolen.report", "fr"): 0,
                            ("pin_blocked.blocked", "en"): 2, ("pin_blocked.blocked", "fr"): 1}


def test_a_veto_of_a_rule_no_bundle_holds_is_an_error():
    with pytest.raises(KeyError, match="no bundle of the day holds: \\['pin_blocked.blocked'\\]"):
        count_chunk(chunk().iloc[:1], {}, [])


RULE = "id: pin_blocked.blocked\nintent: pin_blocked\npatterns: [blocked]\nowner: ds\n"
LEXICON = "owner: trust\nphrases:\n  - {phrase: stole, intent: card_stolen}\n"


@pytest.fixture
def ws(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    workspace = Workspace.create(tmp_path / "ws", db_url=url,
                                 settings={"safety_intents": ["card_stolen"], "lexicon_review_days": 30,
                                           "intents": ["card_stolen", "pin_blocked", "chitchat"],
                                           "lexicon_min_support": 5})
    (workspace.rules_dir / "pin_blocked").mkdir()
    (workspace.rules_dir / "pin_blocked" / "blocked.yaml").write_text(RULE, encoding="utf-8")
    lexicon_path(workspace.rules_dir).write_text(LEXICON, encoding="utf-8")
    registry.sync_workspace(workspace, actor="ana")
    publish.set_state(workspace, "pin_blocked.blocked", "active", actor="ana", reason="test setup")
    return workspace


def write_day(ws: Workspace, day: date) -> pd.DataFrame:
    """A day replayed through the published bundle: 3 vetoed, 2 answered, 6 new stolen-card phrasings."""
    texts = [MESSAGE] * 3 + ["my card is blocked"] * 2 + ["my card got nicked"] * 6 + ["hello"]
    intents = ["card_stolen"] * 3 + ["pin_blocked"] * 2 + ["card_stolen"] * 6 + ["chitchat"]
    log = pd.DataFrame({"query_id": [f"q-{day}-{i}" for i in range(len(texts))],
                        "ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=10), "text": texts,
                        "locale": "en", "model_intent": intents, "model_confidence": 0.9})
    out = replay(log, RuleClassifier.from_store(ws.bundle_dir, shadow_rate=0.0))
    out.to_parquet(ws.log_dir / f"queries-{day}.parquet", index=False)
    return out


def review_tickets(store) -> list[TicketRow]:
    with store.session() as session:
        return list(session.exec(select(TicketRow).where(TicketRow.check == "lexicon_review")).all())


def test_the_nightly_writes_vetoes_and_reviews_the_lexicon_once_per_cadence(ws):
    store = Store.from_workspace(ws)
    for day in (DAY - timedelta(days=20), DAY, DAY + timedelta(days=1), DAY + timedelta(days=30)):
        log = write_day(ws, day)
    assert log["lexicon_veto"].notna().sum() == 3
    first = nightly.run_nightly(ws, DAY, monitors=[], deliver=False)
    with store.session() as session:
        row = session.exec(select(DailyMetricRow).where(DailyMetricRow.day == DAY)).one()
    assert (row.rule_id, row.locale, row.fires, row.vetoed) == ("pin_blocked.blocked", "en", 2, 3)
    history, _ = nightly.load_history(store, DAY)
    assert history["vetoed"].tolist() == [3]
    (ticket,) = review_tickets(store)
    assert first.tickets_opened == 1 and ticket.severity == "warning" and ticket.subject == "safety_lexicon"
    proposals = {p["phrase"]: p for p in json.loads(ticket.evidence)["proposals"]}
    assert "nicked" in proposals and proposals["nicked"]["intent"] == "card_stolen"
    assert proposals["nicked"]["n"] == 6 and "stole" not in proposals  # counted on the choosing days; known phrases stay out
    assert "'nicked' (card_stolen, 6 of 6)" in ticket.title
    # The health page shows the rule's vetoes.
    write_report(ws, ws.root / "health.html", store=store, residual=False)
    page = (ws.root / "health.html").read_text(encoding="utf-8")
    assert '<span data-metric="vetoed">3</span>' in page
    assert "3 messages vetoed by the safety lexicon (sent to the model)" in page
    # The next night is inside the cadence: no review, no new finding.
    nxt = nightly.run_nightly(ws, DAY + timedelta(days=1), monitors=[], deliver=False)
    assert not [f for f in nxt.findings if f["check"] == "lexicon_review"] and review_tickets(store)[0].findings == 1
    # A re-run of the review day files nothing twice.
    nightly.run_nightly(ws, DAY, monitors=[], deliver=False)
    assert review_tickets(store)[0].findings == 1
    # Thirty days on, the lexicon is reviewed again (on the still-open ticket).
    later = nightly.run_nightly(ws, DAY + timedelta(days=30), monitors=[], deliver=False)
    (ticket,) = review_tickets(store)
    assert later.tickets_appended == 1 and ticket.findings == 2 and ticket.last_day == DAY + timedelta(days=30)


def test_a_workspace_without_a_lexicon_is_not_reviewed(ws):
    lexicon_path(ws.rules_dir).unlink()
    publish.publish_active(ws, actor="ana")
    write_day(ws, DAY)
    report = nightly.run_nightly(ws, DAY, monitors=[], deliver=False)
    assert report.status == "ok" and not review_tickets(Store.from_workspace(ws))
