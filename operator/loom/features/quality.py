"""The data-quality gate of a FeatureSet: one streaming pass over the source snapshot (pyarrow
compute per batch, counters only, so memory is bounded by a batch), then a pure
verdict. A failed verdict carries the numbers that failed; materialization writes nothing then.

pyarrow is imported by the profiler's methods, not with the module: the operator imports the
materialization module this one belongs to for names only, and keeps no Arrow in its process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from loom.api.featureset import Quality
from loom.api.meta import parse_duration

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class SnapshotProfile:
    rows: int
    null_counts: dict[str, int]
    newest_event: datetime | None


@dataclass
class Profiler:
    """Accumulates a SnapshotProfile batch by batch, keeping only counters: memory does not grow
    with the snapshot (the entities of the window are counted where they are chosen)."""

    features: Sequence[str]
    timestamp_field: str
    _rows: int = 0
    _nulls: dict[str, int] = field(default_factory=dict)
    _newest: Any = None

    def add(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        self._rows += batch.num_rows
        for name in self.features:
            self._nulls[name] = self._nulls.get(name, 0) + batch.column(name).null_count
        newest = pc.max(batch.column(self.timestamp_field)).as_py()
        if newest is not None and (self._newest is None or newest > self._newest):
            self._newest = newest

    def result(self) -> SnapshotProfile:
        newest = self._newest
        if isinstance(newest, datetime) and newest.tzinfo is None:
            newest = newest.replace(tzinfo=timezone.utc)
        return SnapshotProfile(
            rows=self._rows,
            null_counts={name: self._nulls.get(name, 0) for name in self.features},
            newest_event=newest,
        )

    def watching(self, batches: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """The same batches, each added to the profile as it is read (one pass for gate and write)."""
        import pyarrow as pa

        def added() -> Iterator[pa.RecordBatch]:
            for batch in batches:
                self.add(batch)
                yield batch

        return pa.RecordBatchReader.from_batches(batches.schema, added())


@dataclass(frozen=True)
class Failure:
    check: str  # minRows | maxNullFraction | freshness
    subject: str  # the feature, or the table
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.check} {self.subject}: {self.actual} (expected {self.expected})"


@dataclass(frozen=True)
class QualityReport:
    rows: int
    null_fractions: dict[str, float]
    newest_event: datetime | None
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.passed:
            checked = ", ".join(f"{k} nulls {v:.4f}" for k, v in self.null_fractions.items())
            return f"{self.rows} rows" + (f", {checked}" if checked else "")
        return "; ".join(str(f) for f in self.failures)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "nullFractions": self.null_fractions,
            "newestEvent": self.newest_event.isoformat() if self.newest_event else None,
            "failures": [f.__dict__ for f in self.failures],
        }


def evaluate(snapshot: SnapshotProfile, quality: Quality, now: datetime) -> QualityReport:
    """The verdict on one snapshot; pure, so the thresholds are tested without a lake."""
    failures: list[Failure] = []
    if quality.min_rows is not None and snapshot.rows < quality.min_rows:
        failures.append(Failure("minRows", "table", f">= {quality.min_rows} rows", f"{snapshot.rows} rows"))
    fractions = {
        q.name: (snapshot.null_counts.get(q.name, 0) / snapshot.rows if snapshot.rows else 0.0)
        for q in quality.features
    }
    for q in quality.features:
        if fractions[q.name] > q.max_null_fraction:
            nulls = snapshot.null_counts.get(q.name, 0)
            failures.append(
                Failure(
                    "maxNullFraction",
                    q.name,
                    f"<= {q.max_null_fraction:g}",
                    f"{fractions[q.name]:.4f} null ({nulls} of {snapshot.rows} rows)",
                )
            )
    if quality.freshness is not None:
        limit = parse_duration(quality.freshness)
        newest = snapshot.newest_event
        if newest is None or now - newest > limit:
            age = "no events" if newest is None else f"newest event {newest.isoformat()} is {now - newest} old"
            failures.append(Failure("freshness", "table", f"newest event within {quality.freshness}", age))
    return QualityReport(snapshot.rows, fractions, snapshot.newest_event, tuple(failures))
