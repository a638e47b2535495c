"""The per-rule evaluation as HTML: a block of the health report, or a page of its own.

Both read ``Evaluation.to_dict()`` (what ``EvaluationRow.metrics`` stores),
so the report's block for a stored evaluation and the page a reviewer
attaches to a promotion (:func:`render_evaluation_html`) show the same
things: the gate's verdict, agreement with its interval against the floor,
the strata, the confusion of the disagreements, safety false positives
with their bound, and the slices.
"""

from __future__ import annotations

import re
from datetime import datetime

from rulelife.report.charts import bar_rows, interval_rows
from rulelife.report.page import e as _e
from rulelife.report.page import page

__all__ = ["checks_block", "evaluation_section", "render_evaluation_html", "slug"]


def slug(text: str) -> str:
    """An HTML id fragment: rule ids are dotted, which CSS selectors would read as classes."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


def _pct(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"


def _table(headers: list[str], rows: list[list[object]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def checks_block(passed: bool, reasons: list[str], checks: list[dict] | None) -> str:
    """The gate's verdict, and each check's detail as the gate wrote it."""
    verdict = ('<span class="badge ok">gate passed</span>' if passed
               else '<span class="badge bad">gate refused</span>')
    if checks:
        rows = [[('<span class="ok">ok</span>' if c["passed"] else '<span class="bad">NO</span>'), _e(c["name"]),
                 _e(c["detail"])] for c in checks]
        return f"<p>{verdict}</p>" + _table(["", "check", "detail"], rows, "checks")
    if reasons:
        return f"<p>{verdict}</p><ul class='reasons'>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>"
    return f"<p>{verdict}</p>"


def _interval_tip(name: str, agree, n, point, low, high) -> str:
    counts = f" ({agree}/{n})" if agree is not None else f" (n = {n})"
    return f"{name}: {_pct(point)}{counts}, 95% interval {_pct(low)}–{_pct(high)}"


def evaluation_section(metrics: dict, *, passed: bool, reasons: list[str], floor: float,
                       checks: list[dict] | None = None, at: datetime | None = None, actor: str = "",
                       evaluation_id: int | None = None, heading: str = "h3") -> str:
    """The HTML block of one evaluation (``metrics`` is ``Evaluation.to_dict()``)."""
    rule_id = metrics.get("rule_id", "?")
    key = slug(f"{rule_id}")
    p = metrics.get("production") or {}
    raw = metrics.get("production_raw") or [None, None]
    when = f" on {at:%Y-%m-%d %H:%M} UTC" if at else ""
    by = f" by {_e(actor)}" if actor else ""
    ref = f"evaluation #{evaluation_id}" if evaluation_id is not None else "evaluation"
    out = [f'<article class="evaluation" id="eval-{key}" data-section="evaluation" data-rule="{_e(rule_id)}">',
           f"<{heading}>{_e(rule_id)}<small>@{_e(metrics.get('rule_version'))}</small></{heading}>",
           f'<p class="meta">{ref}{when}{by}; intent <b>{_e(metrics.get("intent"))}</b>; dataset '
           f'<code>{_e(str(metrics.get("dataset_hash", ""))[:12])}</code>, {metrics.get("rows", 0)} rows</p>',
           checks_block(passed, reasons, checks)]

    settle = metrics.get("samples_to_settle")
    out.append(f'<p class="headline" data-metric="production-agreement" data-value="{p.get("estimate")}">'
               f'Agreement with the model on production traffic (weighted by traffic): <b>{_pct(p.get("estimate"))}</b> '
               f'[95% {_pct(p.get("low"))}–{_pct(p.get("high"))}] on {p.get("n", 0)} rows '
               f'(effective n {p.get("effective_n", 0):.0f}); raw {raw[0]}/{raw[1]}; floor {floor:.0%}.'
               + (f" About {settle} more production samples would settle the floor either way." if settle else "")
               + "</p>")

    strata = metrics.get("strata") or []
    rows = [("production (weighted)", p.get("estimate"), p.get("low"), p.get("high"),
             _interval_tip("production, weighted", None, p.get("n"), p.get("estimate"), p.get("low"), p.get("high")))]
    rows += [(s["stratum"], s["agreement"], s["low"], s["high"],
              _interval_tip(s["stratum"], s["agree"], s["n"], s["agreement"], s["low"], s["high"]))
             for s in strata if s["n"]]
    for name, values in (metrics.get("slices") or {}).items():
        rows += [(f"{name}: {r['value']}", r["agreement"], r["low"], r["high"],
                  _interval_tip(f"{name} {r['value']}", r["agree"], r["n"], r["agreement"], r["low"], r["high"]))
                 for r in values]
    out.append('<div class="figure">' + interval_rows(
        f"eval-{key}-intervals", f"Agreement of {rule_id} with 95% intervals, by stratum and slice, "
        f"against the {floor:.0%} floor", rows, floor) + "</div>")

    out.append('<h4>Strata</h4>' + _table(
        ["stratum", "n", "agreement", "95% interval", "fires", "false positives", "safety FP",
         "safety FP bound (0 seen)"],
        [[_e(s["stratum"]), s["n"], _pct(s["agreement"]), f"{_pct(s['low'])}–{_pct(s['high'])}" if s["n"] else "",
          s["fires"], s["false_positives"],
          _e(", ".join(f"{k} {v}" for k, v in s["safety_false_positives"].items()) or "0"),
          # Rule of three: with none seen in n rows, the rate is below 3 / n at 95%.
          f"&lt; {_pct(s['safety_fp_upper_bound'])}" if s.get("safety_fp_upper_bound") is not None else ""]
         for s in strata], "strata"))

    disagreements = metrics.get("disagreements") or {}
    dominant = metrics.get("dominant_disagreement")
    total = sum(disagreements.values())
    out.append("<h4>Disagreements by model class</h4>")
    if disagreements:
        flag = (f'<p class="warn">{_e(dominant)} takes more than half of the disagreements.</p>' if dominant else "")
        out.append(flag + '<div class="figure">' + bar_rows(
            f"eval-{key}-disagreements", f"Disagreements of {rule_id} by the model's class ({total} in all)",
            [(k, v, f"{k}: {v} of {total} disagreements ({v / total:.0%})") for k, v in disagreements.items()],
            highlight=dominant, value_format="{:g}") + "</div>")
        rates = metrics.get("class_fp_rates") or {}
        if rates:
            out.append('<p class="small">False positives per labelled row of each class: '
                       + ", ".join(f"{_e(k)} {_pct(v)}" for k, v in sorted(rates.items(), key=lambda kv: -kv[1]))
                       + f"; severity-weighted false positives {metrics.get('severity_weighted_fp', 0):g}.</p>")
    else:
        out.append("<p>None: the rule agrees with the model on every row.</p>")

    safety = metrics.get("safety_false_positives", 0)
    in_log = metrics.get("safety_fp_in_log") or {}
    out.append(f'<h4>Safety</h4><p data-metric="safety-false-positives" data-value="{safety}">'
               f'Safety false positives over every stratum: <b class="{"bad" if safety else "ok"}">{safety}</b>'
               + (f"; in the whole log window: {_e(', '.join(f'{k} {v}' for k, v in in_log.items()))}" if in_log else "")
               + ".</p>")
    examples = metrics.get("safety_examples") or []
    if examples:
        out.append(_table(["stratum", "query", "text", "model said"],
                          [[_e(x.get("stratum")), _e(x.get("query_id")), _e(x.get("text")), _e(x.get("model_intent"))]
                           for x in examples], "examples"))

    for name, values in (metrics.get("slices") or {}).items():
        out.append(f"<h4>By {_e(name)}</h4>" + _table(
            [name, "n", "agreement", "95% interval"],
            [[_e(r["value"]), r["n"], _pct(r["agreement"]), f"{_pct(r['low'])}–{_pct(r['high'])}"] for r in values],
            "slice"))
    per_day = metrics.get("fires_per_day")
    out.append(f'<p class="small">Fires in the dataset window: {metrics.get("fire_count", 0)}'
               + (f" ({per_day:.0f} a day)" if per_day else "") + ".</p>")
    for note in metrics.get("notes") or []:
        out.append(f'<p class="note">note: {_e(note)}</p>')
    out.append("</article>")
    return "".join(out)


def render_evaluation_html(result, *, floor: float | None = None) -> str:
    """A standalone page of one evaluation (a :class:`rulelife.evidence.promotion.EvaluationResult`).

    The page is self-contained like the report: inline CSS and SVG, nothing
    fetched. ``floor`` (default: the threshold of the gate's agreement check)
    draws the agreement floor.
    """
    evaluation, decision, snapshot = result.evaluation, result.decision, result.snapshot
    floor = decision.check("agreement").threshold if floor is None else floor
    body = evaluation_section(
        evaluation.to_dict(), passed=decision.passed, reasons=decision.reasons, floor=floor,
        checks=[c.to_dict() for c in decision.checks], evaluation_id=result.evaluation_id, heading="h2",
    )
    meta = (f'<p class="meta">dataset {_e(snapshot.content_hash)} built {snapshot.built_at:%Y-%m-%d %H:%M} UTC '
            f"for version {_e(snapshot.rule_version)}</p>")
    title = f"Evaluation of {evaluation.rule_id}@{evaluation.rule_version}"
    return page(title, f'<header><h1>{_e(title)}</h1>{meta}</header><main>'
                       f'<section id="evaluation" data-section="evaluation">{body}</section></main>')

