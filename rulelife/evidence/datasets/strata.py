"""How queries are grouped for sampling and slicing.

Length is measured in normalised characters, not words, so that one bucket
definition serves both space-delimited locales and Japanese.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

__all__ = ["confidence_band", "length_bucket", "sample_keys"]

LENGTH_EDGES = (20, 60)  # short <= 20 < medium <= 60 < long
CONFIDENCE_EDGES = (0.5, 0.8)  # low < 0.5 <= medium < 0.8 <= high


def length_bucket(texts: pd.Series) -> pd.Series:
    """short / medium / long by character length."""
    lengths = texts.astype("string").str.len().fillna(0).to_numpy()
    short, medium = LENGTH_EDGES
    labels = np.where(lengths <= short, "short", np.where(lengths <= medium, "medium", "long"))
    return pd.Series(labels, index=texts.index, dtype="string")


def confidence_band(confidence: pd.Series) -> pd.Series:
    """low / medium / high model confidence; NA where the model was not called."""
    values = confidence.astype("Float64")
    low, high = CONFIDENCE_EDGES
    out = pd.Series(pd.NA, index=confidence.index, dtype="string")
    present = values.notna()
    v = values[present].to_numpy(dtype=float)
    out[present] = np.where(v < low, "low", np.where(v < high, "medium", "high"))
    return out


def sample_keys(query_ids: pd.Series, salt: str) -> np.ndarray:
    """A uniform pseudo-random uint64 per query id, fixed for a given salt.

    Keeping the rows with the smallest keys is a simple random sample that is
    reproducible and mergeable: the k smallest of a union are the k smallest
    of the per-partition k smallest, so partitions can be sampled apart.
    """
    key = hashlib.sha256(salt.encode()).hexdigest()[:16]
    return pd.util.hash_pandas_object(query_ids.astype("string"), index=False, hash_key=key).to_numpy()
