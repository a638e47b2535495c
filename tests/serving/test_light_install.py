"""The README's serving install: the runtime and the log writer work with only their own dependencies.

A fresh venv gets ``pip install --no-deps rulelife pyahocorasick pyarrow numpy``
(nothing else: no pandas, SQLAlchemy, scikit-learn or great-expectations),
then loads a bundle published by the full install, answers, and writes a log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rulelife.rules.definition import Rule
from rulelife.serving.publish import publish_rules

ROOT = Path(__file__).resolve().parents[2]

SERVICE = textwrap.dedent("""
    import json, sys
    from rulelife import QueryLogWriter, RuleClassifier

    clf = RuleClassifier.from_store(sys.argv[1])
    decision = clf.decide("where is my order?", locale="en-US", query_id="q1")
    with QueryLogWriter(sys.argv[2], classifier=clf) as log:
        log.write(decision, query_id="q1", text="where is my order?", locale="en-US")
    heavy = [m for m in ("pandas", "sqlalchemy", "sklearn", "great_expectations", "pydantic", "typer")
             if m in sys.modules]
    print(json.dumps({"rule": decision.match.rule_id, "bundle": decision.bundle_version, "heavy": heavy}))
""")


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("light") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "--no-deps", str(ROOT), "pyahocorasick", "pyarrow", "numpy"],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_runtime_serves_and_logs_with_its_own_dependencies_only(light_venv, tmp_path):
    rule = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"], owner="tests")
    published = publish_rules(tmp_path / "bundles", [rule])
    run = subprocess.run([str(light_venv / "bin" / "python"), "-c", SERVICE, str(tmp_path / "bundles"),
                          str(tmp_path / "logs")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer == {"rule": "order_tracking.where", "bundle": published.bundle.number, "heavy": []}
    assert len(list((tmp_path / "logs").rglob("*.parquet"))) == 1
    packages = subprocess.run([str(light_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                              capture_output=True, text=True, check=True).stdout
    assert {p["name"].lower() for p in json.loads(packages)} <= {"pip", "setuptools", "rulelife", "pyahocorasick",
                                                                "pyarrow", "numpy"}
