"""Inline SVG charts for the report: plain strings, no JS library, nothing fetched.

Kept compact because a year of fifty rules is a few hundred charts in one
file: coordinates are rounded to 0.1 px, a series is one ``<path>`` (not one
element per point), and a series longer than :data:`MAX_POINTS` is thinned to
the minimum and maximum of each bucket, so a one-day spike survives. Colours
and strokes live in the page's CSS classes, not on each element.

Every chart is an ``<svg>`` with ``id``, ``data-chart`` and a ``<title>``;
time charts also carry ``data-start``, ``data-days``, ``data-x0`` and
``data-xw`` (plot area in view-box units) so the page's script can map a
mouse position to a day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape

import numpy as np

__all__ = [
    "MAX_POINTS",
    "TimeChart",
    "bar_rows",
    "heatmap",
    "histogram_pair",
    "interval_rows",
    "nice_ticks",
    "sparkline",
    "stacked_bar",
]

MAX_POINTS = 400
WIDTH, HEIGHT = 520, 150
MARGIN = (18, 10, 20, 46)  # top (the legend row), right, bottom, left


def _n(v: float) -> str:
    """A coordinate rounded to 0.1 px, without a trailing '.0'."""
    r = round(float(v), 1)
    return str(int(r)) if r == int(r) else f"{r:.1f}"


def _tenths(v: int) -> str:
    q, r = divmod(abs(v), 10)
    text = str(q) if not r else f"{q}.{r}"
    return "-" + text if v < 0 else text


# The text of every coordinate a chart can have (0 to 1000 px in tenths): a
# year of fifty rules formats about a million coordinates, and a list lookup
# is several times faster than formatting each.
_TENTHS = [_tenths(v) for v in range(10_001)]


def _t(v: int) -> str:
    return _TENTHS[v] if 0 <= v <= 10_000 else _tenths(v)


def _coords(xs, ys) -> str:
    """``"x,y x,y ..."`` rounded to tenths of a pixel."""
    tx = np.rint(np.asarray(xs, dtype=float) * 10).astype(np.int64).tolist()
    ty = np.rint(np.asarray(ys, dtype=float) * 10).astype(np.int64).tolist()
    table = _TENTHS
    if min(tx, default=0) >= 0 and max(tx, default=0) <= 10_000 and min(ty, default=0) >= 0 \
            and max(ty, default=0) <= 10_000:
        return " ".join([f"{table[a]},{table[b]}" for a, b in zip(tx, ty)])
    return " ".join(f"{_t(a)},{_t(b)}" for a, b in zip(tx, ty))


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values covering [lo, hi].

    >>> nice_ticks(0.9, 1.0)
    [0.9, 0.925, 0.95, 0.975, 1.0]
    >>> nice_ticks(0, 7)
    [0, 2, 4, 6]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _thin(index: np.ndarray, values: np.ndarray, how: str = "minmax",
          limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``limit`` points: per bucket its min and max in time order (or its mean)."""
    if len(index) <= limit:
        return index, values
    buckets = np.array_split(np.arange(len(index)), limit // 2)
    xs, ys = [], []
    for bucket in buckets:
        v = values[bucket]
        if how == "mean":
            xs.append(index[bucket].mean())
            ys.append(v.mean())
            continue
        lo, hi = int(np.argmin(v)), int(np.argmax(v))
        for i in sorted({lo, hi}):
            xs.append(index[bucket][i])
            ys.append(v[i])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _runs(values: np.ndarray) -> list[np.ndarray]:
    """Index runs of consecutive finite values (a gap breaks a line)."""
    finite = np.isfinite(values)
    if not finite.any():
        return []
    idx = np.flatnonzero(finite)
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    return np.split(idx, breaks)


def _fmt_day(day: date) -> str:
    return f"{day:%b} {day.day}"


@dataclass
class TimeChart:
    """A chart of daily series over ``days`` days from ``start``.

    Series are arrays of length ``days`` with NaN for unknown days; ``y`` is the
    value range (None: from the data). Layers draw in the order added.
    """

    chart_id: str
    kind: str
    title: str
    start: date
    days: int
    y: tuple[float, float] | None = None
    y_format: str = "{:g}"
    width: int = WIDTH
    height: int = HEIGHT
    attrs: dict[str, str] = field(default_factory=dict)
    max_points: int = MAX_POINTS  # a longer series is thinned (see _thin)
    _layers: list[tuple] = field(default_factory=list, repr=False)  # (kind, data, css, extra), drawn in order
    _values: list[np.ndarray] = field(default_factory=list, repr=False)
    _legend: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        top, right, bottom, left = MARGIN
        self.x0, self.xw = left, self.width - left - right
        self.y0, self.yh = top, self.height - top - bottom

    # Geometry. Day i sits at the centre of its slot, so bars and points align.
    def _x(self, i) -> np.ndarray:
        return self.x0 + (np.asarray(i, dtype=float) + 0.5) * self.xw / max(self.days, 1)

    def _range(self) -> tuple[float, float]:
        if self.y is not None:
            return self.y
        finite = [v[np.isfinite(v)] for v in self._values]
        finite = [v for v in finite if v.size]
        if not finite:
            return 0.0, 1.0
        lo = min(float(v.min()) for v in finite)
        hi = max(float(v.max()) for v in finite)
        lo = min(lo, 0.0)
        return (lo, hi if hi > lo else lo + 1.0)

    def _ys(self, values, lo: float, hi: float) -> np.ndarray:
        clipped = np.clip(np.asarray(values, dtype=float), lo, hi)
        return self.y0 + self.yh * (1 - (clipped - lo) / (hi - lo))

    # Layers are stored as closures over the final y range.
    def line(self, values: Sequence[float], css: str, label: str | None = None, thin: str = "minmax") -> TimeChart:
        arr = np.asarray(values, dtype=float)
        self._values.append(arr)
        self._layers.append(("line", arr, css, thin))
        if label:
            self._legend.append((css, label))
        return self

    def band(self, low: Sequence[float], high: Sequence[float], css: str, label: str | None = None) -> TimeChart:
        lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        self._values += [lo, hi]
        self._layers.append(("band", (lo, hi), css, None))
        if label:
            self._legend.append((css, label))
        return self

    def bars(self, values: Sequence[float], css: str, label: str | None = None) -> TimeChart:
        arr = np.asarray(values, dtype=float)
        self._values.append(arr)
        self._layers.append(("bars", arr, css, None))
        if label:
            self._legend.append((css, label))
        return self

    def hline(self, value: float, css: str, label: str) -> TimeChart:
        self._values.append(np.asarray([value], dtype=float))
        self._layers.append(("hline", value, css, label))
        return self

    def marker(self, day: date, css: str, label: str, detail: str = "") -> TimeChart:
        """A vertical line on ``day`` (ignored outside the chart); labels of one day stack down."""
        i = (day - self.start).days
        if 0 <= i < self.days:
            # A label is about 5.5 px a character: stack it under any earlier one it would overlap.
            x = float(self._x(i))
            taken = {layer[3][2] for layer in self._layers if layer[0] == "marker"
                     and x - 6 - 5.5 * len(layer[3][0]) < float(self._x(layer[1])) <= x + 5.5 * len(label)}
            row = next(r for r in range(len(taken) + 1) if r not in taken)
            self._layers.append(("marker", i, css, (label, detail, row)))
        return self

    def _render_layer(self, layer, lo: float, hi: float) -> str:
        kind, data, css, extra = layer
        if kind == "line":
            parts = []
            for run in _runs(data):
                xs, ys = _thin(run.astype(float), data[run], extra, self.max_points)
                px, py = self._x(xs), self._ys(ys, lo, hi)
                coords = _coords(px, py)
                parts.append(f"M{coords}" if len(px) > 1 else f"M{coords}h0.1")
            return f'<path class="{css}" d="{"".join(parts)}"/>' if parts else ""
        if kind == "band":
            low, high = data
            parts = []
            for run in _runs(low + high):
                xs, ls = _thin(run.astype(float), low[run], "mean", self.max_points)
                _, hs = _thin(run.astype(float), high[run], "mean", self.max_points)
                px = self._x(xs)
                top = _coords(px, self._ys(hs, lo, hi))
                bottom = _coords(px[::-1], self._ys(ls, lo, hi)[::-1])
                parts.append(f"M{top} {bottom}Z")
            return f'<path class="{css}" d="{"".join(parts)}"/>' if parts else ""
        if kind == "bars":
            finite = np.flatnonzero(np.isfinite(data))
            if not finite.size:
                return ""
            xs, vs = _thin(finite.astype(float), data[finite], "mean", self.max_points)
            w = max(self.xw / max(self.days, 1) * (len(finite) / len(xs)) * 0.8, 0.6)
            base = _n(self._ys([max(lo, 0.0)], lo, hi)[0])
            lefts = np.rint((self._x(xs) - w / 2) * 10).astype(np.int64).tolist()
            tops = np.rint(self._ys(vs, lo, hi) * 10).astype(np.int64).tolist()
            width = _n(w)
            d = "".join([f"M{_t(x)},{base}V{_t(t)}h{width}V{base}" for x, t in zip(lefts, tops)])
            return f'<path class="{css}" d="{d}"/>'
        if kind == "hline":
            y = _n(self._ys([data], lo, hi)[0])
            return (f'<g class="{css}"><title>{_attr(extra)}</title><path d="M{self.x0},{y}h{self.xw}"/>'
                    f'<text x="{self.x0 + self.xw - 2}" y="{y}" dy="-2" text-anchor="end">{_attr(extra)}</text></g>')
        if kind == "marker":
            label, detail, row = extra
            x = _n(self._x(data))
            return (f'<g class="marker {css}" data-day="{(self.start + timedelta(days=int(data))).isoformat()}">'
                    f'<title>{_attr(label)}{(": " + _attr(detail)) if detail else ""}</title>'
                    f'<path d="M{x},{self.y0}v{self.yh}"/><text x="{x}" y="{self.y0 + 9 + 9 * row}" dx="2">'
                    f'{_attr(label)}</text></g>')
        raise AssertionError(kind)

    def _axes(self, lo: float, hi: float) -> str:
        out = []
        for tick in nice_ticks(lo, hi, 3):
            y = _n(self._ys([tick], lo, hi)[0])
            out.append(f'<path class="grid" d="M{self.x0},{y}h{self.xw}"/>'
                       f'<text class="tick" x="{self.x0 - 3}" y="{y}" dy="3" text-anchor="end">'
                       f'{_attr(self.y_format.format(tick))}</text>')
        step = next(s for s in (1, 2, 7, 14, 28, 56, 91, 182, 364, 10**6) if self.days / s <= 8)
        bottom = self.y0 + self.yh
        for i in range(0, self.days, step):
            x = _n(self._x(i))
            out.append(f'<text class="tick" x="{x}" y="{bottom + 13}" text-anchor="middle">'
                       f'{_fmt_day(self.start + timedelta(days=i))}</text>')
        out.append(f'<path class="axis" d="M{self.x0},{bottom}h{self.xw}"/>')
        return "".join(out)

    def _legend_svg(self) -> str:
        out, x = [], self.x0 + 4
        for css, label in self._legend:
            out.append(f'<g class="legend {css}"><rect x="{x}" y="3" width="10" height="6"/>'
                       f'<text x="{x + 13}" y="10">{_attr(label)}</text></g>')
            x += 24 + 6.2 * len(label)
        return "".join(out)

    def render(self) -> str:
        lo, hi = self._range()
        attrs = "".join(f' {k}="{_attr(v)}"' for k, v in self.attrs.items())
        body = "".join(self._render_layer(layer, lo, hi) for layer in self._layers)
        return (f'<svg class="chart" id="{_attr(self.chart_id)}" data-chart="{_attr(self.kind)}" '
                f'viewBox="0 0 {self.width} {self.height}" style="max-width:{self.width * 1.4:.0f}px" '
                f'data-start="{self.start.isoformat()}" '
                f'data-days="{self.days}" data-x0="{self.x0}" data-xw="{self.xw}"{attrs} role="img">'
                f'<title>{_attr(self.title)}</title>{self._axes(lo, hi)}{body}{self._legend_svg()}</svg>')


def heatmap(chart_id: str, title: str, rows: list[str], columns: list[str], values: dict[tuple[str, str], float],
            tips: dict[tuple[str, str], str]) -> str:
    """A rows × columns grid of shares coloured from white to the maximum; each cell says its value."""
    cell_w, cell_h, left, top = 90, 22, 150, 22
    width, height = left + cell_w * len(columns) + 10, top + cell_h * len(rows) + 6
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    top_value = max(finite) if finite and max(finite) > 0 else 1.0
    out = [f'<svg class="chart heatmap" id="{_attr(chart_id)}" data-chart="heatmap" '
           f'viewBox="0 0 {width} {height}" style="max-width:{width}px" role="img"><title>{_attr(title)}</title>']
    for j, column in enumerate(columns):
        out.append(f'<text class="tick" x="{left + cell_w * j + cell_w / 2}" y="{top - 7}" '
                   f'text-anchor="middle">{_attr(column)}</text>')
    for i, row in enumerate(rows):
        y = top + cell_h * i
        out.append(f'<text class="tick" x="{left - 6}" y="{y + cell_h / 2 + 4}" text-anchor="end">{_attr(row)}</text>')
        for j, column in enumerate(columns):
            v = values.get((row, column))
            known = v is not None and math.isfinite(v)
            # Lightness from 97% (none) to 40% (the largest cell), one hue: readable in print.
            light = 97 - 57 * (v / top_value) if known else 100
            text = f"{v:.1%}" if known else "–"
            x = left + cell_w * j
            out.append(f'<g class="cell" data-row="{_attr(row)}" data-column="{_attr(column)}" '
                       f'data-value="{"" if not known else f"{v:.6g}"}"><title>{_attr(tips.get((row, column), text))}</title>'
                       f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                       f'style="fill:hsl(212,70%,{light:.0f}%)"/>'
                       f'<text x="{x + cell_w / 2}" y="{y + cell_h / 2 + 4}" text-anchor="middle" '
                       f'class="{"dark" if light < 62 else "light"}">{text}</text></g>')
    out.append("</svg>")
    return "".join(out)


def stacked_bar(chart_id: str, title: str, parts: list[tuple[str, int]]) -> str:
    """One horizontal bar split into labelled counts (e.g. rules by state)."""
    width, height, left = 520, 44, 4
    total = sum(n for _, n in parts) or 1
    out = [f'<svg class="chart" id="{_attr(chart_id)}" data-chart="stacked-bar" viewBox="0 0 {width} {height}" '
           f'style="max-width:{width}px" role="img"><title>{_attr(title)}</title>']
    x, label_x = float(left), float(left)
    for name, n in parts:
        w = (width - 2 * left) * n / total
        if n:
            label = f"{name} {n}"
            out.append(f'<g class="part state-{_attr(name)}" data-part="{_attr(name)}" data-value="{n}">'
                       f'<title>{_attr(name)}: {n}</title><rect x="{_n(x)}" y="4" width="{_n(w)}" height="18"/>'
                       f'<rect x="{_n(label_x)}" y="29" width="9" height="9"/>'
                       f'<text x="{_n(label_x + 12)}" y="37">{_attr(label)}</text></g>')
            label_x += 24 + 6 * len(label)
        x += w
    out.append("</svg>")
    return "".join(out)


def bar_rows(chart_id: str, title: str, rows: list[tuple[str, float, str]], *, highlight: str | None = None,
             value_format: str = "{:g}") -> str:
    """Horizontal bars, one per (label, value, tip); ``highlight`` marks one label."""
    bar_h, left, width = 18, 170, 520
    height = bar_h * len(rows) + 8
    top_value = max((v for _, v, _ in rows), default=0) or 1
    out = [f'<svg class="chart" id="{_attr(chart_id)}" data-chart="bars" viewBox="0 0 {width} {height}" '
           f'style="max-width:{width}px" role="img"><title>{_attr(title)}</title>']
    for i, (label, value, tip) in enumerate(rows):
        y = 4 + i * bar_h
        w = (width - left - 60) * value / top_value
        css = "bar hot" if label == highlight else "bar"
        out.append(f'<g class="{css}" data-label="{_attr(label)}" data-value="{value:g}"><title>{_attr(tip)}</title>'
                   f'<text class="tick" x="{left - 6}" y="{y + 12}" text-anchor="end">{_attr(label)}</text>'
                   f'<rect x="{left}" y="{y + 2}" width="{_n(max(w, 0.5))}" height="{bar_h - 5}"/>'
                   f'<text class="tick" x="{_n(left + w + 4)}" y="{y + 12}">{_attr(value_format.format(value))}</text></g>')
    out.append("</svg>")
    return "".join(out)


def interval_rows(chart_id: str, title: str, rows: list[tuple[str, float | None, float | None, float | None, str]],
                  floor: float) -> str:
    """A forest plot: per row a point estimate and its interval, against the ``floor`` line."""
    row_h, left, width = 20, 170, 520
    height = row_h * len(rows) + 24
    lows = [r[2] for r in rows if r[2] is not None] + [floor]
    lo = max(0.0, math.floor(min(lows) * 20 - 1) / 20)
    hi = 1.0
    plot = width - left - 20

    def x(v: float) -> str:
        return _n(left + plot * (min(max(v, lo), hi) - lo) / (hi - lo))

    out = [f'<svg class="chart" id="{_attr(chart_id)}" data-chart="intervals" viewBox="0 0 {width} {height}" '
           f'style="max-width:{width}px" role="img"><title>{_attr(title)}</title>']
    bottom = row_h * len(rows) + 4
    for tick in nice_ticks(lo, hi, 4):
        out.append(f'<path class="grid" d="M{x(tick)},4V{bottom}"/>'
                   f'<text class="tick" x="{x(tick)}" y="{bottom + 13}" text-anchor="middle">{tick:.0%}</text>')
    out.append(f'<g class="floor"><title>floor {floor:.0%}</title><path d="M{x(floor)},2V{bottom}"/></g>')
    for i, (label, point, low, high, tip) in enumerate(rows):
        y = 4 + i * row_h + row_h / 2
        out.append(f'<g class="interval" data-label="{_attr(label)}"><title>{_attr(tip)}</title>'
                   f'<text class="tick" x="{left - 6}" y="{_n(y + 4)}" text-anchor="end">{_attr(label)}</text>')
        if point is not None and low is not None and high is not None:
            css = "ok" if low >= floor else ("bad" if high < floor else "open")
            out.append(f'<path class="ci {css}" d="M{x(low)},{_n(y)}H{x(high)}"/>'
                       f'<circle class="{css}" cx="{x(point)}" cy="{_n(y)}" r="3"/>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def histogram_pair(chart_id: str, title: str, edges: Sequence[float], first: Sequence[float],
                   second: Sequence[float], labels: tuple[str, str]) -> str:
    """Two distributions (shares per bin) on the same bins: the first filled, the second outlined."""
    width, height = 520, 170
    top, right, bottom, left = 18, 10, 22, 46
    pw, ph = width - left - right, height - top - bottom
    n = len(first)
    peak = max([*first, *second, 1e-9])
    ticks = nice_ticks(0.0, peak, 3)
    hi = max(peak, ticks[-1] if ticks else peak)

    def y(v: float) -> float:
        return top + ph * (1 - v / hi)

    out = [f'<svg class="chart" id="{_attr(chart_id)}" data-chart="histogram" viewBox="0 0 {width} {height}" '
           f'style="max-width:{width}px" role="img"><title>{_attr(title)}</title>']
    for tick in ticks:
        out.append(f'<path class="grid" d="M{left},{_n(y(tick))}h{pw}"/><text class="tick" x="{left - 3}" '
                   f'y="{_n(y(tick))}" dy="3" text-anchor="end">{tick:.0%}</text>')
    w = pw / n
    for i in range(n):
        x = left + i * w
        out.append(f'<g class="bin" data-bin="{edges[i]:.2f}"><title>{edges[i]:.2f}–{edges[i + 1]:.2f}: '
                   f'{labels[0]} {first[i]:.1%}, {labels[1]} {second[i]:.1%}</title>'
                   f'<rect class="first" x="{_n(x + 1)}" y="{_n(y(first[i]))}" width="{_n(w - 2)}" '
                   f'height="{_n(top + ph - y(first[i]))}"/>'
                   f'<rect class="second" x="{_n(x + 3)}" y="{_n(y(second[i]))}" width="{_n(w - 6)}" '
                   f'height="{_n(top + ph - y(second[i]))}"/></g>')
    for i in range(0, n + 1, 4):
        out.append(f'<text class="tick" x="{_n(left + i * w)}" y="{top + ph + 14}" text-anchor="middle">'
                   f'{edges[i]:.1f}</text>')
    out.append(f'<g class="legend first"><rect x="{left + 4}" y="4" width="10" height="6"/>'
               f'<text x="{left + 18}" y="10">{_attr(labels[0])}</text></g>'
               f'<g class="legend second"><rect x="{left + 150}" y="4" width="10" height="6"/>'
               f'<text x="{left + 164}" y="10">{_attr(labels[1])}</text></g></svg>')
    return "".join(out)


def sparkline(chart_id: str, title: str, values: Sequence[float | None], *, floor: float | None = None) -> str:
    """A small line of a ticket's evidence series (no axes; the title gives the range)."""
    width, height, pad = 180, 34, 3
    arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)
    finite = arr[np.isfinite(arr)]
    out = [f'<svg class="chart spark" id="{_attr(chart_id)}" data-chart="sparkline" '
           f'viewBox="0 0 {width} {height}" style="max-width:{width}px" role="img"><title>{_attr(title)}</title>']
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        if floor is not None:
            lo, hi = min(lo, floor), max(hi, floor)
        hi = hi if hi > lo else lo + 1e-9

        def y(v):
            return pad + (height - 2 * pad) * (1 - (v - lo) / (hi - lo))

        step = (width - 2 * pad) / max(len(arr) - 1, 1)
        parts = []
        for run in _runs(arr):
            coords = " ".join(f"{_n(pad + i * step)},{_n(y(arr[i]))}" for i in run)
            parts.append(f"M{coords}" + ("h0.1" if len(run) == 1 else ""))
        if floor is not None:
            out.append(f'<path class="floor" d="M{pad},{_n(y(floor))}H{width - pad}"/>')
        out.append(f'<path class="line" d="{"".join(parts)}"/>')
    out.append("</svg>")
    return "".join(out)
