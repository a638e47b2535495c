"""``rulelife safety mine``: propose safety-lexicon phrases and check what the current lexicon vetoes.

The proposals are chosen on the earlier days of the window and recounted on
the later ones (as for rules), and the current lexicon is measured on the
window: the share of labelled traffic it would send to the model, with the
phrases that veto most, so a lexicon that grew too broad is seen before it
is published.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from rulelife.config import Workspace
from rulelife.engines.fold import LogFold
from rulelife.mining.mine import split_window
from rulelife.plugins import MINERS, load_plugin
from rulelife.querylog import LogReport
from rulelife.rules.lexicon import Lexicon, load_lexicon
from rulelife.rules.matcher import CompiledRule, Matcher, normalize_locale
from rulelife.rules.normalize import normalize, normalize_many
from rulelife.store.selection import Window

__all__ = ["LexiconReport", "VetoCounts", "lexicon_matcher", "mine_lexicon", "proposals_yaml"]


def lexicon_matcher(lexicon: Lexicon) -> Matcher:
    """One matcher rule per lexicon entry (id ``lexicon.<i>``), to count where each phrase fires."""
    return Matcher([CompiledRule(id=f"lexicon.{i}", version=lexicon.version, intent=e.intent,
                                 patterns=(normalize(e.phrase),), exclude=(),
                                 locales=tuple(normalize_locale(x) for x in e.locales),
                                 match=e.match, priority=0)
                    for i, e in enumerate(lexicon.phrases)])


@dataclass
class VetoCounts:
    """Rows read, rows holding a lexicon phrase, and rows per phrase (a fold result: they add up)."""

    rows: int = 0
    vetoed: int = 0
    by_phrase: Counter = field(default_factory=Counter)

    def __add__(self, other: VetoCounts) -> VetoCounts:
        return VetoCounts(self.rows + other.rows, self.vetoed + other.vetoed, self.by_phrase + other.by_phrase)


@dataclass
class _VetoPass:
    lexicon: Lexicon
    _matcher: Matcher | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_matcher": None}

    def __call__(self, chunk: pd.DataFrame) -> VetoCounts:
        self._matcher = self._matcher or lexicon_matcher(self.lexicon)
        results = self._matcher.match_many(normalize_many(chunk["text"].tolist()), chunk["locale"], normalized=True)
        counts = VetoCounts(rows=len(chunk))
        for result in results:
            if result is not None:
                counts.vetoed += 1
                counts.by_phrase.update(self.lexicon.phrases[int(r.split(".")[1])].phrase for r in result.fired)
        return counts


@dataclass
class LexiconReport:
    window: Window | None
    heldout: Window | None
    proposals: list = field(default_factory=list)  # miners.safety_lexicon.LexiconProposal
    lexicon_version: str | None = None
    veto: VetoCounts | None = None
    max_veto_share: float = 0.2
    log: LogReport = field(default_factory=LogReport)

    @property
    def veto_share(self) -> float | None:
        return self.veto.vetoed / self.veto.rows if self.veto and self.veto.rows else None

    @property
    def warnings(self) -> list[str]:
        share = self.veto_share
        if share is None or share <= self.max_veto_share:
            return []
        top = ", ".join(f"{p!r} {n}" for p, n in self.veto.by_phrase.most_common(5))
        return [f"the lexicon would send {share:.1%} of the window's traffic to the model (more than "
                f"{self.max_veto_share:.0%}); the phrases that veto most: {top}"]

    def to_dict(self) -> dict:
        return {"window": self.window.to_list() if self.window else None,
                "heldout_window": self.heldout.to_list() if self.heldout else None,
                "proposals": [p.to_dict() for p in self.proposals], "lexicon_version": self.lexicon_version,
                "veto_share": self.veto_share,
                "veto_by_phrase": dict(self.veto.by_phrase.most_common()) if self.veto else {},
                "warnings": self.warnings, "log": self.log.to_dict()}


def mine_lexicon(workspace: Workspace, *, log: Path | Sequence[Path] | None = None, since: date | None = None,
                 until: date | None = None, holdout: float = 0.5, min_share: float | None = None,
                 min_support: int | None = None, engine: str = "local", workers: int | None = None,
                 spark=None) -> LexiconReport:
    """Propose lexicon phrases from the log window and measure the current lexicon on it."""
    settings = workspace.settings
    lexicon = load_lexicon(workspace.rules_dir)
    miner = load_plugin(MINERS, "safety_lexicon")(
        safety_intents=list(settings.safety_intents),
        min_share=settings.lexicon_min_share if min_share is None else min_share,
        min_support=settings.lexicon_min_support if min_support is None else min_support,
        known={normalize(e.phrase) for e in lexicon.phrases} if lexicon else ())
    source = log if log is not None else workspace.log_dir
    options = dict(engine=engine, known_intents=settings.intents or None, quarantine_dir=workspace.quarantine_dir,
                   workers=workers, spark=spark)
    chosen, heldout = split_window(source, since, until, holdout, options)
    report = LexiconReport(chosen, heldout, max_veto_share=settings.lexicon_max_veto_share)
    window = dict(since=chosen.start, until=chosen.end) if chosen else dict(since=since, until=until)
    with LogFold(source, report=report.log, **window, **options) as fold:
        miner.fit(fold=fold)
    if heldout is not None:
        with LogFold(source, since=heldout.start, until=heldout.end, **options) as fold:
            miner.score(fold=fold)
    report.proposals = miner.proposals_
    if lexicon is not None and lexicon.phrases:
        report.lexicon_version = lexicon.version
        with LogFold(source, since=chosen.start if chosen else since,
                     until=(heldout or chosen).end if chosen else until, **options) as fold:
            report.veto = fold(_VetoPass(lexicon))
    return report


def proposals_yaml(proposals: list, owner: str) -> str:
    """The proposals in the lexicon file's format, each with its counts as a note, for review."""
    entries = []
    for p in proposals:
        held = "" if p.heldout_share is None else f"; held out {p.heldout_share:.0%} of {p.heldout_total}"
        entry = {"phrase": p.phrase, "intent": p.intent}
        if p.match == "substring":
            entry |= {"locales": [p.locale], "match": "substring"}
        entry["note"] = f"proposed: {p.share:.0%} of {p.total} labelled queries{held}"
        entries.append(entry)
    return ("# Proposed by `rulelife safety mine`: keep what signals a safety intent, strike the rest,\n"
            "# then merge into safety_lexicon.yaml.\n"
            + yaml.safe_dump({"owner": owner, "phrases": entries}, sort_keys=False, allow_unicode=True))
