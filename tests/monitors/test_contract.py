"""The monitor contract and its settings: one declared base, one [monitors.<name>] table per monitor.

The previous release wrote flat monitor keys (``floor_days = 3``, ``monitors =
[...]``) into every rulelife.toml; they are still read for this release, with
a warning naming the table that replaces them.
"""

from __future__ import annotations

import tomllib
import warnings

import pandas as pd
import pytest

from rulelife.config import CONFIG_FILE, Settings, Workspace
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Finding, Monitor, load_monitor, load_monitors, require_monitors

PREVIOUS_RELEASE = """\
db_url = "sqlite:///rulelife.db"
monitors = ["agreement_floor", "expiry"]
monitor_min_shadow = 10
floor_days = 2
cusum_k = 0.25
expiry_grace_days = 7
"""


class Quiet(Monitor):
    """A team's monitor: a name and a check, every other hook inherited."""

    name = "quiet"

    def __init__(self, *, level: int = 3):
        self.level = level

    def check(self, history: pd.DataFrame, context) -> list[Finding]:
        return []


def test_a_monitor_needs_only_a_name_and_a_check():
    monitor = Quiet.from_settings({"level": 5})
    assert monitor.level == 5 and Quiet.parameters() == {"level": 3}
    assert monitor.statistics(pd.DataFrame(), None) is None and monitor.lookback_days() is None
    with pytest.raises(ConfigError, match=r"\[monitors\.quiet\]: unknown key 'levl'; quiet takes level"):
        Quiet.from_settings({"levl": 5})

    class NoCheck(Monitor):
        name = "no_check"

    with pytest.raises(TypeError, match="abstract method 'check'|abstract method check"):
        NoCheck()


def test_an_object_that_is_not_a_monitor_is_refused():
    class DuckTyped:
        name = "duck"

        def check(self, history, context):
            return []

    assert require_monitors([Quiet()])
    with pytest.raises(ConfigError, match=r"is not a Monitor; derive its class from rulelife\.monitoring\.contract"):
        require_monitors([Quiet(), DuckTyped()])


def test_the_previous_releases_flat_keys_are_read_with_a_warning(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(PREVIOUS_RELEASE)
    with pytest.warns(FutureWarning) as caught:
        workspace = Workspace.load(tmp_path)
    messages = [str(w.message) for w in caught]
    assert all(m.startswith(str(tmp_path / CONFIG_FILE)) for m in messages)
    assert any("'floor_days' is deprecated" in m and "'days' in the [monitors.agreement_floor] table" in m
               for m in messages)
    assert any("'monitors' as a list of names is deprecated" in m and "'enabled_monitors'" in m for m in messages)
    settings = workspace.settings
    assert settings.enabled_monitors == ["agreement_floor", "expiry"]
    assert settings.monitors == {"agreement_cusum": {"min_shadow": 10, "k": 0.25},
                                 "agreement_floor": {"min_shadow": 10, "days": 2}, "expiry": {"grace_days": 7}}
    floor, expiry = load_monitors(settings.enabled_monitors, settings)
    assert (floor.days, floor.min_shadow, expiry.grace_days) == (2, 10, 7)


def test_a_deprecated_environment_variable_still_counts(tmp_path, monkeypatch):
    Workspace.create(tmp_path)
    monkeypatch.setenv("RULELIFE_COVERAGE_TOLERANCE", "0.3")
    with pytest.warns(FutureWarning, match=r"'coverage_tolerance' is deprecated.*\[monitors\.coverage_drift\]"):
        workspace = Workspace.load(tmp_path)
    assert load_monitor("coverage_drift", workspace.settings).tolerance == 0.3


def test_a_deprecated_key_that_disagrees_with_its_table_is_refused(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("floor_days = 2\n[monitors.agreement_floor]\ndays = 4\n")
    with pytest.raises(ConfigError, match=r"'floor_days = 2' \(deprecated\) and 'days = 4' in "
                                          r"\[monitors\.agreement_floor\] disagree; keep the table's key only"):
        Workspace.load(tmp_path)


def test_a_table_must_name_an_installed_monitor(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("[monitors.coverage_drfit]\ntolerance = 0.3\n")
    with pytest.raises(ConfigError, match=r"\[monitors\.coverage_drfit\] names no installed monitor \(installed: "
                                          r"agreement_cusum, agreement_floor, coverage_drift, expiry, safety_fp\)"):
        Workspace.load(tmp_path)


def test_a_new_workspace_has_no_deprecated_key_and_shows_each_monitors_parameters(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        workspace = Workspace.create(tmp_path / "a", settings={"monitors": {"expiry": {"grace_days": 3}}})
    text = workspace.config_file.read_text()
    assert "[monitors.expiry]\ngrace_days = 3\n" in text
    # The others, commented out, with the defaults of their signatures.
    assert "# [monitors.coverage_drift]\n# window_days = 90\n# min_days = 14\n# tolerance = 0.2\n# min_z = 4.0\n" in text
    assert "\n# floor =\n" in text  # unset by default: the gate's agreement_floor
    assert tomllib.loads(text)["monitors"] == {"expiry": {"grace_days": 3}}
    assert load_monitor("expiry", workspace.settings).grace_days == 3
    assert Settings().monitors == {} and load_monitor("expiry", Settings()).grace_days == 7

