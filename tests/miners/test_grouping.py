import doctest

import pytest

import miners.grouping
from miners.grouping import choose_excludes, excludable


@pytest.mark.parametrize("token, substring, expected", [
    ("refund", False, True), ("ref", False, True), ("re", False, False), ("123456", False, False),
    ("a1", True, True), ("12", True, False), ("返品", True, True), ("x", True, True),
])
def test_excludable(token, substring, expected):
    assert excludable(token, substring) is expected


def test_choose_excludes_ignores_tokens_that_are_not_excludable():
    # "123456" would remove both wrong fires, but an order number is no exclude; "refund" removes one.
    by_intent = {"order_tracking": 100, "return_request": 2}
    tokens = {("123456", "return_request"): 2, ("refund", "return_request"): 2, ("refund", "order_tracking"): 1}
    assert choose_excludes("order_tracking", by_intent, tokens, pattern="package", substring=False, safety=(),
                           min_precision=0.99, max_loss=0.1) == ("refund",)
    del tokens[("refund", "return_request")], tokens[("refund", "order_tracking")]
    assert choose_excludes("order_tracking", by_intent, tokens, pattern="package", substring=False, safety=(),
                           min_precision=0.99, max_loss=0.1) is None


def test_doctests():
    assert doctest.testmod(miners.grouping).failed == 0
