"""The document shell every page of the report shares: inline CSS, the tooltip script, escaping.

No external resource: a page opens offline from disk or as a mail attachment.
"""

from __future__ import annotations

import json
from html import escape

__all__ = ["CSS", "FILTER_SCRIPT", "SCRIPT", "e", "page"]

# Shows only the rules (summary rows and sections, marked data-rule-row) that match every filter.
FILTER_SCRIPT = """
(function () {
  var bar = document.querySelector("[data-filters]");
  if (!bar) { return; }
  var inputs = bar.querySelectorAll("[data-filter]");
  var rows = document.querySelectorAll("[data-rule-row]");
  var count = bar.querySelector("[data-filter-count]");
  function apply() {
    var want = {};
    inputs.forEach(function (el) { want[el.getAttribute("data-filter")] = el.value.trim().toLowerCase(); });
    var shown = 0, total = 0;
    rows.forEach(function (row) {
      var ok = (!want.intent || row.getAttribute("data-intent").toLowerCase() === want.intent)
        && (!want.state || row.getAttribute("data-state").toLowerCase() === want.state)
        && (!want.locale || row.getAttribute("data-locales").toLowerCase().split(" ").indexOf(want.locale) >= 0)
        && (!want.text || row.getAttribute("data-rule-row").toLowerCase().indexOf(want.text) >= 0);
      row.hidden = !ok;
      if (row.tagName === "TR") { total += 1; if (ok) { shown += 1; } }
    });
    if (count) { count.textContent = shown + " of " + total + " rules"; }
  }
  inputs.forEach(function (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); });
  apply();
})();
"""

CSS = """
.filters { display: flex; gap: 1em; flex-wrap: wrap; align-items: center; margin: .5em 0; }
.filters select, .filters input { font: inherit; }
table.kv td { padding: 1px 6px; }

:root{--ink:#1d2330;--muted:#5b6475;--line:#d9dee7;--blue:#1f5fa8;--red:#c0392b;--orange:#d35400;--green:#1e8449}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header .meta{color:#c9d1de;margin:4px 0 0}
nav{margin-top:8px}nav a{color:#9cc3ff;margin-right:14px;text-decoration:none}
main{padding:8px 24px 40px;max-width:1200px;margin:auto}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 18px;margin:16px 0}
section>h2{margin:4px 0 10px;font-size:18px}
h3{font-size:15px;margin:14px 0 6px}h3 small,h2 small{color:var(--muted);font-weight:normal;margin-left:4px}
h4{font-size:13px;margin:12px 0 4px;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:6px 18px}
.figure{margin:4px 0}.figure p{margin:0;color:var(--muted);font-size:12px}
svg.chart{width:100%;height:auto;display:block;overflow:visible}
svg.spark{width:180px;height:34px;display:inline-block;vertical-align:middle;background:#fafbfc}
svg text{font-size:10px;fill:#3a4252}
.tick{fill:#5b6475}.grid{stroke:#eef0f4;fill:none}.axis{stroke:#9aa3b2;fill:none}
.agree,.rate,.line,.s0,.s1,.s2,.s3,.s4,.s5{fill:none;stroke-width:1.6;stroke-linejoin:round}
.agree{stroke:var(--blue)}.ci{fill:rgba(31,95,168,.18);stroke:none}
.floor path,path.floor{stroke:var(--red);stroke-dasharray:4 3;fill:none}.floor text{fill:var(--red)}
.hline path{stroke:var(--orange);stroke-dasharray:4 3;fill:none}.hline text{fill:var(--orange)}
.rate{stroke:#2c3e50}.median{fill:none;stroke:#7f8c8d;stroke-dasharray:3 2}.band{fill:rgba(127,140,141,.16)}
.shadow{fill:#7fa7c9}.line{stroke:var(--blue)}
.s0{stroke:#1f5fa8}.s1{stroke:#d35400}.s2{stroke:#1e8449}.s3{stroke:#8e44ad}.s4{stroke:#b7950b}.s5{stroke:#566573}
.legend.s0 rect{fill:#1f5fa8}.legend.s1 rect{fill:#d35400}.legend.s2 rect{fill:#1e8449}.legend.s3 rect{fill:#8e44ad}
.legend.s4 rect{fill:#b7950b}.legend.s5 rect{fill:#566573}
.legend.agree rect{fill:var(--blue)}.legend.ci rect{fill:rgba(31,95,168,.3)}.legend.rate rect{fill:#2c3e50}
.legend.band rect{fill:rgba(127,140,141,.35)}.legend.median rect{fill:#7f8c8d}.legend.shadow rect{fill:#7fa7c9}
.marker path{stroke:#6c7480;stroke-dasharray:2 2;fill:none}.marker text{fill:#4a5160}
.marker.change_point path,.marker.cusum_alarm path{stroke:var(--orange);stroke-width:1.5;stroke-dasharray:none}
.marker.change_point text,.marker.cusum_alarm text{fill:var(--orange);font-weight:600}
.marker.auto_disable path,.marker.disable path{stroke:var(--red);stroke-width:1.5;stroke-dasharray:none}
.marker.auto_disable text,.marker.disable text{fill:var(--red);font-weight:600}
.marker.promote path,.marker.revalidate path{stroke:var(--green)}.marker.promote text{fill:var(--green)}
.heatmap .dark{fill:#fff}.heatmap .light{fill:#1d2330}
.part rect{fill:#9aa3b2}.state-active rect{fill:#1e8449}.state-shadow rect{fill:#5dade2}.state-candidate rect{fill:#f4d03f}
.state-disabled rect{fill:#c0392b}.state-expired rect{fill:#e67e22}.state-retired rect{fill:#7f8c8d}
.bar rect{fill:#7fa7c9}.bar.hot rect{fill:var(--red)}
.first{fill:#c5cdd8}.second{fill:none;stroke:var(--orange);stroke-width:1.5}.legend.first rect{fill:#c5cdd8}
.legend.second rect{fill:var(--orange)}
.ci.ok{stroke:var(--green)}.ci.bad{stroke:var(--red)}.ci.open{stroke:var(--orange)}path.ci{stroke-width:2;fill:none}
circle.ok{fill:var(--green)}circle.bad{fill:var(--red)}circle.open{fill:var(--orange)}
article.rule,article.evaluation,article.ticket{border-top:1px solid var(--line);padding-top:6px;margin-top:10px}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;color:#fff!important;background:#7f8c8d}
.legend text{stroke:none;fill:#3a4252;font-weight:normal}.cap{margin:6px 0 0;font-size:12px;color:#3a4252;font-weight:600}
.badge.active,.badge.ok{background:var(--green)}.badge.disabled,.badge.bad,.badge.critical{background:var(--red)}
.badge.warning,.badge.expired{background:var(--orange)}.badge.candidate{background:#b7950b}.badge.shadow{background:#2e86c1}
span.ok,b.ok{color:var(--green)}span.bad,b.bad,.warn{color:var(--red)}
.meta,.small,.note{color:var(--muted);font-size:12px}.note{font-style:italic}
.kpis{display:flex;gap:24px;flex-wrap:wrap;margin:4px 0 8px}.kpi b{display:block;font-size:20px}
.kpi span{color:var(--muted);font-size:12px}
.evidence{display:flex;flex-wrap:wrap;gap:2px 16px;margin:4px 0;font-size:12px}.evidence i{color:var(--muted)}
article.ticket h3{font-size:14px}
.tip{position:absolute;background:#1d2330;color:#fff;font-size:12px;padding:5px 8px;border-radius:4px;
white-space:pre;pointer-events:none;z-index:10}
code{font-size:12px;background:#f0f2f5;padding:0 3px;border-radius:2px}
"""

# The tooltip: maps the mouse to a day of the chart and shows that day's
# numbers from the embedded data. Nothing else on the page needs a script.
SCRIPT = """
(function () {
  var holder = document.getElementById("report-data");
  if (!holder) { return; }
  var data = JSON.parse(holder.textContent);
  var tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  document.body.appendChild(tip);
  function pct(a, n) { return n ? (100 * a / n).toFixed(1) + "%" : "n/a"; }
  function dayOf(start, i) {
    var d = new Date(start + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + i);
    return d.toISOString().slice(0, 10);
  }
  function describe(svg, i) {
    var lines = [dayOf(svg.getAttribute("data-start"), i)];
    var rule = svg.getAttribute("data-rule");
    var s = rule ? data.rules[rule] : null;
    if (s) {
      if (s.shadow_n[i] !== null) {
        lines.push("agreement " + pct(s.agree_n[i], s.shadow_n[i]) + " (" + s.agree_n[i] + "/" + s.shadow_n[i] + ")");
      }
      if (s.traffic[i] !== null) {
        lines.push("fires " + s.fires[i] + " of " + s.traffic[i] + " (" + pct(s.fires[i], s.traffic[i]) + ")");
      }
      var loc = svg.getAttribute("data-locale"), r = loc ? s.fire_rate[loc] : null;
      if (r && r.fires[i] !== null) {
        lines.push(loc + " fires " + r.fires[i] + " of " + data.traffic[loc][i] + " (" +
          pct(r.fires[i], data.traffic[loc][i]) + ")" + (r.low[i] === null ? "" : "; monitor's band " +
          (100 * r.low[i]).toFixed(2) + "–" + (100 * r.high[i]).toFixed(2) + "%"));
      }
      Object.keys(s.cusum).forEach(function (loc) {
        if (s.cusum[loc][i] !== null) { lines.push("CUSUM " + loc + " " + s.cusum[loc][i]); }
      });
    } else if (svg.getAttribute("data-chart") === "savings") {
      var b = data.bundle;
      if (b.calls_saved[i] !== null) {
        lines.push(b.calls_saved[i] + " model calls saved (" + b.fires[i] + " fires - " + b.shadow_n[i] + " shadow)");
        lines.push("cost saved " + (b.calls_saved[i] * data.model_call_cost).toFixed(2));
      }
    }
    return lines.join("\\n");
  }
  var charts = document.querySelectorAll("svg[data-days]");
  Array.prototype.forEach.call(charts, function (svg) {
    svg.addEventListener("mousemove", function (event) {
      var box = svg.getBoundingClientRect();
      var width = svg.viewBox.baseVal.width;
      var x = (event.clientX - box.left) * width / box.width;
      var days = Number(svg.getAttribute("data-days"));
      var i = Math.floor((x - Number(svg.getAttribute("data-x0"))) / Number(svg.getAttribute("data-xw")) * days);
      if (i < 0 || i >= days) { tip.hidden = true; return; }
      tip.textContent = describe(svg, i);
      tip.style.left = (event.pageX + 12) + "px";
      tip.style.top = (event.pageY + 12) + "px";
      tip.hidden = false;
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; });
  });
})();
"""


def e(value: object) -> str:
    """``value`` as HTML text (None as empty), quotes escaped for attributes too."""
    return escape("" if value is None else str(value), quote=True)


def _json_script(data: dict) -> str:
    # "<" escaped, so no value can close the script element.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="report-data">{text}</script>'


def page(title: str, body: str, *, data: dict | None = None) -> str:
    """A whole self-contained document: inline CSS, ``body``, the embedded data, the tooltip and filter scripts."""
    extra = (_json_script(data) + f"<script>{SCRIPT}</script><script>{FILTER_SCRIPT}</script>") if data is not None else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>{body}{extra}</body></html>")
