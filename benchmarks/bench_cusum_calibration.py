"""Measure the agreement CUSUM's false-alarm rate and detection delay by simulation.

    .venv/bin/python -m benchmarks.bench_cusum_calibration [--series 400 --days 2000 --json out.json]

Each setting draws stable binomial series (``agree_n ~ Bin(n_t, p)``) as the
monitor sees them: ``baseline_days`` known days estimate ``mu0`` (pooled, per
series), then ``days`` monitored days run the CUSUM, restarting ``S`` after
each alarm so that alarms / series-days estimates ``1 / ARL0``. The figure is
that rate as a multiple of the nominal ``1 / arl0``, over p in {0.93, 0.97,
0.99, 0.995} × n in {20, 50, 100, uniform 20-100 per day}, for the shipped
statistic (``monitors.cusum``) and, for comparison, the previous one (binomial
z with ``sqrt(mu0 (1 - mu0) / n)``, ``mu0`` clipped to 0.995, Siegmund ``h``
for a known mean). Detection: the agreement drops from 0.97 to 0.93 or 0.90
on the 51st monitored day; the delay is the day of the drop the first alarm
falls on (1 = the first changed day), median over the series that had not
alarmed before the change. Every setting has its own seed, so the numbers
reproduce exactly.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

# The monitor's own clip of mu0, so the simulation runs the exact procedure.
from monitors.cusum import _MU0_RANGE, calibrated_h, siegmund_h, standardise

__all__ = ["Config", "main", "run"]

PS = (0.93, 0.97, 0.99, 0.995)
NS = (20, 50, 100, "20-100")
SHIFTS = ((0.97, 0.93), (0.97, 0.90))
DELAY_NS = (50, "20-100")
# In-control days before the drop: S has settled to its stable distribution.
PRE_CHANGE = 50
# Days after the drop to wait for an alarm; every method here alarms well before.
HORIZON = 100


@dataclass(frozen=True)
class Config:
    series: int = 400
    days: int = 2000
    baseline_days: int = 14
    k: float = 0.5
    arl0: float = 2000.0
    seed: int = 0


def _draw_n(rng: np.random.Generator, n, shape) -> np.ndarray:
    return rng.integers(20, 101, size=shape) if n == "20-100" else np.full(shape, n)


def _steps(method: str, rng, config: Config, n, p_days: np.ndarray) -> tuple[np.ndarray, float]:
    """Daily CUSUM increments ``z - k`` of ``config.series`` series and the method's ``h``."""
    nb = _draw_n(rng, n, (config.series, config.baseline_days))
    n0 = nb.sum(axis=1)
    mu0 = rng.binomial(nb, p_days[0]).sum(axis=1) / n0
    nt = _draw_n(rng, n, (config.series, len(p_days)))
    agree = rng.binomial(nt, p_days)
    if method == "shipped":
        z = standardise(agree, nt, np.clip(mu0, *_MU0_RANGE)[:, None], n0[:, None])
        return z - config.k, calibrated_h(config.k, config.arl0, config.baseline_days)
    mu0 = np.clip(mu0, 0.5, 0.995)[:, None]
    z = (mu0 - agree / nt) / np.sqrt(mu0 * (1 - mu0) / nt)
    return z - config.k, siegmund_h(config.k, config.arl0)


def _alarms(steps: np.ndarray, h: float) -> np.ndarray:
    """Boolean alarm days of a CUSUM that restarts from 0 after each alarm (vectorised over series)."""
    s = np.zeros(steps.shape[0])
    alarms = np.zeros(steps.shape, dtype=bool)
    for t in range(steps.shape[1]):
        s = np.maximum(0.0, s + steps[:, t])
        alarms[:, t] = s > h
        s[alarms[:, t]] = 0.0
    return alarms


def false_alarm_multiple(method: str, p: float, n, config: Config, seed: int) -> float:
    """Alarms per stable series-day as a multiple of ``1 / arl0``."""
    rng = np.random.default_rng(seed)
    steps, h = _steps(method, rng, config, n, np.full(config.days, p))
    return float(_alarms(steps, h).mean() * config.arl0)


def detection_delay(method: str, p0: float, p1: float, n, config: Config, seed: int) -> dict:
    """Median day of the drop on which the first alarm falls, and the share detected within HORIZON."""
    rng = np.random.default_rng(seed)
    steps, h = _steps(method, rng, config, n, np.r_[np.full(PRE_CHANGE, p0), np.full(HORIZON, p1)])
    alarms = _alarms(steps, h)
    clean = ~alarms[:, :PRE_CHANGE].any(axis=1)
    after = alarms[clean, PRE_CHANGE:]
    hit = after.any(axis=1)
    days = after.argmax(axis=1)[hit] + 1
    return {"median_day": float(np.median(days)) if days.size else None,
            "detected": float(hit.mean()) if hit.size else 0.0, "series": int(clean.sum())}


def run(config: Config) -> dict:
    methods = ("shipped", "previous")
    false_alarms, delays = [], []
    for i, (p, n) in enumerate((p, n) for p in PS for n in NS):
        false_alarms.append({"p": p, "n": n, **{m: false_alarm_multiple(m, p, n, config, config.seed * 1000 + i)
                                                 for m in methods}})
    for i, ((p0, p1), n) in enumerate(((s, n) for s in SHIFTS for n in DELAY_NS), start=500):
        delays.append({"p0": p0, "p1": p1, "n": n, **{m: detection_delay(m, p0, p1, n, config, config.seed * 1000 + i)
                                                      for m in methods}})
    return {"config": config.__dict__, "h": {"shipped": calibrated_h(config.k, config.arl0, config.baseline_days),
                                             "previous": siegmund_h(config.k, config.arl0)},
            "false_alarms_x_nominal": false_alarms, "detection_delay_days": delays}


def format_table(report: dict) -> str:
    c = report["config"]
    lines = [f"false alarms per series-day × 1/{c['arl0']:g} ({c['series']} series × {c['days']} days, "
             f"mu0 from {c['baseline_days']} days; h shipped {report['h']['shipped']:.3f}, "
             f"previous {report['h']['previous']:.3f})",
             f"{'p':>6}{'n':>8}{'shipped':>10}{'previous':>10}"]
    for row in report["false_alarms_x_nominal"]:
        lines.append(f"{row['p']:>6}{row['n']!s:>8}{row['shipped']:>10.2f}{row['previous']:>10.2f}")
    worst = max(row["shipped"] for row in report["false_alarms_x_nominal"])
    lines.append(f"worst shipped: {worst:.2f} × nominal ({'within' if worst <= 1 else 'ABOVE'} the stated rate)")
    lines += ["", "detection: median day of the drop the first alarm falls on (share detected in "
              f"{HORIZON} days)", f"{'shift':>12}{'n':>8}{'shipped':>14}{'previous':>14}"]
    for row in report["detection_delay_days"]:
        cells = "".join(f"{row[m]['median_day']:>7.0f} ({row[m]['detected']:.0%})" for m in ("shipped", "previous"))
        lines.append(f"{row['p0']:>5} → {row['p1']:<4}{row['n']!s:>8}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--days", type=int, default=2000)
    parser.add_argument("--baseline-days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    report = run(Config(series=args.series, days=args.days, baseline_days=args.baseline_days, seed=args.seed))
    print(format_table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
