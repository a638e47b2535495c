"""Where a batch count runs: generic per-partition folds over the query log.

A count is a pure function of one chunk of the log whose results merge;
:func:`rulelife.engines.fold.fold_log` applies it to every chunk, wherever the
chunks are:

- ``local``: one process streams the log chunk by chunk (memory: one chunk);
  validation with great-expectations, quarantine files, validation cache.
- ``local-pool``: the same per group of files, one process a core.
- ``spark``: ``mapInArrow`` per partition, on any cluster (see
  :mod:`rulelife.engines.spark_fold` and docs/spark.md).

The engines agree row for row; the choice is only about where the work runs.
Importing this package never imports pyspark.
"""

from __future__ import annotations

__all__ = ["local_session"]


def local_session(cores: int | None = None, **options):
    """A local SparkSession for tests and the CLI (see :func:`rulelife.engines.spark.local_session`)."""
    from rulelife.engines.spark import local_session as make

    return make(cores, **options)
