"""Reading, validating and quarantining the query log.

>>> from rulelife.querylog import iter_log, LogReport
>>> report = LogReport()
>>> for chunk in iter_log("logs/", since=day, until=day, quarantine_dir=Path("quarantine"), report=report):  # doctest: +SKIP
...     ...

Modules: :mod:`.schema` (the contract and dtype coercion), :mod:`.sources`
(finding files, raw chunks of the columns read), :mod:`.filesystems`
(``s3://``, ``gs://``, ``hdfs://`` and fsspec URIs), :mod:`.validate`
(great-expectations, a team's own expectations, and the per-file duplicate check), :mod:`.quarantine` (bad-row files and the
validation cache), :mod:`.report` (:class:`LogReport`), :mod:`.reader`
(:func:`iter_log`, :func:`read_log`).
"""

from rulelife.querylog.reader import coalesce, iter_log, read_log
from rulelife.querylog.report import LogReport
from rulelife.querylog.schema import CONTRACT_DTYPES, OPTIONAL_RUNTIME_COLUMNS, REQUIRED_COLUMNS, RUNTIME_COLUMNS
from rulelife.querylog.validate import ge_batches_run

__all__ = [
    "CONTRACT_DTYPES",
    "OPTIONAL_RUNTIME_COLUMNS",
    "REQUIRED_COLUMNS",
    "RUNTIME_COLUMNS",
    "LogReport",
    "coalesce",
    "ge_batches_run",
    "iter_log",
    "read_log",
]
