"""Condition bookkeeping: transition times move only on flips; unchanged status is not rewritten."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from loom.api.datalake import DataLakeStatus
from loom.domain.outcome import Observed, Outcome
from loom.services.status import merge_conditions, next_status

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=5)


def outcome(tables: bool | None, reason: str = "Creating", **fields: object) -> Outcome:
    return Outcome((Observed("CatalogReady", True, "Connected"), Observed("TablesReady", tables, reason)), fields)


def test_ready_summarises_first_blocker() -> None:
    assert outcome(False).ready == Observed("Ready", False, "Creating", "")
    assert outcome(None).ready.status is None
    assert outcome(True, "Created").ready == Observed("Ready", True, "Ready", "all conditions are satisfied")


def test_explicit_ready_wins() -> None:
    out = Outcome((Observed("Ready", False, "InvalidSpec", "spec.x: bad"),))
    assert out.ready.reason == "InvalidSpec"


def test_first_status_has_all_conditions_and_generation() -> None:
    status, transitions = next_status(DataLakeStatus, None, outcome(False, table_count=0), 4, T0)
    assert status is not None
    assert status["observedGeneration"] == 4
    assert [c["type"] for c in status["conditions"]] == ["CatalogReady", "TablesReady", "Ready"]
    assert all(c["observedGeneration"] == 4 for c in status["conditions"])
    assert status["tableCount"] == 0
    assert len(transitions) == 3


def test_same_observation_writes_nothing() -> None:
    status, _ = next_status(DataLakeStatus, None, outcome(False), 4, T0)
    again, transitions = next_status(DataLakeStatus, status, outcome(False), 4, T1)
    assert again is None
    assert transitions == []


def test_transition_time_moves_only_on_flip() -> None:
    status, _ = next_status(DataLakeStatus, None, outcome(False), 1, T0)
    reason_only, transitions = next_status(DataLakeStatus, status, outcome(False, "StillCreating"), 1, T1)
    tables = next(c for c in reason_only["conditions"] if c["type"] == "TablesReady")
    assert tables["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert {t.condition.type for t in transitions} == {"TablesReady", "Ready"}

    flipped, _ = next_status(DataLakeStatus, reason_only, outcome(True, "Created"), 1, T1)
    tables = next(c for c in flipped["conditions"] if c["type"] == "TablesReady")
    catalog = next(c for c in flipped["conditions"] if c["type"] == "CatalogReady")
    assert tables["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert catalog["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_new_generation_is_a_change_even_with_same_conditions() -> None:
    status, _ = next_status(DataLakeStatus, None, outcome(False), 1, T0)
    bumped, transitions = next_status(DataLakeStatus, status, outcome(False), 2, T1)
    assert bumped["observedGeneration"] == 2
    assert transitions == []


def test_foreign_conditions_are_kept() -> None:
    current = {"conditions": [{"type": "Audited", "status": "True", "reason": "Ok", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    status, _ = next_status(DataLakeStatus, current, outcome(False), 1, T0)
    assert "Audited" in [c["type"] for c in status["conditions"]]


def test_merge_keeps_order_of_observation() -> None:
    merged, _ = merge_conditions([], [Observed("B", True, "x"), Observed("A", True, "y")], 1, T0)
    assert [c.type for c in merged] == ["B", "A"]


def test_a_field_that_went_away_is_written_as_null_so_the_merge_patch_removes_it() -> None:
    from loom.api.trainingjob import Progress, TrainingJobStatus

    first, _ = next_status(TrainingJobStatus, None, Outcome((), {"progress": Progress(epoch=8), "current_run": "a"}),
                           1, T0)
    assert first is not None and first["progress"] == {"epoch": 8, "metrics": {}}
    second, _ = next_status(TrainingJobStatus, first, Outcome((), {"progress": None, "current_run": "b"}), 1, T1)
    assert second is not None and second["progress"] is None and second["currentRun"] == "b"
    unchanged, _ = next_status(TrainingJobStatus, {**second, "progress": None}, Outcome((), {"progress": None,
                                                                                           "current_run": "b"}), 1, T1)
    assert unchanged is None
