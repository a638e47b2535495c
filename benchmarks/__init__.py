"""Benchmarks of the rulelife spine (normalise → match → classify, and bundle load).

Run ``python -m benchmarks.bench_spine --help``; ``benchmarks/README.md``
explains every figure.
"""
