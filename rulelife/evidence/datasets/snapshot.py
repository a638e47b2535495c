"""Dataset snapshots: rows in a Parquet file named by content hash, metadata
in the registry. A snapshot is immutable; building again makes a new one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlmodel import select

from rulelife._files import atomic_path
from rulelife.errors import NoDataset
from rulelife.evidence.datasets.builder import BuiltDataset
from rulelife.store import DatasetRow, Store, utcnow

__all__ = ["DatasetSnapshot", "NoDataset", "latest_dataset", "load_rows", "save_dataset"]



@dataclass(frozen=True)
class DatasetSnapshot:
    content_hash: str
    rule_id: str
    rule_version: str
    built_at: datetime
    built_by: str
    rows: int
    fires: int
    path: Path
    meta: dict

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or utcnow()) - self.built_at

    def is_stale(self, max_age_days: int, now: datetime | None = None) -> bool:
        return self.age(now) > timedelta(days=max_age_days)

    @property
    def counts(self) -> dict[str, int]:
        return self.meta.get("counts", {})

    def to_dict(self) -> dict:
        return {
            "content_hash": self.content_hash,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "built_at": self.built_at.isoformat(),
            "built_by": self.built_by,
            "rows": self.rows,
            "fires": self.fires,
            "path": str(self.path),
            **{k: v for k, v in self.meta.items() if k not in ("population", "allocation")},
        }


def _snapshot(row: DatasetRow) -> DatasetSnapshot:
    return DatasetSnapshot(
        content_hash=row.content_hash,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        built_at=row.built_at,
        built_by=row.built_by,
        rows=row.rows,
        fires=row.fires,
        path=Path(row.path),
        meta=json.loads(row.meta),
    )


def save_dataset(
    store: Store, built: BuiltDataset, folder: Path, *, actor: str, now: datetime | None = None
) -> DatasetSnapshot:
    """Write the rows (atomically, by content hash) and register the snapshot.

    Building the same rows again re-registers nothing new: the existing
    snapshot's build time is refreshed, since the data was re-checked.
    ``now`` is the build time to record (default: the clock).
    """
    now = now or utcnow()
    folder = Path(folder) / built.rule.id
    path = folder / f"{built.content_hash}.parquet"
    if not path.exists():
        with atomic_path(path) as tmp:
            built.rows.to_parquet(tmp, index=False)
    meta = {**built.meta, "counts": built.counts}
    window = [built.meta.get("window_start"), built.meta.get("window_end")]
    start, end = (pd.Timestamp(w).to_pydatetime() if w else None for w in window)
    with store.session() as session:
        row = session.get(DatasetRow, built.content_hash)
        if row is None:
            row = DatasetRow(content_hash=built.content_hash, rule_id=built.rule.id, rule_version=built.rule.version,
                             built_at=now, built_by=actor, window_start=start, window_end=end,
                             rows=len(built.rows), fires=int(built.meta["fires"]), path=str(path),
                             meta=json.dumps(meta, sort_keys=True, default=str))
        else:
            row.built_at = now
            row.built_by = actor
        session.add(row)
        session.flush()
        return _snapshot(row)


def latest_dataset(store: Store, rule_id: str, rule_version: str | None = None) -> DatasetSnapshot:
    """The newest snapshot for ``rule_id`` (at ``rule_version`` when given)."""
    with store.session() as session:
        query = select(DatasetRow).where(DatasetRow.rule_id == rule_id)
        if rule_version is not None:
            query = query.where(DatasetRow.rule_version == rule_version)
        row = session.exec(query.order_by(DatasetRow.built_at.desc(), DatasetRow.content_hash)).first()
    if row is None:
        at = f" at version {rule_version}" if rule_version else ""
        raise NoDataset(f"no dataset for {rule_id}{at}; build one with `rulelife dataset build {rule_id}`")
    return _snapshot(row)


def load_rows(snapshot: DatasetSnapshot) -> pd.DataFrame:
    if not snapshot.path.exists():
        raise NoDataset(
            f"dataset file {snapshot.path} is missing; rebuild with `rulelife dataset build {snapshot.rule_id}`"
        )
    return pd.read_parquet(snapshot.path)
