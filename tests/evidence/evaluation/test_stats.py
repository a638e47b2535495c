"""Hand-computable checks of the gate's statistics."""

from __future__ import annotations

import math

import pytest

from rulelife.evidence.evaluation.stats import rule_of_three, samples_to_settle, stratified_agreement, wilson_interval


def test_wilson_matches_the_textbook_formula():
    # p = 0.9, n = 100, z = 1.95996: center = (0.9 + z²/200) / (1 + z²/100), etc.
    z = 1.959963984540054
    p, n = 0.9, 100
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(center - half)
    assert high == pytest.approx(center + half)
    assert (round(low, 4), round(high, 4)) == (0.8256, 0.9448)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and round(low, 4) == 0.9287
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


def test_rule_of_three():
    assert rule_of_three(300) == 0.01
    assert rule_of_three(1000) == 0.003
    assert rule_of_three(0) is None


def test_samples_to_settle_either_way():
    assert samples_to_settle(990, 1000) == 0  # interval (0.982, 0.995) already above 0.95
    more = samples_to_settle(97, 100)
    assert more == 357
    assert wilson_interval(0.97 * (100 + more), 100 + more)[0] > 0.95
    assert wilson_interval(0.97 * (100 + more - 1), 100 + more - 1)[0] <= 0.95
    below = samples_to_settle(93, 100)  # 0.93 observed: how many to show it is below
    assert below > 0 and wilson_interval(0.93 * (100 + below), 100 + below)[1] < 0.95
    assert samples_to_settle(95, 100) is None  # exactly on the floor: never settles


def test_stratified_estimate_weights_by_population_not_sample():
    # Stratum a: 900 in traffic, 100 sampled, 90 agree; b: 100 in traffic, 50 sampled, all agree.
    est = stratified_agreement({"a": 90, "b": 50}, {"a": 100, "b": 50}, {"a": 900, "b": 100})
    assert est.estimate == pytest.approx(0.9 * 0.9 + 0.1 * 1.0)  # 0.91, not the pooled 140/150 = 0.933
    # Var = 0.9² · 0.9 · 0.1 / 100 = 0.000729 → n_eff = 0.91 · 0.09 / 0.000729
    assert est.effective_n == pytest.approx(0.91 * 0.09 / 0.000729)
    assert est.n == 150


def test_proportional_sample_equals_simple_estimate():
    est = stratified_agreement({"a": 90, "b": 10}, {"a": 90, "b": 10}, {"a": 900, "b": 100})
    assert est.estimate == pytest.approx(1.0 * 0.9 + 1.0 * 0.1)
    est = stratified_agreement({"a": 81, "b": 9}, {"a": 90, "b": 10}, {"a": 900, "b": 100})
    assert est.estimate == pytest.approx(0.9)
    low, high = wilson_interval(90, 100)
    assert (est.low, est.high) == pytest.approx((low, high), abs=2e-3)


def test_empty_sample_is_unknown():
    est = stratified_agreement({}, {}, {})
    assert math.isnan(est.estimate) and (est.low, est.high) == (0.0, 1.0)
