"""The rule health report: one self-contained HTML page.

Inline CSS, inline SVG and one short inline script (a tooltip that reads the
embedded data); no external resource, so the file opens offline from disk or
as a mail attachment. Every section carries ``id`` and ``data-section``,
every chart ``id`` and ``data-chart``, so tests and scripts can find them.

The numbers behind the per-rule charts are embedded once as JSON
(``<script type="application/json" id="report-data">``): per rule and day of
the window, the counts the store holds, pooled over locales, and per locale
what the monitors computed (the CUSUM, the fire rate and its band).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from rulelife._files import atomic_write
from rulelife.config import Workspace
from rulelife.report.charts import TimeChart, heatmap, histogram_pair, sparkline, stacked_bar
from rulelife.report.data import Marker, ReportData, gather
from rulelife.report.evaluation import checks_block, evaluation_section, slug
from rulelife.report.page import e as _e
from rulelife.report.page import page
from rulelife.store import Store

__all__ = ["SECTIONS", "ReportResult", "page", "render_report", "write_report"]

# The page's top-level sections, in order (each is <section id=... data-section=...>).
SECTIONS = ("bundle", "tickets", "auto-disables", "expiry", "shadow", "rules", "evaluations", "residual")
STATE_ORDER = ("active", "shadow", "candidate", "disabled", "expired", "retired")
# Which markers each rule chart draws: lifecycle events (state changes,
# promotions) everywhere; detections where their evidence is plotted.
DETECTIONS = ("change_point", "cusum_alarm", "ticket")
SHORT = {"auto_disable": "auto-disabled", "promote": "promoted", "revalidate": "revalidated",
         "change_point": "change", "cusum_alarm": "alarm"}
COVERAGE_CHECK = "coverage_drift"
# Points a per-locale fire-rate series is thinned to: about 2 px each across the plot.
FIRE_RATE_POINTS = 240


def _wanted(chart: str, marker) -> bool:
    if marker.kind not in DETECTIONS:
        return True
    if chart == "agreement":
        return marker.check != COVERAGE_CHECK
    if chart == "cusum":
        return marker.kind in ("change_point", "cusum_alarm")
    if chart == "fire-rate":
        return marker.check == COVERAGE_CHECK
    return False


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    size: int  # bytes
    sections: tuple[str, ...]
    counts: dict[str, int]
    since: date
    until: date
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"path": str(self.path), "size": self.size, "sections": list(self.sections), "counts": self.counts,
                "since": self.since.isoformat(), "until": self.until.isoformat(), "seconds": round(self.seconds, 3)}


def _pct(value, digits: int = 1) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.{digits}%}"


def _table(headers: list[str], rows: list[list[object]], css: str = "", numeric: tuple[int, ...] = (),
           row_attrs: list[str] | None = None) -> str:
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    attrs = row_attrs or [""] * len(rows)
    body = "".join(f"<tr{attr}>" + "".join(f'<td class="{"num" if i in numeric else ""}">{c}</td>'
                                           for i, c in enumerate(row)) + "</tr>" for row, attr in zip(rows, attrs))
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}" data-section="{name}"><h2>{_e(title)}</h2>{body}</section>'


def _series(frame: pd.DataFrame, column: str, start: date, days: int) -> np.ndarray:
    """A column of a per-day frame as an array over the window (NaN on missing days)."""
    return _arrays(frame, start, days, [column])[column]


def _arrays(frame: pd.DataFrame, start: date, days: int, columns: list[str]) -> dict[str, np.ndarray]:
    """Columns of a per-day frame as arrays over the window (NaN on missing days)."""
    out = {c: np.full(days, np.nan) for c in columns}
    if frame.empty:
        return out
    index = ((frame["date"] - pd.Timestamp(start)).dt.days).to_numpy()
    keep = (index >= 0) & (index < days)
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        out[column][index[keep]] = values[keep]
    return out


def _ints(values: np.ndarray) -> list[int | None]:
    return [None if not math.isfinite(v) else int(v) for v in values]


def _floats(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), digits) for v in values]


# ---------------------------------------------------------------- the bundle today
def _bundle(data: ReportData) -> str:
    states = data.states["state"].value_counts().to_dict() if not data.states.empty else {}
    parts = [(s, int(states.get(s, 0))) for s in STATE_ORDER]
    total_calls = int(data.savings["calls_saved"].sum()) if not data.savings.empty else 0
    kpis = [(str(states.get("active", 0)), "active rules"), (str(len(data.states)), "rules registered"),
            (f"{total_calls:,}", "model calls saved in the window"),
            (f"{total_calls * data.model_call_cost:,.2f}", f"cost saved ({data.model_call_cost:g} a call)"),
            (str(len(data.tickets)), "open tickets"), (str(len(data.auto_disables)), "auto-disables in the window")]
    out = ['<div class="kpis">' + "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                                          for v, k in kpis) + "</div>"]
    out.append('<h3>Rules by state</h3><div class="figure">'
               + stacked_bar("chart-states", "Registered rules by lifecycle state", parts) + "</div>")
    by_state = data.states.groupby("state")["rule_id"].apply(list).to_dict() if not data.states.empty else {}
    out.append(_table(["state", "rules", "ids"],
                      [[f'<span class="badge {_e(s)}">{_e(s)}</span>', n,
                        _e(", ".join(sorted(by_state.get(s, []))))] for s, n in parts if n],
                      "states", numeric=(1,)))

    cov = data.coverage
    out.append(f"<h3>Coverage of traffic per intent × locale</h3><p class='small'>Fires of each intent's rules / "
               f"traffic of the locale, {data.since}..{data.until}.</p>")
    if cov.empty:
        out.append('<p class="note">No metrics in the window.</p>')
    else:
        values = {(r.intent, r.locale): (None if pd.isna(r.coverage) else float(r.coverage)) for r in cov.itertuples()}
        tips = {(r.intent, r.locale): f"{r.intent} in {r.locale}: {int(r.fires):,} fires / {int(r.traffic):,} queries"
                                      f" = {_pct(None if pd.isna(r.coverage) else r.coverage, 2)}"
                for r in cov.itertuples()}
        out.append('<div class="figure">' + heatmap(
            "chart-coverage", "Share of each locale's traffic answered by each intent's rules",
            sorted(cov["intent"].unique()), sorted(cov["locale"].unique()), values, tips) + "</div>")

    out.append("<h3>Model calls and cost saved per day</h3>")
    chart = TimeChart("chart-savings", "savings", "Model calls saved per day (fires minus the shadow sample)",
                      data.since, data.days, y_format="{:,.0f}")
    chart.bars(_series(data.savings, "calls_saved", data.since, data.days), "shadow", "model calls saved")
    out.append(f'<div class="figure">{chart.render()}<p>Each fire answers a query without the model, except the '
               f'shadow sample, for which the model is called anyway; cost = calls × {data.model_call_cost:g}.</p></div>')
    return _section("bundle", "The bundle today", "".join(out))


# ---------------------------------------------------------------- attention
def _rule_link(rule_id: str | None, known: set[str]) -> str:
    if rule_id and rule_id in known:
        return f'<a href="#rule-{slug(rule_id)}">{_e(rule_id)}</a>'
    return _e(rule_id)


def _evidence(prefix: str, evidence: dict, floor: float) -> str:
    """A finding's evidence: scalars as a list, series as sparklines, mappings and records as small
    tables, example queries as a table (never raw JSON)."""
    scalars, charts, examples, tables = [], [], [], []
    for key, value in evidence.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "value" in value[0]:
            values = [p.get("value") for p in value]
            known = [v for v in values if v is not None]
            rng = f"{value[0]['date']}..{value[-1]['date']}"
            last = f", last {known[-1]:.4g}" if known else ""
            title = f"{key}: {len(value)} days {rng}{last}"
            spark = sparkline(f"{prefix}-{slug(key)}", title, values, floor=floor if key == "agreement" else None)
            charts.append(f"<div>{_e(key)} {spark}"
                          f' <span class="small">{_e(rng)}{_e(last)}</span></div>')
        elif key == "examples" and isinstance(value, list):
            examples = value
        elif isinstance(value, float):
            scalars.append((key, f"{value:.4g}"))
        elif isinstance(value, dict) and value:
            tables.append(f"<div class='small'>{_e(key)}</div>" + _table(
                ["", ""], [[_e(k), _e(_scalar(v))] for k, v in list(value.items())[:20]], "kv"))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value[:10] for k in row))[:8]
            tables.append(f"<div class='small'>{_e(key)}</div>" + _table(
                columns, [[_e(_scalar(row.get(c))) for c in columns] for row in value[:10]], "kv"))
        elif isinstance(value, list):
            scalars.append((key, ", ".join(_scalar(v) for v in value[:20]) + (" ..." if len(value) > 20 else "")))
        else:
            scalars.append((key, str(value)))
    out = ['<div class="evidence">' + "".join(f"<span><i>{_e(k)}</i> {_e(v)}</span>" for k, v in scalars) + "</div>"]
    out += tables
    out += charts
    if examples:
        out.append(_table(["locale", "model said", "query"],
                          [[_e(x.get("locale")), _e(x.get("model_intent")), _e(x.get("text"))] for x in examples[:5]],
                          "examples"))
    return "".join(out)


def _scalar(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)[:120]
    return "" if value is None else str(value)


def _tickets(data: ReportData, known: set[str]) -> str:
    if not data.tickets:
        return _section("tickets", "Open tickets", '<p class="note">No open ticket.</p>')
    out = [_table(["#", "subject", "check", "severity", "locale", "findings", "first day", "last day"],
                  [[t.id, _rule_link(t.subject, known), _e(t.check), (f'<span class="badge {_e(t.severity)}">'
                    f"{_e(t.severity)}</span>"), _e(t.locale or "–"), t.findings, _e(t.first_day), _e(t.last_day)]
                   for t in data.tickets], "tickets", numeric=(0, 5))]
    for t in data.tickets:
        out.append(f'<article class="ticket" id="ticket-{t.id}" data-ticket="{t.id}"><h3>#{t.id} {_e(t.title)}</h3>'
                   + _evidence(f"ticket-{t.id}", t.evidence, data.floor) + "</article>")
    return _section("tickets", f"Open tickets ({len(data.tickets)})", "".join(out))


def _auto_disables(data: ReportData, known: set[str]) -> str:
    if not data.auto_disables:
        return _section("auto-disables", "Auto-disables in the window", '<p class="note">No rule was disabled by '
                        f"the nightly job between {data.since} and {data.until}.</p>")
    out = []
    for row in data.auto_disables:
        finding = json.loads(row.evidence or "{}")
        out.append(f'<article class="ticket" data-rule="{_e(row.rule_id)}"><h3>{_rule_link(row.rule_id, known)} '
                   f'<small>{_e(finding.get("day", row.at.date()))} · {_e(finding.get("check", ""))} · by '
                   f'{_e(row.actor)}</small></h3><p>{_e(finding.get("summary", row.reason))}</p>'
                   + _evidence(f"disable-{row.id}", finding.get("evidence") or {}, data.floor) + "</article>")
    return _section("auto-disables", f"Auto-disables in the window ({len(data.auto_disables)})", "".join(out))


def _expiry(data: ReportData, known: set[str]) -> str:
    rows = data.near_expiry
    intro = (f"<p class='small'>Active rules expiring within {data.revalidate_within_days} days of "
             f"{data.generated_at:%Y-%m-%d} (or already past); `rulelife revalidate` renews them.</p>")
    if rows.empty:
        return _section("expiry", "Rules near expiry", intro + '<p class="note">None.</p>')
    table = _table(["rule", "intent", "expires", "days left"],
                   [[_rule_link(r.rule_id, known), _e(r.intent), _e(f"{r.expires_at:%Y-%m-%d %H:%M}"),
                     f'<span class="{"bad" if r.days_left < 0 else ""}">{r.days_left:.1f}</span>']
                    for r in rows.itertuples()], "expiry", numeric=(3,))
    return _section("expiry", f"Rules near expiry ({len(rows)})", intro + table)


# ---------------------------------------------------------------- per rule
def _markers_on(chart: TimeChart, markers: list[Marker], locale: str | None = None) -> None:
    """Draw ``markers`` on ``chart``; a chart of one ``locale`` leaves out detections in other locales."""
    for m in markers:
        if not _wanted(chart.kind, m) or (locale and m.kind in DETECTIONS and m.locale not in (None, locale)):
            continue
        if m.kind == "ticket":
            label = m.label.split(" (")[0]
        else:
            label = SHORT.get(m.kind, m.kind) + (f" {m.locale}" if m.locale and m.kind in DETECTIONS else "")
        chart.marker(m.day, m.kind, label, f"{m.label} on {m.day}: {m.detail}")


def _rule_charts(data: ReportData, rule_id: str, rows: pd.DataFrame, cusum: pd.DataFrame, rates: pd.DataFrame,
                 markers: list[Marker]) -> tuple[str, dict]:
    start, days, key = data.since, data.days, slug(rule_id)
    a = _arrays(rows, start, days, ["agree_n", "shadow_n", "agreement", "low", "high", "fires", "traffic"])
    agree, shadow, agreement, low, high = a["agree_n"], a["shadow_n"], a["agreement"], a["low"], a["high"]
    attrs = {"data-rule": rule_id}

    # The floor the agreement floor monitor judged this rule against (the gate's, where it judged no day).
    floor = data.floors.get(rule_id, data.floor)
    finite_low = low[np.isfinite(low)]
    bottom = min(floor - 0.03, float(finite_low.min()) if finite_low.size else floor)
    bottom = max(0.0, math.floor(bottom * 20) / 20)
    chart = TimeChart(f"chart-{key}-agreement", "agreement",
                      f"{rule_id}: daily agreement with the model (95% Wilson interval) against the {floor:.0%} floor",
                      start, days, y=(bottom, 1.0), y_format="{:.0%}", attrs=attrs)
    chart.band(low, high, "ci", "95% interval").line(agreement, "agree", "agreement")
    chart.hline(floor, "floor", f"floor {floor:.0%}")
    _markers_on(chart, markers)
    out = [(f"Agreement with the model, daily, with its 95% Wilson interval; floor {floor:.0%}", chart.render())]

    h = data.cusum_h
    chart = TimeChart(f"chart-{key}-cusum", "cusum", f"{rule_id}: agreement CUSUM statistic S per locale"
                      + (f" (alarm above h = {h:.2f})" if h else ""), start, days, attrs=attrs, y_format="{:g}")
    series_by_locale = {}
    for n, (locale, frame) in enumerate(cusum.groupby("locale", sort=True)):
        # The monitor carries S over unknown days (too few shadow samples): so does the line.
        values = pd.Series(_series(frame, "value", start, days)).ffill(limit_area="inside").to_numpy()
        series_by_locale[str(locale)] = _floats(values, 2)
        chart.line(values, f"s{n % 6}", str(locale))
    if h is not None:
        chart.hline(h, "hline", f"h {h:.2f}")
    _markers_on(chart, markers)
    note = "" if series_by_locale else (
        f'<p>{_e(data.cusum_note or "No CUSUM yet: the monitor needs its baseline days of known agreement.")}</p>')
    out.append(("CUSUM of the agreement shortfall per locale" + (f"; alarm above h = {h:.2f}" if h is not None
                else ""), chart.render() + note))

    fire_charts, fire_rates = _fire_rate_charts(data, rule_id, a, rates, markers)
    out += fire_charts

    chart = TimeChart(f"chart-{key}-shadow", "shadow", f"{rule_id}: shadow sample size per day (model labels known)",
                      start, days, y_format="{:,.0f}", attrs=attrs)
    chart.bars(shadow, "shadow", "shadow sample")
    _markers_on(chart, markers)
    out.append(("Shadow sample per day (fires the model also labelled)", chart.render()))

    embedded = {"agree_n": _ints(agree), "shadow_n": _ints(shadow), "fires": _ints(a["fires"]),
                "traffic": _ints(a["traffic"]), "cusum": series_by_locale, "fire_rate": fire_rates}
    return "".join(f'<div class="figure"><p class="cap">{_e(cap)}</p>{svg}</div>' for cap, svg in out), embedded


def _fire_rate_charts(data: ReportData, rule_id: str, pooled: dict[str, np.ndarray], rates: pd.DataFrame,
                      markers: list[Marker]) -> tuple[list[tuple[str, str]], dict]:
    """One fire-rate chart per locale the coverage monitor judged, with the band it held the rate to.

    The monitor judges each (rule, locale) on its own; a band of the locales
    pooled would be a band it never judged, so each locale gets its chart.
    """
    start, days, key = data.since, data.days, slug(rule_id)
    if rates.empty:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = pooled["fires"] / pooled["traffic"]
        chart = TimeChart(f"chart-{key}-fire-rate", "fire-rate", f"{rule_id}: fire rate, all its locales",
                          start, days, y_format="{:.1%}", attrs={"data-rule": rule_id})
        chart.line(rate, "rate", "fire rate")
        _markers_on(chart, markers)
        note = data.fire_rate_note or "no band yet: the coverage monitor has judged no day of this rule"
        return [("Fire rate, all locales", chart.render() + f"<p>{_e(note)}</p>")], {}
    out, embedded = [], {}
    for locale, frame in rates.groupby("locale", sort=True):
        locale = str(locale)
        a = _arrays(frame, start, days, ["value", "fires", "low", "high"])
        # A chart per locale triples these charts, so a long window is drawn at about 2 px a point
        # (a one-day spike of the rate survives the thinning); the exact band is in the embedded data.
        chart = TimeChart(f"chart-{key}-fire-rate-{slug(locale)}", "fire-rate",
                          f"{rule_id} in {locale}: fire rate and the coverage monitor's band (its median ± the "
                          "larger of its tolerance and its counting-noise margin)", start, days,
                          y_format="{:.1%}", attrs={"data-rule": rule_id, "data-locale": locale},
                          max_points=FIRE_RATE_POINTS)
        # The band is centred on the monitor's median; leaving the median's own line out keeps a
        # year of every rule and locale within the page's size.
        chart.band(a["low"], a["high"], "band", "no-ticket band").line(a["value"], "rate", "fire rate")
        _markers_on(chart, markers, locale)
        out.append((f"Fire rate in {locale} and the coverage monitor's band (outside it: a ticket)", chart.render()))
        # The rate is fires / the locale's traffic (embedded once for every rule).
        embedded[locale] = {"fires": _ints(a["fires"]), "low": _floats(a["low"], 6), "high": _floats(a["high"], 6)}
    return out, embedded


def _needs_attention(data: ReportData) -> dict[str, list[str]]:
    why: dict[str, list[str]] = {}
    for t in data.tickets:
        why.setdefault(t.subject, []).append(f"ticket #{t.id} {t.check}")
    for row in data.auto_disables:
        why.setdefault(row.rule_id, []).append("auto-disabled")
    for m in data.markers:
        if m.kind == "cusum_alarm":
            why.setdefault(m.rule_id, []).append(f"CUSUM alarm {m.locale}")
    for r in data.near_expiry.itertuples():
        why.setdefault(r.rule_id, []).append("near expiry")
    return why


def _rules(data: ReportData) -> tuple[str, dict]:
    rule_ids = data.rule_ids()
    if not rule_ids:
        return _section("rules", "Rules", '<p class="note">No daily metrics in the window; run '
                        "`rulelife monitor nightly` first.</p>"), {}
    why = _needs_attention(data)
    states = data.states.set_index("rule_id") if not data.states.empty else pd.DataFrame()
    order = sorted(rule_ids, key=lambda r: (r not in why, r))
    daily = dict(tuple(data.daily.groupby("rule_id", sort=False)))
    cusum = dict(tuple(data.cusum.groupby("rule_id", sort=False))) if not data.cusum.empty else {}
    rates = dict(tuple(data.fire_rates.groupby("rule_id", sort=False))) if not data.fire_rates.empty else {}
    markers: dict[str, list[Marker]] = {}
    for m in data.markers:
        markers.setdefault(m.rule_id, []).append(m)

    locales = ({r: sorted(map(str, f["locale"].unique())) for r, f in data.fire_rates.groupby("rule_id")}
               if not data.fire_rates.empty else {})
    summary, attrs, articles, embedded = [], [], [], {}
    for rule_id in order:
        rows = daily[rule_id]
        state = str(states.loc[rule_id, "state"]) if rule_id in states.index else "unregistered"
        intent = str(rows["intent"].iloc[0])
        attr = (f' data-rule-row="{_e(rule_id)}" data-intent="{_e(intent)}" data-state="{_e(state)}"'
                f' data-locales="{_e(" ".join(locales.get(rule_id, [])))}"')
        attrs.append(attr)
        a, n = int(rows["agree_n"].sum()), int(rows["shadow_n"].sum())
        last = rows[rows["shadow_n"].fillna(0) > 0].tail(1)
        last_text = (f"{_pct(last['agreement'].iloc[0])} ({int(last['agree_n'].iloc[0])}/{int(last['shadow_n'].iloc[0])}"
                     f" on {last['date'].iloc[0]:%m-%d})" if not last.empty else "n/a")
        rule_cusum = cusum.get(rule_id, data.cusum.iloc[0:0])
        s_last = rule_cusum.groupby("locale")["value"].last().max() if not rule_cusum.empty else float("nan")
        link = f'<a href="#rule-{slug(rule_id)}">{_e(rule_id)}</a>'
        summary.append([link, f'<span class="badge {_e(state)}">{_e(state)}</span>',
                        f'<span data-metric="window-agreement">{_pct(a / n if n else None)}</span> ({a}/{n})',
                        f'<span data-metric="last-agreement">{last_text}</span>',
                        f"{rows['fires'].mean():,.0f}" if rows["fires"].notna().any() else "n/a",
                        "n/a" if pd.isna(s_last) else f"{s_last:.2f}",
                        f'<span data-metric="vetoed">{data.vetoes.get(rule_id, 0):,}</span>',
                        _e("; ".join(why.get(rule_id, [])))])
        charts, embedded[rule_id] = _rule_charts(data, rule_id, rows, rule_cusum,
                                                 rates.get(rule_id, data.fire_rates.iloc[0:0]),
                                                 markers.get(rule_id, []))
        version = states.loc[rule_id, "version"] if rule_id in states.index else ""
        expires = states.loc[rule_id, "expires_at"] if rule_id in states.index else None
        head = (f'<h3>{_e(rule_id)}<small>@{_e(version)} · {_e(rows["intent"].iloc[0])}</small> '
                f'<span class="badge {_e(state)}">{_e(state)}</span></h3>'
                f'<p class="meta">window agreement {_pct(a / n if n else None)} ({a}/{n} shadow fires)'
                + (f"; {data.vetoes[rule_id]:,} messages vetoed by the safety lexicon (sent to the model)"
                   if data.vetoes.get(rule_id) else "")
                + (f"; expires {expires:%Y-%m-%d}" if expires is not None and pd.notna(expires) else "")
                + (f'; <span class="warn">{_e("; ".join(why[rule_id]))}</span>' if rule_id in why else "") + "</p>")
        rule_markers = markers.get(rule_id, [])
        plural = "s" if len(rule_markers) != 1 else ""
        events = (f"<details><summary class='small'>{len(rule_markers)} event{plural} on the time line</summary>"
                  + _table(["day", "event", "detail"], [[_e(m.day), _e(m.label), _e(m.detail)] for m in rule_markers])
                  + "</details>") if rule_markers else ""
        # Charts open for the rules that need someone, folded for the rest: the page answers "what needs me".
        opened = " open" if rule_id in why else ""
        charts = (f'<details class="charts"{opened}><summary class="small">charts</summary>'
                  f'<div class="grid2">{charts}</div></details>')
        articles.append(f'<article class="rule" id="rule-{slug(rule_id)}" data-section="rule" '
                        f'data-rule="{_e(rule_id)}"{attr}>{head}{charts}{events}'
                        f'{_evaluation_history(data.evaluation_history.get(rule_id, []))}</article>')
    table = _table(["rule", "state", "agreement (window)", "agreement (last day)", "fires/day", "CUSUM S",
                    "lexicon vetoes (window)", "attention"],
                   summary, "summary", row_attrs=attrs)
    intro = ("<p class='small'>Per rule, pooled over its locales: agreement is agree_n / shadow_n of the shadow "
             "sample; the CUSUM is the agreement monitor's statistic per locale at the rule's current version; "
             "lexicon vetoes are messages a safety-lexicon phrase sent to the model where the rule would have "
             "answered. "
             "Rules needing attention come first, their charts open. Hover a chart for a day's numbers.</p>")
    return _section("rules", f"Rules ({len(order)})",
                    intro + _filters(data, order, locales) + table + "".join(articles)), embedded


def _filters(data: ReportData, order: list[str], locales: dict[str, list[str]]) -> str:
    """Filter the rules by intent, state, locale and id (the page's script hides what does not match)."""
    states = data.states.set_index("rule_id")["state"] if not data.states.empty else pd.Series(dtype=str)
    intents = sorted({str(data.daily.loc[data.daily["rule_id"] == r, "intent"].iloc[0]) for r in order})
    choices = {"intent": intents, "state": sorted({str(states.get(r, "unregistered")) for r in order}),
               "locale": sorted({loc for r in order for loc in locales.get(r, [])})}
    selects = "".join(
        f'<label>{name} <select data-filter="{name}"><option value="">all</option>'
        + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values) + "</select></label>"
        for name, values in choices.items())
    return (f'<div class="filters" data-filters>{selects}<label>rule <input type="search" data-filter="text" '
            f'placeholder="id contains"></label> <span class="small" data-filter-count></span></div>')


def _evaluation_history(views: list) -> str:
    """Every stored evaluation of a rule, newest first."""
    if not views:
        return ""
    rows = [[_e(f"{v.at:%Y-%m-%d %H:%M}"), _e(v.rule_version), '<span class="ok">passed</span>' if v.passed
             else '<span class="bad">refused</span>', _pct((v.metrics.get("production") or {}).get("estimate")),
             v.metrics.get("rows", ""),
             _e(v.actor), _e("; ".join(v.reasons)[:160])] for v in reversed(views)]
    return (f"<details><summary class='small'>{len(views)} evaluation{'s' if len(views) != 1 else ''}</summary>"
            + _table(["at", "version", "gate", "agreement", "rows", "by", "reasons"], rows, "history", numeric=(4,))
            + "</details>")


# ---------------------------------------------------------------- shadow rules
def _needs(standing) -> str:
    if standing.decision.passed:
        return '<span class="ok">ready to promote</span>'
    if standing.more_rows is None:
        return '<span class="bad">more rows will not pass it</span>'
    days = "days unknown" if standing.days is None else f"about {standing.days} day{'s' if standing.days != 1 else ''}"
    return f"{standing.more_rows:,} more labelled rows, {days}"


def _shadow(data: ReportData, known: set[str]) -> str:
    intro = ("<p class='small'>Rules matched on live traffic that never answer: what each would have answered is "
             "counted nightly, and the gate judges it on those model-labelled rows, as <code>rulelife promote</code> "
             f"(and the nightly, with <code>shadow_auto_promote</code>) would, up to {data.until}.</p>")
    if not data.shadow:
        return _section("shadow", "Rules in shadow", intro + '<p class="note">No rule is in shadow.</p>')
    rows, articles = [], []
    for standing in data.shadow:
        e = standing.evidence
        low, high = e.interval
        window = f"{e.first_day}..{e.last_day}" if e.first_day else "none yet"
        since = "" if e.since == date.min else str(e.since)
        rows.append([_rule_link(e.rule_id, known), _e(e.rule_version), _e(since), _e(window),
                     (f'<span data-metric="shadow-labelled" data-value="{e.labelled}">{e.labelled:,}</span>'
                      f" / {e.fires:,}"),
                     f'<span data-metric="shadow-agreement" data-value="{_e(e.agreement)}">{_pct(e.agreement)}</span>'
                     + (f" ({_pct(low)}–{_pct(high)})" if e.labelled else ""),
                     f'<span class="{"bad" if e.safety_fp else "ok"}">{e.safety_fp}</span>',
                     f'<span data-metric="shadow-needs">{_needs(standing)}</span>'])
        decision = standing.decision
        articles.append(f'<article class="shadow-rule" data-section="shadow-rule" data-rule="{_e(e.rule_id)}">'
                        f"<h3>{_e(e.rule_id)}<small>@{_e(e.rule_version)}</small></h3>"
                        + checks_block(decision.passed, decision.reasons, [c.to_dict() for c in decision.checks])
                        + "</article>")
    table = _table(["rule", "version", "in shadow since", "evidence days", "labelled / fires",
                    "agreement (95% interval)", "safety FP", "still needs"], rows, "shadow")
    return _section("shadow", f"Rules in shadow ({len(data.shadow)})", intro + table + "".join(articles))


# ---------------------------------------------------------------- evaluations and residual
def _evaluations(data: ReportData) -> str:
    if not data.evaluations:
        return _section("evaluations", "Latest evaluations", '<p class="note">No rule has been evaluated yet.</p>')
    blocks = [evaluation_section(e.metrics, passed=e.passed, reasons=e.reasons, floor=data.floor, at=e.at,
                                 actor=e.actor, evaluation_id=e.id) for e in data.evaluations.values()]
    passed = sum(e.passed for e in data.evaluations.values())
    intro = (f"<p class='small'>The newest evaluation of each rule ({passed} of {len(blocks)} passed the gate).</p>")
    return _section("evaluations", f"Latest evaluations ({len(blocks)})", intro + "".join(blocks))


def _residual(data: ReportData) -> str:
    view = data.residual
    if view.analysis is None:
        return _section("residual", "Residual traffic (left to the model)",
                        f'<p class="note" data-empty="residual">{_e(view.note)}</p>' + _model_changes(data))
    a = view.analysis
    summary = a.residual_summary()
    edges = [*summary["bin_low"].tolist(), 1.0]
    text = (f"<p>{_e(view.note)}: rules answer {_pct(a.coverage)} of {a.queries:,} queries "
            f"({_pct(a.labelled_coverage)} of the {a.labelled:,} model-labelled ones). Mean model confidence on the "
            f"residual <b>{a.residual_confidence_mean:.3f}</b> against {a.labelled_confidence_mean:.3f} on all "
            f"labelled traffic; below 0.5: <b>{_pct(a.residual_low_confidence_share)}</b> against "
            f"{_pct(a.labelled_low_confidence_share)}. If the rules take the easy queries, the residual's mass sits "
            f"lower: tell whoever owns the model's thresholds and retraining.</p>")
    chart = histogram_pair("chart-residual", "Model confidence: all labelled traffic against the residual no rule answers",
                           edges, summary["labelled_share"].fillna(0).tolist(),
                           summary["residual_share"].fillna(0).tolist(), ("all labelled traffic", "residual"))
    return _section("residual", "Residual traffic (left to the model)",
                    text + _model_on_residual(view) + _model_changes(data) + f'<div class="figure">{chart}</div>')


def _model_changes(data: ReportData) -> str:
    """Each change of the model that labels the log, and where its review of the active rules stands."""
    if not data.model_changes:
        return '<p class="small" data-model="changes">Model changes: none recorded (the log names one model version, or none).</p>'
    rows = [[_e(c.first_day), _e(c.previous_version), _e(c.version), _e(c.status(data.until))]
            for c in reversed(data.model_changes)]
    return ('<h3>Model changes</h3><div data-model="changes">'
            + _table(["first day", "from", "to", "review"], rows) + "</div>")


def _model_on_residual(view) -> str:
    """The model's accuracy on the residual against all traffic, and fallback readiness."""
    if view.model is None:
        return ""
    a, r = view.model["all_accuracy"], view.model["residual_accuracy"]
    if a["n"]:
        accuracy = (f"Model accuracy on the residual <b>{r['accuracy']:.3f}</b> (95% {r['low']:.3f}-{r['high']:.3f}, "
                    f"n={r['n']:,}) against {a['accuracy']:.3f} (95% {a['low']:.3f}-{a['high']:.3f}, n={a['n']:,}) on "
                    "all labelled traffic: a model that did not change serves a harder residual.")
    else:
        accuracy = "Model accuracy: unknown (the log has no true_intent labels)."
    calibration = "".join(f"<li>{_e(line)}</li>" for line in view.calibration or [])
    calibration = f'<ul data-model="calibration">{calibration}</ul>' if calibration else ""
    return (f'<p data-model="residual">{accuracy}</p><p data-model="fallback">{_e(view.fallback)}.</p>'
            + calibration)



def render_report(data: ReportData) -> str:
    """The whole page of ``data``."""
    known = set(data.rule_ids())
    rules_html, embedded = _rules(data)
    name = Path(data.workspace).name or data.workspace
    nav = "".join(f'<a href="#{s}">{s.replace("-", " ")}</a>' for s in SECTIONS)
    header = (f"<header><h1>Rule health · {_e(name)}</h1><p class='meta'>metrics {data.since} .. {data.until} "
              f"({data.days} days) · generated {data.generated_at:%Y-%m-%d %H:%M} UTC · workspace "
              f"{_e(data.workspace)}</p><nav>{nav}</nav></header>")
    body = "".join([_bundle(data), _tickets(data, known), _auto_disables(data, known), _expiry(data, known),
                    _shadow(data, known), rules_html, _evaluations(data), _residual(data)])
    savings = data.savings
    traffic = (data.fire_rates.groupby(["locale", "date"])["traffic"].max().reset_index()
               if not data.fire_rates.empty else data.fire_rates)
    embedded_data = {
        "start": data.since.isoformat(), "days": data.days, "floor": data.floor,
        "model_call_cost": data.model_call_cost, "rules": embedded,
        "traffic": {str(locale): _ints(_series(frame, "traffic", data.since, data.days))
                    for locale, frame in traffic.groupby("locale", sort=True)},
        "bundle": {name: _ints(_series(savings, name, data.since, data.days))
                   for name in ("fires", "shadow_n", "calls_saved")},
    }
    return page(f"Rule health {data.since}..{data.until}", f"{header}<main>{body}</main>", data=embedded_data)


def write_report(workspace: Workspace, out: Path, *, since: date | None = None, store: Store | None = None,
                 until: date | None = None, now: datetime | None = None, residual: bool = True) -> ReportResult:
    """Write the rule health report of ``workspace`` to ``out`` (one self-contained HTML file).

    ``since`` / ``until`` bound the window (see :func:`rulelife.report.data.gather`);
    ``residual=False`` skips reading the query log for the residual view.
    The file is written atomically: a reader never sees half a report.
    """
    import time

    started = time.perf_counter()
    own = store is None
    store = store or Store.from_workspace(workspace)
    try:
        data = gather(workspace, store, since=since, until=until, now=now, residual=residual)
    finally:
        if own:
            store.dispose()
    text = render_report(data)
    out = Path(out)
    atomic_write(out, text)
    return ReportResult(path=out, size=out.stat().st_size, sections=SECTIONS, counts=data.counts(),
                        since=data.since, until=data.until, seconds=time.perf_counter() - started)
