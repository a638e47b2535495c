"""``rulelife mine``: propose candidate rules from the query log, write them, register them.

The miner itself is a plugin (entry point ``candidates`` in ``rulelife.miners``);
this module is the workspace around it: read the log window, pass the live and
known rules, write one YAML file a candidate under ``rules/<intent slug>/``, make
sure the whole folder still lints clean (a candidate that would break it is
removed again, with the lint message as its reason), and register the new
files as candidates. Nothing here ever makes a rule active: that is the gate's.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from rulelife import progress
from rulelife._files import atomic_write
from rulelife.config import Workspace
from rulelife.engines.fold import LogFold
from rulelife.errors import ConfigError, RuleError
from rulelife.mining import MIN_CONFIDENCE
from rulelife.plugins import MINERS, load_plugin
from rulelife.querylog import LogReport
from rulelife.rules.definition import intent_slug, rule_to_yaml
from rulelife.rules.lint import lint_rules
from rulelife.store import Store, registry
from rulelife.store.registry import SyncReport
from rulelife.store.selection import Window, has_selection, record_selection

__all__ = ["MiningReport", "Skip", "mine_workspace", "split_window"]


@dataclass(frozen=True)
class Skip:
    """A candidate not written, and why (same fields as the miner's own skip records)."""

    phrase: str
    intent: str
    locale: str
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class MiningReport:
    """What a mining run found, wrote and registered, and what it skipped and why."""

    window: tuple[date | None, date | None]  # the days that chose the candidates
    days: int
    min_confidence: float
    heldout: Window | None = None  # the later days their held-out figures come from
    candidates: list = field(default_factory=list)  # miners.candidates.Candidate, best savings first
    paths: dict[str, str] = field(default_factory=dict)  # candidate id -> file written
    skipped: list = field(default_factory=list)  # miners.candidates.Skip
    statuses: list[dict] = field(default_factory=list)  # one per (locale, intent)
    notes: list[str] = field(default_factory=list)
    log: LogReport = field(default_factory=LogReport)
    sync: SyncReport | None = None
    undercount_bound: int = 0

    @property
    def written(self) -> list:
        return [c for c in self.candidates if c.id in self.paths]

    def to_dict(self) -> dict:
        return {
            "window": [d.isoformat() if d else None for d in self.window],
            "heldout_window": self.heldout.to_list() if self.heldout else None,
            "days": self.days,
            "min_confidence": self.min_confidence,
            "candidates": [{**c.to_dict(), "path": self.paths.get(c.id)} for c in self.candidates],
            "skipped": [s.to_dict() for s in self.skipped],
            "statuses": self.statuses,
            "notes": self.notes,
            "log": self.log.to_dict(),
            "sync": self.sync.to_dict() if self.sync else None,
            "undercount_bound": self.undercount_bound,
        }


def mine_workspace(
    workspace: Workspace,
    *,
    log: Path | Sequence[Path] | None = None,
    since: date | None = None,
    until: date | None = None,
    min_confidence: float = MIN_CONFIDENCE,
    min_support: int = 20,
    min_precision: float = 0.97,
    actor: str = "miner",
    write: bool = True,
    store: Store | None = None,
    engine: str = "local",
    workers: int | None = None,
    spark=None,
    holdout: float = 0.5,
    **miner_params,
) -> MiningReport:
    """Mine candidate rules from the log window ``[since, until]`` (default: the workspace's logs/).

    The window is cut by day: the miner chooses phrases on the earlier days and
    counts each candidate on the later ``holdout`` share of them, which never
    chose it (``holdout=0``: choose on the whole window). The days that chose a
    candidate are recorded with it, and the gate takes its evidence only from
    other days, so no figure that decides a promotion comes from the rows that
    selected the rule.

    With ``write`` (the default) each candidate is written to
    ``rules/<intent slug>/mined_<name>.yaml`` and registered as a candidate; an
    existing file is never overwritten. ``engine`` (``local``, ``local-pool``
    with ``workers`` processes, or ``spark`` on session ``spark``) says where
    the three counting passes run; every engine proposes the same rules.
    ``miner_params`` go to the miner (see :class:`miners.candidates.CandidateMiner`).
    """
    settings = workspace.settings
    store = store or Store.from_workspace(workspace)
    before = lint_rules(workspace.rules_dir)
    leftovers = _leftovers(before, store) if write else set()
    refused = {str(p.path) for p in before.problems}
    if refused and refused <= leftovers:
        # An interrupted run wrote these and died before removing the ones lint refuses, as it would have.
        for path in refused:
            Path(path).unlink()
        leftovers -= refused
        before = lint_rules(workspace.rules_dir)
    if not before.ok:
        raise RuleError(f"{len(before.problems)} lint problem(s) in {workspace.rules_dir} before mining; "
                        "fix them first (`rulelife rules lint`) so new candidates can be checked against a clean folder")
    active = registry.active_rules(store)
    active_ids = {r.id for r in active}
    miner_class = load_plugin(MINERS, "candidates")
    miner = miner_class(min_confidence=min_confidence, min_support=min_support, min_precision=min_precision,
                        safety_intents=list(settings.safety_intents), shadow_rate=settings.shadow_rate,
                        model_call_cost=settings.model_call_cost, intents=list(settings.intents) or None,
                        **{"safety_proximity": settings.safety_proximity_share,
                           "min_proximity_rows": settings.safety_proximity_rows,
                           "min_proximity_lift": settings.safety_proximity_lift, **miner_params})
    if not 0 <= holdout < 1:
        raise ConfigError(f"holdout must be a share of the window's days in [0, 1), got {holdout!r}; "
                          "0.5 is the default")
    report = MiningReport(window=(since, until), days=0, min_confidence=min_confidence)
    source = log if log is not None else workspace.log_dir
    options = {"engine": engine, "known_intents": settings.intents or None,
               "quarantine_dir": workspace.quarantine_dir, "workers": workers, "spark": spark,
               "chunk_rows": miner.chunk_rows}
    chosen, heldout = split_window(source, since, until, holdout, options)
    progress.step(f"mining the choosing days {chosen.start if chosen else since}..{chosen.end if chosen else until}")
    # The miner reads its days three times; the first read fills the log report.
    with LogFold(source, report=report.log, since=chosen.start if chosen else since,
                 until=chosen.end if chosen else until, **options) as fold:
        # An interrupted run's files are not known rules: mined again, they are the same files.
        known = [rf.rule for rf in before.rules if rf.rule.id not in active_ids and str(rf.path) not in leftovers]
        miner.fit(fold=fold, active_rules=active, rules=known)
    if heldout is not None and miner.candidates_:
        progress.step(f"counting {len(miner.candidates_)} candidates on the held-out days {heldout.start}..{heldout.end}")
        with LogFold(source, since=heldout.start, until=heldout.end, **options) as fold:
            miner.score(fold=fold)
    days = sorted(miner.counts_.days)
    report.window = ((chosen.start if chosen else since) or (days[0] if days else None),
                     (chosen.end if chosen else until) or (days[-1] if days else None))
    report.heldout = heldout
    if heldout is None and miner.candidates_:
        report.notes.append("no held-out days (one day in the window, or holdout=0): build each candidate's "
                            "dataset from later days, or let it earn live evidence in shadow")
    report.days = miner.days_
    report.candidates = list(miner.candidates_)
    report.skipped = list(miner.skipped_)
    report.statuses = miner.statuses_.to_dict("records")
    report.undercount_bound = miner.counts_.undercount
    confident = int(miner.counts_.rows["n_conf"].sum()) if len(miner.counts_.rows) else 0
    if confident == 0:
        report.notes.append(f"no model prediction at confidence >= {min_confidence} in the window: nothing to mine")
    if write and report.candidates:
        _write(workspace, report)
    if write and report.paths:
        # Each step can be cut by a crash and taken again: the files are adopted when equal, a
        # selection is recorded once, and a rule registers once; the selection comes before the
        # registration, so no registered candidate ever lacks the days that chose it.
        _record(store, report, actor)
        report.sync = registry.sync_workspace(workspace, actor=actor, store=store)
    return report


MINED_HEADER = "# Candidate mined by `rulelife mine`; review it, then build its dataset and promote it.\n"


def _leftovers(lint, store: Store) -> set[str]:
    """The rule files a mining run wrote and never registered: an interrupted run's."""
    registered = {status.rule_id for status in registry.list_rules(store)}
    paths = {str(rf.path) for rf in lint.rules if rf.rule.id not in registered}
    paths |= {str(p.path) for p in lint.problems}
    return {path for path in paths if (_read(Path(path)) or "").startswith(MINED_HEADER)}


def _day_set(chunk: pd.DataFrame) -> frozenset[date]:
    """The UTC days of a chunk's rows (a fold step)."""
    return frozenset(chunk["ts"].dt.tz_convert("UTC").dt.date.dropna().unique())


def split_window(source, since: date | None, until: date | None, holdout: float,
           options: dict) -> tuple[Window | None, Window | None]:
    """The window's choosing days and its held-out days (None, None: no log day in it)."""
    if since is None or until is None:
        # The window's ends are the log's own days: one read of the window to find them.
        with LogFold(source, since=since, until=until, **options) as fold:
            days = sorted(fold(_day_set, operator.or_) or ())
        if not days:
            return None, None
        since, until = since or days[0], until or days[-1]
    if until < since:
        raise ConfigError(f"--until {until} is before --since {since}; give a window that ends after it starts")
    n = (until - since).days + 1
    held = int(n * holdout)
    if held == 0 or held == n:
        return Window(since, until), None
    split = until - timedelta(days=held)
    return Window(since, split), Window(split + timedelta(days=1), until)


def _record(store: Store, report: MiningReport, actor: str) -> None:
    """Remember, per registered candidate, the days that chose it (and those it was scored on)."""
    start, end = report.window
    if start is None or end is None:
        return
    chosen = Window(start, end)
    with store.session() as session:
        for candidate in report.written:
            if has_selection(session, candidate.id, candidate.rule.version, chosen, report.heldout):
                continue  # an interrupted run recorded it
            figures = {"fires": candidate.fires, "agree": candidate.agree, "heldout_fires": candidate.heldout_fires,
                       "heldout_agree": candidate.heldout_agree, "heldout_unsafe": candidate.heldout_unsafe}
            record_selection(session, candidate.id, candidate.rule.version, chosen, heldout=report.heldout,
                             actor=actor, figures=figures)


def _write(workspace: Workspace, report: MiningReport) -> None:
    """Write each candidate's file, then remove any that makes the folder fail lint."""
    for candidate in report.candidates:
        name = candidate.id.split(".", 1)[1]
        path = workspace.rules_dir / intent_slug(candidate.intent) / f"{name}.yaml"
        text = MINED_HEADER + rule_to_yaml(candidate.rule)
        if path.exists():
            if _read(path) == text:  # what an interrupted run of the same mining wrote
                report.paths[candidate.id] = str(path)
                continue
            report.skipped.append(Skip(", ".join(candidate.rule.patterns), candidate.intent, candidate.locale,
                                       "file_exists", f"{path} already exists; it is left as it is"))
            continue
        atomic_write(path, text)
        report.paths[candidate.id] = str(path)
    # Each round removes every written file lint complains about; removing a
    # file can only remove problems, so this ends (at most once per file).
    while True:
        problems = [p for p in lint_rules(workspace.rules_dir).problems if str(p.path) in report.paths.values()]
        if not problems:
            return
        by_path = {}
        for problem in problems:
            by_path.setdefault(str(problem.path), []).append(f"{problem.field}: {problem.message}")
        for rule_id, path in list(report.paths.items()):
            if path in by_path:
                Path(path).unlink()
                del report.paths[rule_id]
                candidate = next(c for c in report.candidates if c.id == rule_id)
                report.skipped.append(Skip(", ".join(candidate.rule.patterns), candidate.intent, candidate.locale,
                                           "lint", "; ".join(by_path[path])))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
