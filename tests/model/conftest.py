"""A small workspace with two active rules and a labelled log whose figures are counted by hand."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from rulelife.config import Workspace
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.store import registry

WHERE = """\
id: order_tracking.where
intent: order_tracking
patterns: ["where is my order"]
locales: ["*"]
owner: ds
description: Where is my order.
"""
HOURS = """\
id: escalation.agent
intent: escalation
patterns: ["human agent"]
locales: ["*"]
owner: ds
description: A person, please.
"""
DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)
WHERE_ID, AGENT_ID = "order_tracking.where", "escalation.agent"

# (rule_id, shadow, model_intent, model_confidence, true_intent); on DAY1, locale en-US.
#   queries 8, residual 4; labelled (model and truth) rows 1, 3, 5, 6, 7 -> 5, correct 1, 5, 6 -> 3;
#   residual labelled 5, 6, 7 -> 3, correct 2; shadow 1, 3 -> agree 1, labelled 2, correct 1.
ROWS = [
    (WHERE_ID, True, "order_tracking", 0.9, "order_tracking"),  # 1 shadow, right
    (WHERE_ID, False, None, None, "order_tracking"),  # 2 rule only
    (WHERE_ID, True, "return_request", 0.6, "order_tracking"),  # 3 shadow, wrong
    (AGENT_ID, False, None, None, None),  # 4 a safety rule only: never a rule label in the mix
    (None, None, "faq", 0.8, "faq"),  # 5 residual, right
    (None, None, "faq", 0.4, "faq"),  # 6 residual, right
    (None, None, "chitchat", 0.2, "faq"),  # 7 residual, wrong
    (None, None, "chitchat", 0.7, None),  # 8 residual, unlabelled
]


def log_frame(rows, day: date, bundle: int, prefix: str = "q") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["rule_id", "shadow", "model_intent", "model_confidence", "true_intent"])
    frame.insert(0, "query_id", [f"{prefix}-{day}-{i}" for i in range(len(frame))])
    frame.insert(1, "ts", pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9))
    frame.insert(2, "text", ["where is my order" if r == WHERE_ID else "human agent" if r == AGENT_ID else "hi"
                             for r in frame["rule_id"]])
    frame.insert(3, "locale", "en-US")
    for column in ("rule_id", "model_intent", "true_intent"):
        frame[column] = frame[column].astype("string")
    frame["model_confidence"] = frame["model_confidence"].astype("Float64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    frame["rule_version"] = pd.array([None] * len(frame), dtype="string")
    frame["bundle_version"] = pd.array([bundle] * len(frame), dtype="Int64")
    return frame


@pytest.fixture
def ws(new_workspace) -> Workspace:
    workspace = new_workspace()
    for name, text in (("order_tracking/where.yaml", WHERE), ("escalation/agent.yaml", HOURS)):
        path = workspace.rules_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    registry.sync_workspace(workspace, actor="ana")
    for rule_id in (WHERE_ID, AGENT_ID):
        publish.set_state(workspace, rule_id, "active", actor="ana", reason="test setup")
    return workspace


def write_day(ws: Workspace, rows, day: date, prefix: str = "q") -> pd.DataFrame:
    bundle = BundleStore(ws.bundle_dir).current().number
    frame = log_frame(rows, day, bundle, prefix)
    frame.to_parquet(ws.log_dir / f"queries-{day}-{prefix}.parquet", index=False)
    return frame
