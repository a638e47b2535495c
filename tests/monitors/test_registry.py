"""The shipped monitors are found by name, and each one's doctest holds."""

import doctest
from datetime import date

import pytest

import monitors
import monitors._series
import monitors.agreement_floor
import monitors.coverage_drift
import monitors.cusum
import monitors.expiry
import monitors.safety_fp
from rulelife.config import Settings
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import METRIC_COLUMNS, Monitor, empty_history, load_monitor
from rulelife.plugins import MONITORS, load_plugin


@pytest.mark.parametrize("name", Settings().enabled_monitors)
def test_every_default_monitor_loads_by_name(name):
    cls = load_plugin(MONITORS, name)
    assert cls.name == name and cls.__name__ in monitors.__all__ and issubclass(cls, Monitor)
    monitor = load_monitor(name, Settings())
    assert monitor.check(empty_history(), monitors._series.demo_context(date(2026, 1, 1))) == []


def test_a_table_sets_parameters_and_the_rest_keep_their_defaults():
    settings = Settings(monitors={"coverage_drift": {"tolerance": 0.3}})
    monitor = load_monitor("coverage_drift", settings)
    assert (monitor.tolerance, monitor.window_days) == (0.3, 90)
    with pytest.raises(ConfigError, match=r"\[monitors\.expiry\]: unknown key 'grace'; expiry takes grace_days"):
        load_monitor("expiry", Settings(monitors={"expiry": {"grace": 3}}))


@pytest.mark.parametrize("module", [monitors._series, monitors.agreement_floor, monitors.coverage_drift,
                                    monitors.cusum, monitors.expiry, monitors.safety_fp])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_demo_history_has_the_contract_dtypes():
    frame = monitors._series.demo_history([1, 2], [2, 2])
    assert list(frame.columns) == list(METRIC_COLUMNS)
    assert frame.dtypes.astype(str).to_dict() == empty_history().dtypes.astype(str).to_dict()
