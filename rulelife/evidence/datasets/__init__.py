"""Per-rule evaluation datasets: built from the log, stored as snapshots."""

from rulelife.evidence.datasets.builder import DATASET_COLUMNS, BuiltDataset, DatasetBuilder
from rulelife.evidence.datasets.snapshot import DatasetSnapshot, NoDataset, latest_dataset, load_rows, save_dataset

__all__ = [
    "DATASET_COLUMNS",
    "BuiltDataset",
    "DatasetBuilder",
    "DatasetSnapshot",
    "NoDataset",
    "latest_dataset",
    "load_rows",
    "save_dataset",
]
