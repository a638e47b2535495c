"""Seeded query logs for the example manga store, written in the query-log contract.

Each UTC day is generated from its own random stream, seeded by ``(seed,
date)``: a day's rows do not depend on ``start`` or ``days``, and a scenario
changes nothing before its ``start_day``. All random draws are vectorised per
day; the only per-row Python is one ``str.format`` and its noise (case,
punctuation, one typo).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rulelife._files import atomic_path
from rulelife.querylog.schema import CONTRACT_DTYPES, REQUIRED_COLUMNS, RUNTIME_COLUMNS
from rulelife.simulate import catalog
from rulelife.simulate.catalog import BASE_SET, CODES, INTENTS, LOCALES, TITLES
from rulelife.simulate.model import TYPO_CLARITY_STEP, predict, rescale_confidence
from rulelife.simulate.scenarios import (
    Scenario,
    confidence_scale_on,
    intent_shares_on,
    locale_shares_on,
    model_on,
    rephrasings_on,
)

__all__ = ["LOG_COLUMNS", "LOG_DTYPES", "simulate_traffic", "write_log"]

# The query-log contract, in column order. ``true_intent`` is simulator-only
# ground truth (what the customer meant); a production log has no such
# column. The runtime columns (rule_id .. shadow) are left null: a replay
# through a bundle fills them.
LOG_DTYPES: dict[str, str] = {
    **{c: t for c, t in CONTRACT_DTYPES.items() if c in REQUIRED_COLUMNS},
    "true_intent": "string",
    **{c: t for c, t in CONTRACT_DTYPES.items() if c in RUNTIME_COLUMNS},
    # The model that labelled the row (model-1, then a model_retrain scenario's version).
    "model_version": "string",
}
LOG_COLUMNS = tuple(LOG_DTYPES)

# Day-to-day volume noise (log-normal sigma): a few percent, as in a store
# without a campaign running.
_VOLUME_NOISE = 0.04
# Share of queries typed all in lower case / all in capitals (capitals are
# commoner when a customer is angry).
_LOWER_SHARE = 0.5
_UPPER_SHARE = {"default": 0.02, "escalation": 0.15}
# Cumulative thresholds of the punctuation noise: strip the final mark,
# then add "??", "!!" or "..." (each drawn on the same uniform).
_PUNCT_THRESHOLDS = np.array([0.25, 0.33, 0.37, 0.40])
_SUFFIXES = {"ja-JP": ("", "？？", "！", "…"), "default": ("", "??", "!!", "...")}
# Per-query typo rate by locale (IME input makes Japanese typos rarer).
_TYPO_RATE = np.array([0.04 if loc != "ja-JP" else 0.02 for loc in LOCALES])
_MAX_VOLUME = 60  # highest volume number in a {vol} slot
_RELABEL_STREAM = 7919  # the third seed word of the retrain relabel's generator


def simulate_traffic(
    *,
    start: dt.date,
    days: int,
    queries_per_day: int,
    seed: int = 0,
    scenarios: Sequence[Scenario] | None = None,
) -> pd.DataFrame:
    """Simulate the store's query log for ``days`` UTC days from ``start``.

    Parameters
    ----------
    start
        First UTC day.
    days
        Number of days (at least 1).
    queries_per_day
        Mean daily volume; each day varies with the weekday and a few percent of noise.
    seed
        Same seed, same frame.
    scenarios
        Drifts to inject (see :func:`rulelife.simulate.default_scenarios`); None is no drift.

    Returns
    -------
    A frame with the columns and dtypes of :data:`LOG_DTYPES`, sorted by ``ts``.

    Examples
    --------
    >>> frame = simulate_traffic(start=dt.date(2026, 11, 2), days=1, queries_per_day=2000, seed=7)
    >>> len(frame)  # a Monday: a little above the mean
    2192
    >>> frame.loc[3, ["query_id", "locale", "text", "model_intent"]].tolist()
    ['q-20261102-000003', 'en-US', 'Can you track my order #814250', 'order_tracking']
    """
    _check_arguments(start, days, queries_per_day, seed)
    scenarios = _check_scenarios(scenarios)
    parts = [
        _simulate_day(start + dt.timedelta(days=offset), queries_per_day, seed, scenarios)
        for offset in range(days)
    ]
    columns = {name: _concat([part[name] for part in parts]) for name in parts[0]}
    return _to_frame(columns)


def _concat(chunks: list) -> np.ndarray | pa.ChunkedArray:
    if isinstance(chunks[0], pa.Array):
        return pa.chunked_array(chunks)
    return np.concatenate(chunks)


def _check_arguments(start: object, days: object, queries_per_day: object, seed: object) -> None:
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise ValueError(f"start must be a datetime.date (a UTC day), got {start!r}")
    for name, value, low in (("days", days, 1), ("queries_per_day", queries_per_day, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")


def _check_scenarios(scenarios: Sequence[Scenario] | None) -> list[Scenario]:
    scenarios = list(scenarios or ())
    for s in scenarios:
        if not isinstance(s, Scenario):
            raise ValueError(f"scenarios must be Scenario objects, got {s!r}; build them with Scenario(...)")
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must be unique, got {names}")
    return scenarios


def _pick(shares: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category index for each uniform in ``u`` given the category shares."""
    return np.minimum(np.searchsorted(np.cumsum(shares), u, side="right"), len(shares) - 1)


def _group_matrix(set_name: str, locales: Sequence[str], intents: Sequence[str]) -> np.ndarray:
    """``m[locale, intent]`` = template group of that phrasing set, or -1."""
    groups = catalog.template_table().groups
    matrix = np.full((len(LOCALES), len(INTENTS)), -1, dtype=np.int64)
    for loc in locales:
        for intent in intents:
            matrix[LOCALES.index(loc), INTENTS.index(intent)] = groups[(set_name, loc, intent)]
    return matrix


def _simulate_day(day: dt.date, queries_per_day: int, seed: int, scenarios: list[Scenario]) -> dict:
    # Every draw below happens whatever the scenarios, so a scenario only
    # changes the values it is about, and only from its start day.
    rng = np.random.default_rng([seed, day.toordinal()])
    factor = catalog.WEEKDAY_FACTORS[day.weekday()] * np.exp(rng.normal(0.0, _VOLUME_NOISE))
    n = max(1, round(queries_per_day * factor))
    table = catalog.template_table()

    locale = _pick(locale_shares_on(day, scenarios), rng.random(n))
    intent = _pick(intent_shares_on(day, scenarios), rng.random(n))
    group = _group_matrix(BASE_SET, LOCALES, INTENTS)[locale, intent]
    rephrase_u = rng.random(n)
    for s in rephrasings_on(day, scenarios):
        alt = _group_matrix(s.phrasings, s.locales, s.intents)[locale, intent]
        use = (alt >= 0) & (rephrase_u < s.share)
        group[use] = alt[use]
    template = table.pick(group, rng.random(n))

    slots = _draw_slots(rng, locale)
    case, punct, typo_kind, typo_at = _draw_noise(rng, locale, intent)

    clarity = np.minimum(table.clarities[template] + TYPO_CLARITY_STEP * (typo_kind >= 0), 2)
    model_intent, confidence = predict(rng, intent, clarity, table.confusions[template])
    scale = confidence_scale_on(day, scenarios)
    if scale != 1.0:
        confidence = rescale_confidence(confidence, scale)
    version, relabels = model_on(day, scenarios)
    if relabels:
        # Its own stream, so a relabel changes no other draw of the day.
        relabel_u = np.random.default_rng([seed, day.toordinal(), _RELABEL_STREAM]).random(n)
        for s in relabels:
            moved = (model_intent == INTENTS.index(s.relabel_from)) & (relabel_u < s.relabel_share)
            model_intent = np.where(moved, INTENTS.index(s.relabel_to), model_intent).astype(model_intent.dtype)

    ts_us = _draw_times(rng, locale)
    order = np.argsort(ts_us, kind="stable")

    columns = {
        "ts": np.datetime64(day, "us") + ts_us[order].astype("timedelta64[us]"),
        "locale": locale[order],
        "intent": intent[order],
        "model_intent": model_intent[order],
        "model_confidence": confidence[order],
    }
    noise = (case[order], punct[order], typo_kind[order], typo_at[order])
    columns["text"] = _render(template[order], {k: v[order] for k, v in slots.items()}, locale[order], noise)
    columns["query_id"] = _query_ids(day, n)
    columns["model_version"] = np.full(n, version, dtype=object)
    return columns


_DATES_PER_LOCALE = len(catalog.dates_for(LOCALES[0]))


def _draw_slots(rng: np.random.Generator, locale: np.ndarray) -> dict[str, np.ndarray]:
    """Slot values for each row: indices into the titles/dates/codes, or the numbers themselves."""
    n = len(locale)
    title_count = np.array([len(TITLES[loc]) for loc in LOCALES])
    title_offset = np.concatenate([[0], np.cumsum(title_count)[:-1]])
    return {
        "title": title_offset[locale] + (rng.random(n) * title_count[locale]).astype(np.int64),
        "date": locale * _DATES_PER_LOCALE + rng.integers(0, _DATES_PER_LOCALE, n),
        "order": rng.integers(100_000, 1_000_000, n),
        # Volume numbers skew low: most series in a store are short.
        "vol": 1 + (rng.random(n) ** 2 * _MAX_VOLUME).astype(np.int64),
        "days": rng.integers(2, 22, n),
        "code": rng.integers(0, len(CODES), n),
    }


def _draw_noise(rng: np.random.Generator, locale: np.ndarray, intent: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row: case (0 as written, 1 lower, 2 upper), punctuation (-1 none, else
    :data:`_PUNCT_THRESHOLDS` slot), typo kind (-1 none, 0 swap, 1 drop, 2 double) and where."""
    n = len(locale)
    upper_share = np.where(intent == INTENTS.index("escalation"), _UPPER_SHARE["escalation"], _UPPER_SHARE["default"])
    case_u = rng.random(n)
    case = np.where(case_u < _LOWER_SHARE, 1, np.where(case_u > 1 - upper_share, 2, 0))
    punct = np.searchsorted(_PUNCT_THRESHOLDS, rng.random(n), side="right")
    punct[punct == len(_PUNCT_THRESHOLDS)] = -1
    typo = rng.random(n) < _TYPO_RATE[locale]
    typo_kind = np.where(typo, rng.integers(0, 3, n), -1)
    return case, punct, typo_kind, rng.random(n)


def _draw_times(rng: np.random.Generator, locale: np.ndarray) -> np.ndarray:
    """Microseconds since UTC midnight: a local-time daily profile shifted by each locale's offset."""
    n = len(locale)
    hour = _pick(np.array(catalog.LOCAL_HOUR_WEIGHTS) / sum(catalog.LOCAL_HOUR_WEIGHTS), rng.random(n))
    local_us = hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    offset_us = np.array(catalog.UTC_OFFSET_HOURS, dtype=np.int64)[locale] * 3_600_000_000
    # Wrapping keeps each row inside its UTC day; the day's volume is what it is.
    return (local_us - offset_us) % 86_400_000_000


def _query_ids(day: dt.date, n: int) -> pa.Array:
    """``q-YYYYMMDD-000000`` onwards, in ``ts`` order (wider than 6 digits past a million a day)."""
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), 6, "0")
    return pc.binary_join_element_wise(f"q-{day:%Y%m%d}-", numbers, "")


def _render(template: np.ndarray, slots: dict[str, np.ndarray], locale: np.ndarray, noise: tuple) -> np.ndarray:
    """Fill each row's template and add its case, punctuation and typo noise."""
    texts = catalog.template_table().texts
    titles = [t for loc in LOCALES for t in TITLES[loc]]
    dates = [d for loc in LOCALES for d in catalog.dates_for(loc)]
    suffixes = [_SUFFIXES.get(loc, _SUFFIXES["default"]) for loc in LOCALES]
    case, punct, typo, typo_at = (a.tolist() for a in noise)
    out = []
    append = out.append
    rows = zip(
        template.tolist(), slots["title"].tolist(), slots["date"].tolist(), slots["order"].tolist(),
        slots["vol"].tolist(), slots["days"].tolist(), slots["code"].tolist(), locale.tolist(),
        case, punct, typo, typo_at,
    )  # fmt: skip
    for t, ti, di, order, vol, days, code, loc, c, p, ty, at in rows:
        text = texts[t].format(title=titles[ti], date=dates[di], order=order, vol=vol, days=days, code=CODES[code])
        if p >= 0:
            text = text.rstrip("?.!？！。 ") + suffixes[loc][p]
        if c == 1:
            text = text.lower()
        elif c == 2:
            text = text.upper()
        if ty >= 0 and len(text) > 3:
            i = int(at * (len(text) - 1))
            if ty == 0:  # swap two neighbours
                text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            elif ty == 1:  # drop one
                text = text[:i] + text[i + 1 :]
            else:  # double one
                text = text[:i] + text[i] + text[i:]
        append(text)
    return pa.array(out, pa.string())


def _to_frame(columns: dict) -> pd.DataFrame:
    n = len(columns["query_id"])
    locales = pa.array(LOCALES, pa.string())
    intents = pa.array(INTENTS, pa.string())
    data = {
        "query_id": columns["query_id"],
        "ts": pd.DatetimeIndex(columns["ts"]).tz_localize("UTC").array,
        "text": columns["text"],
        "locale": locales.take(columns["locale"]),
        "model_intent": intents.take(columns["model_intent"]),
        "model_confidence": columns["model_confidence"],
        "true_intent": intents.take(columns["intent"]),
        # Filled by a replay through a bundle, never by the simulator.
        "rule_id": pa.nulls(n, pa.string()),
        "rule_version": pa.nulls(n, pa.string()),
        "bundle_version": pa.nulls(n, pa.int64()),
        "shadow": pa.nulls(n, pa.bool_()),
        "model_version": columns["model_version"],
    }
    return pd.DataFrame({name: pd.array(values, dtype=LOG_DTYPES[name]) for name, values in data.items()})


def write_log(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``frame`` as one Parquet file per UTC day, ``out_dir/queries-YYYY-MM-DD.parquet``.

    Each file is written to a temporary name and renamed, so a reader never
    sees half a day; re-running overwrites the same files.

    Returns
    -------
    The paths written, in day order.
    """
    if "ts" not in frame.columns or not isinstance(frame["ts"].dtype, pd.DatetimeTZDtype):
        raise ValueError("frame needs a tz-aware 'ts' column; build it with simulate_traffic()")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    days = frame["ts"].dt.tz_convert("UTC").dt.normalize()
    paths = []
    for day, part in frame.groupby(days, sort=True):
        path = out_dir / f"queries-{day:%Y-%m-%d}.parquet"
        with atomic_path(path) as tmp:
            # Microsecond timestamps on every pandas (2.x writes nanoseconds, which Spark cannot read).
            part.reset_index(drop=True).to_parquet(tmp, index=False, coerce_timestamps="us",
                                                   allow_truncated_timestamps=True)
        paths.append(path)
    return paths
