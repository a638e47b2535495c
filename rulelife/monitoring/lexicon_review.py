"""The safety lexicon's review cadence: re-mine it when the last review is old, file one ticket.

Every ``lexicon_review_days`` (the last ``lexicon_review`` ticket's day
counts as the last review), the nightly mines the last
``lexicon_review_days`` days of the log with :func:`~rulelife.mining.lexicon.mine_lexicon`
and files one ticket (check ``lexicon_review``, severity warning) listing the
proposed safety phrasings that the lexicon lacks, with their counts. A
review with nothing to propose is filed too: it is the record that the
review happened, and it starts the next period. A workspace without a
lexicon file has opted out of the boundary and is not reviewed (start one
with ``rulelife safety mine``).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import func, select

from rulelife.config import Workspace
from rulelife.errors import RulelifeError
from rulelife.monitoring.contract import Action, Finding, Severity
from rulelife.rules.lexicon import lexicon_path
from rulelife.store import Store, TicketRow

__all__ = ["CHECK", "SUBJECT", "last_review", "review_lexicon"]

CHECK = "lexicon_review"
SUBJECT = "safety_lexicon"


def last_review(store: Store) -> date | None:
    """The day of the newest ``lexicon_review`` finding, open or closed ticket alike."""
    with store.session() as session:
        return session.exec(select(func.max(TicketRow.last_day)).where(TicketRow.check == CHECK)).one()


def review_lexicon(workspace: Workspace, store: Store, day: date, notes: list[str]) -> list[Finding]:
    """The review finding for ``day``, or [] when the last review is recent (or the log cannot be mined).

    A failed mining never fails the night: the reason goes to ``notes`` and
    the next night tries again.
    """
    if not lexicon_path(workspace.rules_dir).is_file():
        return []
    every = workspace.settings.lexicon_review_days
    last = last_review(store)
    if last is not None and (day - last).days < every:
        return []
    from rulelife.mining.lexicon import mine_lexicon  # the miner plug-in is loaded only when a review is due

    since = day - timedelta(days=every - 1)
    try:
        report = mine_lexicon(workspace, since=since, until=day)
    except (RulelifeError, ValueError) as exc:
        notes.append(f"safety lexicon review not done: {exc}")
        return []
    proposals = [p.to_dict() for p in sorted(report.proposals, key=lambda p: (-p.n, p.phrase))]
    listed = ", ".join(f"{p['phrase']!r} ({p['intent']}, {p['n']} of {p['total']})" for p in proposals[:10])
    summary = (f"safety lexicon review {since}..{day}: {len(proposals)} proposed phrasing(s) not in the lexicon"
               + (f": {listed}" if listed else "; nothing to add"))
    evidence = {"window": [since.isoformat(), day.isoformat()], "lexicon_version": report.lexicon_version,
                "proposals": proposals, "veto_share": report.veto_share, "warnings": report.warnings}
    return [Finding(subject=SUBJECT, check=CHECK, severity=Severity.WARNING, action=Action.TICKET, day=day,
                    summary=summary, evidence=evidence)]
