"""A training set for the model's next version that keeps the easy cases.

Retrained on logged traffic alone, the model sees only what the rules leave:
the easy queries vanish from its training set, cycle after cycle, until it
cannot carry the system if the bundle is withdrawn. The mix puts
rule-answered queries back in, so that they make up ``share`` of the export:

- every residual query (rate ``residual_rate``) with its best label;
- rule-answered queries sampled at one rate for every (rule, locale)
  stratum, so each rule keeps its share of traffic (proportional allocation);
- a row's label is, in this order, ``true_intent`` ("true"), the model's
  answer ("model" on the residual, "shadow" on a rule's shadow sample), or
  the rule's intent as a proxy ("rule"); a safety intent is never taken from
  a rule: such a row stays out unless the model or a person labelled it.

Sampling is a hash of (seed, query id) against the rate: the same log, seed
and rates give the same rows on every engine and chunking, and memory stays
flat (each chunk's rows are written to a part file as they are chosen). The
manifest's content hash is order-free (a sum of row digests), for the same
reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rulelife._files import atomic_write
from rulelife.errors import ConfigError

__all__ = ["EXPORT_COLUMNS", "MixCounts", "MixPart", "MixSample", "label_rows", "mix_rates", "sample_key"]

EXPORT_COLUMNS = ["query_id", "ts", "text", "locale", "label", "label_source", "rule_id"]
RESIDUAL = "<residual>"  # the stratum of the queries no rule answered
_MASK = (1 << 64) - 1


def sample_key(query_ids: pd.Series, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per query id, fixed by ``seed`` (the same id, the same number)."""
    key = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()  # 16 characters, as pandas wants
    hashed = pd.util.hash_pandas_object(query_ids.astype("string"), index=False, hash_key=key).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def label_rows(chunk: pd.DataFrame, rule_intents: Mapping[str, str], safety: Sequence[str]) -> pd.DataFrame:
    """Each row's stratum, label and label source; ``label`` NA where the row may not be used."""
    answered = chunk["rule_id"].notna()
    rule_intent = chunk["rule_id"].map(dict(rule_intents)).astype("string")
    truth = chunk["true_intent"] if "true_intent" in chunk else pd.Series(pd.NA, index=chunk.index, dtype="string")
    model = chunk["model_intent"]
    source = pd.Series(pd.NA, index=chunk.index, dtype="string")
    label = pd.Series(pd.NA, index=chunk.index, dtype="string")
    from_rule = answered & truth.isna() & model.isna() & rule_intent.notna() & ~rule_intent.isin(list(safety))
    for mask, value, name in ((from_rule, rule_intent, "rule"), (answered & model.notna(), model, "shadow"),
                              (~answered & model.notna(), model, "model"), (truth.notna(), truth, "true")):
        mask = mask.fillna(False).to_numpy(dtype=bool)  # later wins: truth over the model over the rule
        label[mask], source[mask] = value[mask], name
    stratum = chunk["rule_id"].astype("string").fillna(RESIDUAL)
    return pd.DataFrame({"stratum": stratum, "locale": chunk["locale"], "label": label, "label_source": source,
                         "answered": answered.to_numpy(dtype=bool)})


@dataclass
class MixCounts:
    """First pass: usable rows per (stratum, locale), and rule rows left out for safety."""

    usable: Counter = field(default_factory=Counter)
    safety_skipped: Counter = field(default_factory=Counter)  # (rule id, locale) -> rows with no usable label
    bundles: frozenset = frozenset()

    def __add__(self, other: MixCounts) -> MixCounts:
        return MixCounts(self.usable + other.usable, self.safety_skipped + other.safety_skipped,
                         self.bundles | other.bundles)


class MixCount:
    """Step of the first pass (picklable)."""

    def __init__(self, rule_intents: Mapping[str, str], safety: Sequence[str]):
        self.rule_intents, self.safety = dict(rule_intents), tuple(safety)

    def __call__(self, chunk: pd.DataFrame) -> MixCounts:
        chunk = chunk.reset_index(drop=True)
        rows = label_rows(chunk, self.rule_intents, self.safety)
        usable = rows["label"].notna()
        keys = zip(rows["stratum"][usable], rows["locale"][usable])
        skipped = rows["answered"] & ~usable
        bundles = frozenset(int(b) for b in chunk["bundle_version"].dropna().unique())
        return MixCounts(Counter(keys), Counter(zip(rows["stratum"][skipped], rows["locale"][skipped])), bundles)


def mix_rates(counts: MixCounts, share: float, residual_rate: float) -> tuple[float, float]:
    """The sampling rates (residual, rule-answered) that make rule rows ``share`` of the mix.

    >>> mix_rates(MixCounts(Counter({("<residual>", "en"): 700, ("a", "en"): 1000})), 0.3, 1.0)
    (1.0, 0.3)
    """
    residual = sum(n for (stratum, _), n in counts.usable.items() if stratum == RESIDUAL)
    answered = sum(counts.usable.values()) - residual
    # a / (kept residual + a) = share, so a = share / (1 - share) * kept residual.
    wanted = share / (1.0 - share) * residual * residual_rate if share < 1.0 else float(answered)
    return residual_rate, min(1.0, wanted / answered) if answered else 0.0


@dataclass
class MixPart:
    """What a chunk wrote: rows per (source, stratum, locale), the order-free digest, the part files."""

    rows: Counter = field(default_factory=Counter)
    digest: int = 0  # sum of row digests mod 2**64
    files: tuple[str, ...] = ()

    def __add__(self, other: MixPart) -> MixPart:
        return MixPart(self.rows + other.rows, (self.digest + other.digest) & _MASK, self.files + other.files)


class MixSample:
    """Step of the second pass: choose, label and write one chunk's rows (picklable)."""

    def __init__(self, rule_intents: Mapping[str, str], safety: Sequence[str], rates: tuple[float, float],
                 seed: int, out: Path):
        self.rule_intents, self.safety = dict(rule_intents), tuple(safety)
        self.rates, self.seed, self.out = rates, seed, str(out)

    def __call__(self, chunk: pd.DataFrame) -> MixPart:
        chunk = chunk.reset_index(drop=True)
        rows = label_rows(chunk, self.rule_intents, self.safety)
        rate = np.where(rows["answered"].to_numpy(), self.rates[1], self.rates[0])
        keep = rows["label"].notna().to_numpy(dtype=bool) & (sample_key(chunk["query_id"], self.seed) < rate)
        if not keep.any():
            return MixPart()
        out = pd.DataFrame({
            "query_id": chunk["query_id"][keep].astype("string"), "ts": chunk["ts"][keep],
            "text": chunk["text"][keep], "locale": chunk["locale"][keep], "label": rows["label"][keep],
            "label_source": rows["label_source"][keep], "rule_id": chunk["rule_id"][keep].astype("string"),
        }).reset_index(drop=True)
        digests = pd.util.hash_pandas_object(out.drop(columns=["ts"]), index=False).to_numpy()
        digest = int(digests.sum(dtype=np.uint64))  # wraps mod 2**64: an order-free multiset digest
        name = f"part-{hashlib.blake2b(digests.tobytes(), digest_size=8).hexdigest()}.parquet"
        out.to_parquet(Path(self.out) / name, index=False)
        counted = Counter(zip(out["label_source"], rows["stratum"][keep], out["locale"]))
        return MixPart(counted, digest, (name,))


def content_hash(part: MixPart) -> str:
    total = sum(part.rows.values())
    return hashlib.sha256(f"rows={total};digest={part.digest:016x}".encode()).hexdigest()


def write_manifest(folder: Path, part: MixPart, counts: MixCounts, options: dict) -> dict:
    """The manifest: options, rates, counts per source and stratum, and the content hash."""
    by_source: Counter = Counter()
    by_stratum: dict[str, dict[str, int]] = {}
    for (source, stratum, locale), n in sorted(part.rows.items()):
        by_source[source] += n
        by_stratum.setdefault(f"{stratum}|{locale}", {}).setdefault(source, 0)
        by_stratum[f"{stratum}|{locale}"][source] += n
    manifest = {
        **options,
        "bundles_in_log": sorted(counts.bundles),
        "rows": sum(part.rows.values()),
        "rows_by_source": dict(sorted(by_source.items())),
        "rows_by_stratum": by_stratum,
        "usable_by_stratum": {f"{s}|{loc}": n for (s, loc), n in sorted(counts.usable.items())},
        "safety_rows_left_out": {f"{s}|{loc}": n for (s, loc), n in sorted(counts.safety_skipped.items())},
        "files": sorted(part.files),
        "content_hash": content_hash(part),
    }
    atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return manifest


def prepare_folder(out: Path) -> Path:
    """A fresh temporary folder beside ``out``; ``out`` may not exist or must hold an earlier export."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file())):
        raise ConfigError(f"{out} exists and is not an earlier training-mix export (no manifest.json); "
                          "choose an empty or new folder with --out")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # what a crashed run left
    staging.mkdir(parents=True)
    return staging


def replace_folder(staging: Path, out: Path) -> None:
    """Put the finished export in place of ``out`` (a reader sees the old or the new export, whole)."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
