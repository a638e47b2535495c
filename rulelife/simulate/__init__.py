"""Simulated query logs for the shipped example deployment (an online manga store).

The project's embedded default traffic: a seeded generator of realistic chatbot
queries in en-US, ja-JP and es-ES, labelled by a calibrated reference model,
with named drift scenarios injected on known days and their ground truth
recorded, so datasets, evaluation, monitors and miners can be exercised and
scored end to end without production data.

>>> import datetime as dt
>>> from rulelife.simulate import default_scenarios, simulate_traffic
>>> start = dt.date(2026, 11, 1)
>>> frame = simulate_traffic(start=start, days=20, queries_per_day=500, seed=1,
...                          scenarios=default_scenarios(start, 20))
>>> frame["ts"].dt.date.nunique()
20
"""

from rulelife.simulate.model import calibration_error
from rulelife.simulate.scenarios import Scenario, default_scenarios, write_ground_truth
from rulelife.simulate.traffic import LOG_COLUMNS, LOG_DTYPES, simulate_traffic, write_log

__all__ = [
    "LOG_COLUMNS",
    "LOG_DTYPES",
    "Scenario",
    "calibration_error",
    "default_scenarios",
    "simulate_traffic",
    "write_ground_truth",
    "write_log",
]
