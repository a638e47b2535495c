"""The Spark executor of the daily counts (generic Spark helpers: :mod:`rulelife.engines.spark`).

Imports pyspark only inside functions, as every Spark module of rulelife.

The job, for a day or a range::

    spark.read.parquet(files)                  # local paths, s3://, hdfs://, ...
      .where(ts in window or ts is null)       # pushed down to Parquet row groups
      .select(day, needed columns, row checks) # strings only where count_chunk reads them
      .groupBy(all of them).count()            # in the JVM: ~0.2 % of the rows are left,
                                               #   each with its multiplicity n
      .mapInArrow(partial_rows)                # per partition: coerce -> count_chunk(weights=n)
                                               #   per batch, added up; one batch of partials out
      .groupBy(kind, keys...).agg(sum, ...)    # adds the partitions' partials
      .collect()                               # a few thousand rows to the driver

and the driver rebuilds a :class:`~rulelife.monitoring.metrics.MetricCounts`, so
``finalize`` and the metrics writes are exactly the local path's. A row's
weight makes count_chunk count it as n identical rows, so grouping first
changes no count (tests/monitoring/test_metrics.py checks a weighted chunk against its
rows expanded; tests/spark the whole job against the local engine).

Row checks: the reader's per-row checks (null query_id, ts and text, blank
text, confidence outside [0, 1], unknown model_intent) run as Spark column
expressions in the same pass and travel to the workers as one integer, part
of the group key; failing rows are left out of the counts and counted per
reason (weighted) in the LogReport, so a bad row changes no metric on either
engine and is never dropped unseen. What Spark does not do is the per-file
query_id uniqueness check (a shuffle of every id, the costliest step by far
at 10^9 rows) and writing quarantine files: a log read here is expected to
be deduplicated upstream, and the local engine on a day (or the upstream
job's own checks) produces the quarantine files. See docs/spark.md.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from rulelife.engines.spark import ROW_CHECKS, bad_bits, job_conf, log_paths, read_window
from rulelife.monitoring.bundle_intents import BundleIntents, unknown_rules_error
from rulelife.monitoring.metrics import MetricCounts, count_chunk
from rulelife.querylog import LogReport
from rulelife.querylog.report import no_rows_error
from rulelife.querylog.schema import coerce, parse_reason
from rulelife.querylog.sources import describe

__all__ = ["count_spark", "partial_rows"]

_KEYS = ("kind", "date", "rule_id", "rule_version", "locale", "serving", "model_intent", "model_version", "reason")
_SUMS = ("fires", "shadow_n", "agree_n", "safety_fp", "vetoed", "n")
_EXAMPLE = ("ex_query_id", "ex_text", "ex_locale", "ex_model_intent")
_SCHEMA = pa.schema(
    [("kind", pa.string()), ("date", pa.date32())]
    + [(k, pa.string()) for k in _KEYS[2:]]
    + [(k, pa.int64()) for k in _SUMS]
    + [(k, pa.string()) for k in _EXAMPLE]
)
_DDL = ", ".join(f"{f.name} {'date' if f.type == pa.date32() else 'bigint' if f.type == pa.int64() else 'string'}"
                 for f in _SCHEMA)


def _grouped(frame, F, known: frozenset[str] | None, intents: Mapping[str, str]):
    """The rows shipped to the workers: what count_chunk reads, grouped in the JVM, with a count ``n``.

    count_chunk reads per row only the UTC day of ts and the locale (traffic),
    rule_id, rule_version, shadow and model_intent of rule hits, and query_id
    and text of the labelled hits that disagree with the rule's intent (its
    examples). Everything else is nulled and identical rows are grouped, so
    the Python workers get one row per (day, locale, rule version, shadow,
    model intent, check bits) plus one per disagreeing shadow query, with
    its multiplicity as count_chunk's weight: 6,913 rows for the 4.2M of
    benchmarks/bench_engines (0.16 %), where every row used to cross (the
    Arrow transfer into Python cost as much CPU a row as the whole local
    count). The checks run here and travel as one integer that is part of
    the group key.
    """
    hit = F.col("rule_id").isNotNull()
    tagged = F.col("shadow_rules").isNotNull() & (F.trim(F.col("shadow_rules")) != "")
    labelled = hit & F.col("shadow") & F.col("model_intent").isNotNull()
    # count_chunk's own test (an unknown rule disagrees), only to choose the
    # rows that keep their id and text: count_chunk still counts every row,
    # and the equality tests would see an example gone missing.
    intent = F.element_at(F.create_map(*[F.lit(v) for pair in sorted(intents.items()) for v in pair]), F.col("rule_id"))
    example = labelled & ~F.coalesce(F.col("model_intent") == intent, F.lit(False))
    # A labelled row with shadow rules keeps its id and text too: which of its
    # shadow rules it disagrees with is count_chunk's to say (few rows do).
    example = example | (tagged & F.col("model_intent").isNotNull())
    bad = bad_bits(F, known)
    # The session time zone is UTC for the job (JOB_CONF): ts truncated to
    # its UTC day, which is all count_chunk takes from it.
    return frame.select(
        F.date_trunc("day", F.col("ts")).alias("ts"), F.col("locale"), F.col("rule_id"),
        F.col("rule_version"), F.col("shadow"), F.when(tagged, F.col("shadow_rules")).alias("shadow_rules"),
        # The lexicon_veto cell is part of the key (count_chunk counts each
        # rule it names); it is parsed, and a malformed one quarantined, on
        # the worker by the reader's own parser (see partial_rows).
        F.when(F.trim(F.col("lexicon_veto")) != "", F.col("lexicon_veto")).alias("lexicon_veto"),
        F.when(hit | tagged, F.col("model_intent")).alias("model_intent"),
        F.when(example, F.col("query_id")).alias("query_id"),
        F.when(example, F.col("text")).alias("text"),
        # Every row keeps its model version: count_chunk counts the rows of each per day (a few values a day).
        F.col("model_version"),
        bad.alias("bad"),
    ).groupBy("ts", "locale", "rule_id", "rule_version", "shadow", "shadow_rules", "lexicon_veto", "model_intent",
              "query_id", "text", "model_version", "bad").agg(F.count(F.lit(1)).alias("n"))


def partial_rows(batches: Iterator[pa.RecordBatch], intents: Mapping[str, str], safety: Sequence[str]
                 ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: one partition's grouped rows (see _grouped) -> one batch of partial count rows.

    Each row stands for ``n`` log rows: count_chunk weighs it so, and the
    rows read, quarantined and bad by reason are sums of ``n`` too. The
    batches are added up here, so a partition ships its totals, not one set
    of rows per batch. Unknown rule ids come back as rows, so the driver
    raises the local engine's error instead of a worker traceback.
    """
    counts = MetricCounts()
    rows, quarantined, unknown = 0, 0, set()
    reasons: Counter[str] = Counter()
    for batch in batches:
        table = pa.Table.from_batches([batch])
        bad = table.column("bad").to_numpy()
        weights = table.column("n").to_numpy()
        frame, failures = coerce(table.drop_columns(["bad", "n"]), Path("<spark partition>"))
        rows += int(weights.sum())
        veto_bad = failures.get(parse_reason("lexicon_veto"))
        if veto_bad is not None:  # a malformed lexicon_veto cell, as the local reader quarantines it
            reasons[parse_reason("lexicon_veto")] += int(weights[veto_bad].sum())
            bad = np.where(veto_bad & (bad == 0), 1 << len(ROW_CHECKS), bad)
        if bad.any():
            quarantined += int(weights[bad != 0].sum())
            for bit, (reason, _) in enumerate(ROW_CHECKS):  # (the lexicon_veto bit is counted above)
                hits = int(weights[((bad >> bit) & 1) == 1].sum())
                if hits:
                    reasons[reason] += hits
            frame, weights = frame[bad == 0].reset_index(drop=True), weights[bad == 0]
        missing = set(frame["rule_id"].dropna().unique()) - set(intents)
        if missing:
            unknown |= missing
            continue
        if len(frame):
            counts = counts + count_chunk(frame, intents, safety, weights=weights)
    yield _to_batch(counts, rows, quarantined, reasons, unknown)


def _to_batch(counts: MetricCounts, rows: int, quarantined: int, reasons: Counter, unknown: set[str]) -> pa.RecordBatch:
    parts = [
        counts.hits.assign(kind="hit"),
        counts.classes.assign(kind="class"),
        counts.traffic.rename(columns={"traffic": "n"}).assign(kind="traffic"),
        counts.models.assign(kind="model"),
        pd.DataFrame({"kind": "read", "reason": ["rows", "quarantined"], "n": [rows, quarantined]}),
        pd.DataFrame({"kind": "bad", "reason": list(reasons), "n": list(reasons.values())}),
        pd.DataFrame({"kind": "unknown", "rule_id": sorted(unknown), "n": 1}),
        pd.DataFrame([{"kind": "example", "rule_id": rule_id, "ex_query_id": e["query_id"], "ex_text": e["text"],
                       "ex_locale": e["locale"], "ex_model_intent": e["model_intent"]}
                      for rule_id, found in counts.examples.items() for e in found],
                     columns=["kind", "rule_id", *_EXAMPLE]),
    ]
    frame = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    columns = {}
    for field in _SCHEMA:
        values = frame[field.name] if field.name in frame else pd.Series([None] * len(frame))
        if field.type == pa.date32():
            values = pd.to_datetime(values).dt.date.astype(object).where(values.notna(), None)
        elif field.type == pa.int64():
            values = values.fillna(0).astype("int64")
        else:
            values = values.astype(object).where(values.notna(), None)
        columns[field.name] = pa.array(values.tolist(), type=field.type)
    return pa.RecordBatch.from_pydict(columns, schema=_SCHEMA)


def count_spark(spark, workspace, since, until, source, report: LogReport) -> tuple[MetricCounts, list[int]]:
    """The ``spark`` engine on session ``spark`` (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the pandas-version check (see local_session)
        from pyspark.sql import functions as F

    settings = workspace.settings
    paths = log_paths(source, since, until, workspace.quarantine_dir, report)
    with job_conf(spark):
        frame = read_window(spark, F, paths, since, until, describe(source), report)
        # The rule -> intent map is a few KB: found from the distinct bundle
        # numbers (one pruned column), shipped in the closure, never a matcher.
        numbers = [r[0] for r in frame.select("bundle_version").where(F.col("bundle_version").isNotNull())
                   .distinct().collect()]
        bundles = BundleIntents(workspace.bundle_dir)
        bundles.add(numbers)
        intents, safety = dict(bundles.intents), list(settings.safety_intents)
        known = frozenset(settings.intents) if settings.intents else None

        def partial(batches):
            return partial_rows(batches, intents, safety)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the pandas-version check again (see local_session)
            parts = _grouped(frame, F, known, intents).mapInArrow(partial, _DDL)
        example = F.when(F.col("kind") == "example", F.struct(*[F.col(c) for c in _EXAMPLE]))
        # A few thousand summed rows: collect() them plainly (toPandas would
        # add nothing but pyspark's pandas-version checks).
        rows = parts.groupBy(*_KEYS).agg(
            *[F.sum(c).alias(c) for c in _SUMS],
            F.slice(F.array_sort(F.collect_list(example)), 1, 3).alias("examples"),
        ).collect()
        summed = pd.DataFrame([r.asDict() for r in rows], columns=[*_KEYS, *_SUMS, "examples"])
    unknown = sorted(summed.loc[summed["kind"] == "unknown", "rule_id"])
    if unknown:
        raise unknown_rules_error(f"rule ids in the log that no bundle of the day holds: {unknown}")
    _fill_report(report, summed)
    if report.rows_valid == 0:
        raise no_rows_error(describe(source), report, since, until)
    return _to_counts(summed), sorted(bundles.numbers)


def _fill_report(report: LogReport, summed: pd.DataFrame) -> None:
    read = dict(zip(summed.loc[summed["kind"] == "read", "reason"], summed.loc[summed["kind"] == "read", "n"]))
    report.rows_read += int(read.get("rows", 0))
    report.rows_quarantined += int(read.get("quarantined", 0))
    report.rows_valid += int(read.get("rows", 0)) - int(read.get("quarantined", 0))
    bad = summed[summed["kind"] == "bad"]
    report.reasons.update({str(k): int(v) for k, v in zip(bad["reason"], bad["n"])})


def _to_counts(summed: pd.DataFrame) -> MetricCounts:
    """The MetricCounts the local engine would have added up, from the summed rows."""
    empty = MetricCounts()
    keys = ["date", "rule_id", "rule_version", "locale", "serving"]

    def part(kind: str, columns: list[str], by: list[str], template: pd.DataFrame) -> pd.DataFrame:
        rows = summed[summed["kind"] == kind]
        if rows.empty:
            return template
        out = rows[columns].copy()
        out["date"] = pd.to_datetime(out["date"]).astype("datetime64[us]")
        for column in columns:
            if column in _SUMS:
                out[column] = out[column].astype("int64")
            elif column != "date":
                out[column] = out[column].astype(str)
        return out.sort_values(by, ignore_index=True)

    hits = part("hit", [*keys, "fires", "shadow_n", "agree_n", "safety_fp", "vetoed"], keys, empty.hits)
    classes = part("class", [*keys, "model_intent", "n"], [*keys, "model_intent"], empty.classes)
    traffic = part("traffic", ["date", "locale", "n"], ["date", "locale"], empty.traffic)
    traffic = traffic.rename(columns={"n": "traffic"})
    models = part("model", ["date", "model_version", "n"], ["date", "model_version"], empty.models)
    examples: dict[str, list[dict]] = {}
    for row in summed[summed["kind"] == "example"].itertuples(index=False):
        found: dict[str, dict] = {}
        for item in row.examples:
            item = item.asDict() if hasattr(item, "asDict") else dict(item)
            found.setdefault(item["ex_query_id"], {"query_id": item["ex_query_id"], "text": item["ex_text"],
                                                   "locale": item["ex_locale"],
                                                   "model_intent": item["ex_model_intent"]})
        examples[str(row.rule_id)] = [found[q] for q in sorted(found)][:3]
    return MetricCounts(hits=hits, classes=classes, traffic=traffic, examples=examples, models=models)
