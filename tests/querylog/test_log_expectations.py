"""A team's own great-expectations checks, added to the log suite through the rulelife.log_expectations entry points."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.errors import ConfigError, LogError
from rulelife.querylog import LogReport, read_log
from rulelife.serving.bundle import BundleStore

CHECKS = '''
import great_expectations as gx

ex = gx.expectations


def locales_and_channels():
    return [ex.ExpectColumnValuesToMatchRegex(column="locale", regex=r"^[a-z]{2}-[A-Z]{2}$"),
            ex.ExpectColumnValuesToBeInSet(column="channel", value_set=["web", "app"])]


def confident():
    return [ex.ExpectColumnMaxToBeBetween(column="model_confidence", max_value=0.95)]


def not_expectations():
    return ["expect the locale to be sane"]
'''


def install(tmp_path: Path, monkeypatch, entries: dict[str, str]) -> None:
    """A package ``acme_checks`` with a dist-info declaring ``entries`` in the group, put on sys.path."""
    site = tmp_path / "site"
    info = site / "acme_checks-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "acme_checks.py").write_text(CHECKS)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-checks\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = acme_checks:{target}" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[rulelife.log_expectations]\n{lines}\n")
    monkeypatch.syspath_prepend(str(site))


def five_rows() -> pd.DataFrame:
    """Row 2 has a locale that is no tag, row 3 a channel outside web/app; rows 0, 1, 4 pass."""
    return pd.DataFrame({
        "query_id": [f"q{i}" for i in range(5)],
        "ts": pd.Timestamp("2026-03-04", tz="UTC") + pd.to_timedelta(range(5), unit="h"),
        "text": ["where is my order"] * 5,
        "locale": ["en-US", "en-US", "english", "ja-JP", "es-ES"],
        "model_intent": "order_tracking",
        "model_confidence": [0.9, 0.8, 0.7, 0.6, 0.5],
        "channel": ["web", "app", "web", "fax", "web"],
    })


def test_row_expectations_quarantine_the_failing_rows_with_their_reason(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, {"acme": "locales_and_channels"})
    five_rows().to_parquet(tmp_path / "log.parquet", index=False)
    report = LogReport()
    frame = read_log(tmp_path / "log.parquet", quarantine_dir=tmp_path / "q", report=report)
    assert frame["query_id"].tolist() == ["q0", "q1", "q4"]
    assert "channel" not in frame.columns  # read for the check, not handed to a job that did not ask
    assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (5, 3, 2)
    assert dict(report.reasons) == {"acme:expect_column_values_to_match_regex(locale)": 1,
                                    "acme:expect_column_values_to_be_in_set(channel)": 1}
    (quarantine,) = report.quarantine_files
    bad = pq.read_table(quarantine).to_pandas()
    assert bad[["query_id", "_row", "_reason"]].values.tolist() == [
        ["q2", 2, "acme:expect_column_values_to_match_regex(locale)"],
        ["q3", 3, "acme:expect_column_values_to_be_in_set(channel)"]]
    again = LogReport()  # the validation cache knows the team's verdicts
    assert read_log(tmp_path / "log.parquet", quarantine_dir=tmp_path / "q", report=again)["query_id"].tolist() == [
        "q0", "q1", "q4"]
    assert again.files_cached == [str(tmp_path / "log.parquet")] and again.rows_quarantined == 2


def test_without_the_entry_point_the_rows_pass(tmp_path):
    five_rows().to_parquet(tmp_path / "log.parquet", index=False)
    assert len(read_log(tmp_path / "log.parquet")) == 5


def test_an_aggregate_expectation_refuses_the_file_by_name(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, {"acme_conf": "confident"})
    frame = five_rows()
    frame.to_parquet(tmp_path / "ok.parquet", index=False)
    assert len(read_log(tmp_path / "ok.parquet")) == 5  # max 0.9 <= 0.95
    frame.assign(model_confidence=[0.99, 0.8, 0.7, 0.6, 0.5]).to_parquet(tmp_path / "sure.parquet", index=False)
    with pytest.raises(LogError, match=r"sure.parquet: refused by the log expectation "
                                       r"acme_conf:expect_column_max_to_be_between\(model_confidence\) \(observed 0.99"):
        read_log(tmp_path / "sure.parquet")


def test_a_column_the_expectations_name_must_be_in_the_file(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, {"acme": "locales_and_channels"})
    five_rows().drop(columns="channel").to_parquet(tmp_path / "log.parquet", index=False)
    with pytest.raises(LogError, match=r"log.parquet: no column 'channel', which the log expectations of 'acme' check"):
        read_log(tmp_path / "log.parquet")


def test_an_entry_point_giving_no_expectations_is_named(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, {"acme_bad": "not_expectations"})
    five_rows().to_parquet(tmp_path / "log.parquet", index=False)
    with pytest.raises(ConfigError, match=r"log expectation entry point 'acme_bad' \(acme_checks:not_expectations, "
                                          r"group rulelife.log_expectations\) must give great-expectations expectations"):
        read_log(tmp_path / "log.parquet")


def test_the_nightly_exits_1_naming_the_refused_file(tmp_path, monkeypatch, live_workspace):
    install(tmp_path, monkeypatch, {"acme_conf": "confident"})
    day = dt.date(2026, 3, 4)
    bundle = BundleStore(live_workspace.bundle_dir).current()
    version = {r.id: r.version for r in bundle.rules}["order_tracking.where"]
    frame = five_rows().drop(columns="channel").assign(
        model_confidence=0.99, rule_id="order_tracking.where", rule_version=version,
        bundle_version=pd.array([bundle.number] * 5, dtype="Int64"), shadow=pd.array([True] * 5, dtype="boolean"))
    path = live_workspace.log_dir / f"queries-{day}.parquet"
    frame.to_parquet(path, index=False)
    result = CliRunner().invoke(app, ["-w", str(live_workspace.root), "monitor", "nightly", "--date", str(day)])
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())  # the console may wrap a long line
    assert "refused by the log expectation acme_conf:expect_column_max_to_be_between(model_confidence)" in message
    assert path.name in message and "Traceback" not in result.output


def test_the_readme_example_entry_point_is_valid():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert '[project.entry-points."rulelife.log_expectations"]' in readme
    snippet = readme.split("def locale_tags():", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(textwrap.dedent("import great_expectations as gx\ndef locale_tags():" + snippet), namespace)  # noqa: S102
    (expectation,) = namespace["locale_tags"]()
    assert expectation.expectation_type == "expect_column_values_to_match_regex"
