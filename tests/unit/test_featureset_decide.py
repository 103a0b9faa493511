"""The FeatureSet decision as tables of (spec, observation, now) -> (conditions, actions, when to come
back). `now` is always a fixed time: nothing here reads the clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from loom.api.datalake import DataLakeSpec, TableStatus
from loom.api.featureset import FeatureSetSpec, FeatureSetStatus, MaterializationFailure
from loom.builders.materialize import Target, run_name
from loom.domain.materialization import MaterializeRequest
from loom.domain.outcome import Observed
from loom.domain.workloads import EXIT_INPUT_ERROR, OwnerRef, Phase, WorkloadStatus
from loom.drivers.feast_registry import RegisteredView
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_schema import LakeTable
from loom.services.featureset import failures, feature_view_definition
from loom.services.featureset.actions import ApplyDefinition, DeleteRun, SubmitRun
from loom.services.featureset.decide import decide
from loom.services.featureset.observe import LakeObject, Observation, Unavailable, lake_object

UTC = timezone.utc
NOW = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
NAME, NAMESPACE = "user-features", "ml"
REGISTRY = "sqlite:////var/lib/loom/feast/registry.db"
SETTINGS = StoreSettings("loom_ml", REGISTRY, OnlineKind.REDIS, "redis:6379")
LAKE_DOC: dict[str, Any] = {
    "catalog": {"type": "sql", "uri": "sqlite:////var/lib/lake/catalog.db", "warehouse": "file:///var/lib/lake/wh"},
    "namespace": "movielens",
    "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]},
               {"name": "ratings", "columns": [{"name": "userId", "type": "long"}]}],
}
LAKE = DataLakeSpec.model_validate(LAKE_DOC)
SPEC_DOC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT64"}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"}],
}
COLUMNS = {"userId": "long", "ratingCount": "long", "meanRating": "double", "eventTimestamp": "timestamptz",
           "updatedAt": "timestamptz", "epoch": "long"}


def spec(**changes: Any) -> FeatureSetSpec:
    doc = {**SPEC_DOC, **changes}
    for key in ("snapshotId", "timestampField", "createdTimestampField"):
        if key in changes:
            doc["source"] = {**SPEC_DOC["source"], key: doc.pop(key)}
    return FeatureSetSpec.model_validate(doc)


VERSION = feature_view_definition(spec(), LAKE, NAMESPACE, NAME, REGISTRY).version


def table(snapshot: int | None = 12, schema_id: int = 1, columns: dict[str, str] | None = None,
          current: int | None = None) -> LakeTable:
    return LakeTable("movielens.user_features", current if current is not None else snapshot, snapshot, schema_id,
                     columns or COLUMNS)


def lake(**changes: Any) -> LakeObject:
    base = LakeObject(LAKE, True, TableStatus(name="user_features", current_snapshot_id=12, schema_id=1),
                      True, "namespace movielens in sql catalog")
    return replace(base, **changes)


def done(snapshot: int = 12, version: str = VERSION, time: str = "2025-06-01T12:10:00+00:00") -> dict[str, Any]:
    return {"version": version, "snapshot": snapshot, "time": time, "rows": 547, "durationSeconds": 2.5,
            "onlineRows": 547, "quality": "minRows 547 >= 100"}


def rejected(snapshot: int = 12, time: str = "2025-06-01T12:20:00+00:00") -> dict[str, Any]:
    return {"version": VERSION, "snapshot": snapshot, "time": time, "failures": "maxNullFraction meanRating 0.4"}


def name(snapshot: int = 12, previous: int | None = None, tick: datetime | None = None, attempt: int = 0) -> str:
    return run_name(NAME, Target(VERSION, snapshot, previous, tick, attempt))


def run(run_name: str, phase: Phase, message: str = "", finished: datetime | None = None) -> WorkloadStatus:
    """A run as an executor reports it; a failure whose message is an input error exits as one."""
    code = None if phase in (Phase.PENDING, Phase.RUNNING) else int(phase is Phase.FAILED)
    if message.startswith("input error:"):
        code = EXIT_INPUT_ERROR
    return WorkloadStatus(run_name, phase, message, finished_at=finished, exit_code=code)


FAILED_AT = datetime(2025, 6, 1, 12, 20, tzinfo=UTC)


def failure(transient: bool, attempts: int = 1, generation: int = 3, snapshot: int = 12, schema_id: int = 1,
            run_name: str | None = None) -> FeatureSetStatus:
    return FeatureSetStatus(last_failure=MaterializationFailure(
        run=run_name or name(attempt=attempts - 1), time=FAILED_AT, generation=generation, snapshot_id=snapshot,
        schema_id=schema_id, feature_view_version=VERSION, transient=transient, attempts=attempts))


def observation(**changes: Any) -> Observation:
    base = Observation(
        owner=OwnerRef("loom.dev/v1alpha1", "FeatureSet", NAME, "uid-1"), namespace=NAMESPACE, generation=3,
        retry_seconds=15.0, settings=SETTINGS, status=FeatureSetStatus(), lake=lake(), table=table(),
        registry=RegisteredView(f"{NAMESPACE}/{NAME}", VERSION), records={}, runs={},
    )
    return replace(base, **changes)


@dataclass(frozen=True)
class Case:
    id: str
    observed: Observation
    conditions: list[tuple[str, bool | None, str]]
    actions: list[str] = field(default_factory=list)  # "apply", "submit <name>", "delete <name>"
    requeue_at: datetime | None = None
    retry_after: float | None = None
    spec: FeatureSetSpec = field(default_factory=spec)
    now: datetime = NOW


SOURCE_OK = ("SourceReady", True, "SnapshotAvailable")
APPLIED = ("RegistryReady", True, "Applied")
SERVED = [SOURCE_OK, APPLIED, ("Materialized", True, "Materialized"), ("DataQuality", True, "Passed")]
FIRST_RUN = [SOURCE_OK, APPLIED, ("Materialized", None, "Materializing"), ("DataQuality", None, "NotChecked")]
SERVING_AND_RUNNING = [SOURCE_OK, APPLIED, ("Materialized", True, "Materializing"), ("DataQuality", True, "Passed")]
FAILED = [SOURCE_OK, APPLIED, ("Materialized", False, "MaterializationFailed"), ("DataQuality", None, "NotChecked")]
CONNECTION_ERROR = "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused."
VALUE_ERROR = "input error: builtins.ValueError: Could not find column ratingCount"
HOURLY = {"schedule": "@hourly"}

SOURCE_CASES = [
    Case("the DataLake does not exist", observation(lake=None), [("SourceReady", False, "DataLakeNotFound")]),
    Case("the DataLake cannot be read", observation(lake=Unavailable("connection refused")),
         [("SourceReady", False, "DataLakeUnavailable")], retry_after=15.0),
    Case("the DataLake's spec is invalid", observation(lake=lake(spec=None)), [("SourceReady", False, "DataLakeInvalid")]),
    Case("the table is not declared", observation(lake=lake(declared=False)), [("SourceReady", False, "TableNotFound")]),
    Case("the lake's catalog is not ready", observation(lake=lake(catalog_ready=False)),
         [("SourceReady", False, "CatalogNotReady")]),
    Case("the table is not created yet", observation(lake=lake(entry=None)), [("SourceReady", False, "TableNotReady")]),
    Case("the table is not created yet (no schema)", observation(lake=lake(entry=TableStatus(name="user_features"))),
         [("SourceReady", False, "TableNotReady")]),
    Case("the lake table cannot be read", observation(table=Unavailable("database is locked")),
         [("SourceReady", False, "LakeUnavailable")], retry_after=15.0),
    Case("the table is gone from the catalog", observation(table=None), [("SourceReady", False, "TableNotReady")]),
    Case("the table holds no data", observation(table=table(snapshot=None)), [("SourceReady", False, "NoSnapshot")]),
    Case("the pinned snapshot is unknown", observation(table=table(snapshot=None, current=12)),
         [("SourceReady", False, "SnapshotNotFound")], spec=spec(snapshotId=7)),
]
SCHEMA_CASES = [
    Case("a String feature over a long column", observation(),
         [SOURCE_OK, ("RegistryReady", False, "SchemaMismatch")],
         spec=spec(features=[{"name": "ratingCount", "dtype": "String"}])),
    Case("a long event-time column", observation(), [SOURCE_OK, ("RegistryReady", False, "SchemaMismatch")],
         spec=spec(timestampField="epoch")),
    Case("a missing created-timestamp column", observation(), [SOURCE_OK, ("RegistryReady", False, "SchemaMismatch")],
         spec=spec(createdTimestampField="createdAt")),
    Case("a missing feature column", observation(), [SOURCE_OK, ("RegistryReady", False, "SchemaMismatch")],
         spec=spec(features=[{"name": "lastRating", "dtype": "Float64"}])),
    Case("a pinned snapshot from before the column existed",
         observation(table=table(snapshot=7, schema_id=0, columns={"userId": "long", "eventTimestamp": "timestamptz",
                                                                   "ratingCount": "long"})),
         [("SourceReady", True, "SnapshotAvailable"), ("RegistryReady", False, "SchemaMismatch")],
         spec=spec(snapshotId=7)),
]
REGISTRY_CASES = [
    Case("the registry cannot be reached", observation(registry=Unavailable("could not connect")),
         [SOURCE_OK, ("RegistryReady", False, "RegistryUnavailable")], retry_after=15.0),
    Case("the view belongs to another FeatureSet", observation(registry=RegisteredView("other/user-features", "x")),
         [SOURCE_OK, ("RegistryReady", False, "NameConflict")]),
    Case("the registry has no view yet", observation(registry=None), FIRST_RUN, ["apply", f"submit {name()}"]),
    Case("the registry holds an older version", observation(registry=RegisteredView(f"{NAMESPACE}/{NAME}", "old"),
                                                            records={"materialized": done()}), SERVED, ["apply"]),
    Case("the records cannot be read", observation(records=Unavailable("could not connect")),
         [SOURCE_OK, ("RegistryReady", False, "RegistryUnavailable")], retry_after=15.0),
    Case("the executor cannot be asked", observation(runs=Unavailable("forbidden"), registry=None),
         [SOURCE_OK, APPLIED, ("Materialized", None, "ExecutorUnavailable")], ["apply"], retry_after=15.0),
]
MATERIALIZE_CASES = [
    Case("nothing materialized yet: a full run", observation(), FIRST_RUN, [f"submit {name()}"]),
    Case("the snapshot is materialized", observation(records={"materialized": done()}), SERVED),
    Case("a new snapshot: an incremental run", observation(records={"materialized": done(snapshot=11)}),
         SERVING_AND_RUNNING, [f"submit {name(previous=11)}"]),
    Case("a new definition: a full run", observation(records={"materialized": done(version="old")}),
         SERVING_AND_RUNNING, [f"submit {name()}"]),
    Case("the run is going", observation(runs={name(): (run(name(), Phase.RUNNING),)}), FIRST_RUN),
    Case("a run for an earlier snapshot is going: one at a time",
         observation(records={"materialized": done(snapshot=10)},
                     runs={name(11, previous=10): (run(name(11, previous=10), Phase.RUNNING),)}),
         SERVING_AND_RUNNING),
    Case("the quality gate refused the snapshot",
         observation(records={"materialized": done(snapshot=11), "rejected": rejected()}),
         [SOURCE_OK, APPLIED, ("DataQuality", False, "QualityCheckFailed"), ("Materialized", False, "QualityCheckFailed")]),
    Case("the run's quality gate refused the snapshot: not a failure to retry",
         observation(records={"rejected": rejected()},
                     runs={name(): (run(name(), Phase.FAILED, "quality gate rejected snapshot 12"),)}),
         [SOURCE_OK, APPLIED, ("DataQuality", False, "QualityCheckFailed"), ("Materialized", False, "QualityCheckFailed")]),
    Case("the run that materialized what is served is kept",
         observation(records={"materialized": done()}, runs={name(): (run(name(), Phase.SUCCEEDED),)}), SERVED),
    Case("a new run replaces the finished runs of earlier inputs",
         observation(records={"materialized": done(snapshot=11)},
                     runs={name(11): (run(name(11), Phase.SUCCEEDED),),
                           "user-features-materialize-0ld": (run("user-features-materialize-0ld", Phase.FAILED),)}),
         SERVING_AND_RUNNING, [f"submit {name(previous=11)}", f"delete {name(11)}", "delete user-features-materialize-0ld"]),
    Case("the failed run of a retried input stays for its log",
         observation(status=failure(transient=True), runs={name(): (run(name(), Phase.FAILED, CONNECTION_ERROR),)}),
         FIRST_RUN, [f"submit {name(attempt=1)}"]),
    Case("suspended: a new snapshot is left alone", observation(records={"materialized": done(snapshot=11)}),
         [SOURCE_OK, APPLIED, ("Materialized", True, "Suspended"), ("DataQuality", True, "Passed")],
         spec=spec(materialization={"suspend": True, **HOURLY})),
    Case("suspended before anything was materialized", observation(),
         [SOURCE_OK, APPLIED, ("Materialized", False, "Suspended"), ("DataQuality", None, "NotChecked")],
         spec=spec(materialization={"suspend": True})),
]
FAILURE_CASES = [
    Case("a run fails on its input: recorded, not retried",
         observation(runs={name(): (run(name(), Phase.FAILED, VALUE_ERROR, FAILED_AT),)}), FAILED),
    Case("a run fails on an unreachable store: retried after the backoff",
         observation(runs={name(): (run(name(), Phase.FAILED, CONNECTION_ERROR, FAILED_AT),)}), FAILED,
         requeue_at=FAILED_AT + timedelta(seconds=15)),
    Case("a recorded deterministic failure is not retried for the same input",
         observation(status=failure(transient=False), runs={name(): (run(name(), Phase.FAILED, VALUE_ERROR),)}),
         FAILED),
    Case("the spec changed since the deterministic failure", observation(status=failure(transient=False, generation=2)),
         FIRST_RUN, [f"submit {name()}"]),
    Case("the table's schema changed since the deterministic failure",
         observation(status=failure(transient=False, schema_id=0)), FIRST_RUN, [f"submit {name()}"]),
    Case("a new snapshot since the deterministic failure", observation(status=failure(transient=False, snapshot=11)),
         FIRST_RUN, [f"submit {name()}"]),
    Case("a transient failure waits for its backoff", observation(status=failure(transient=True, attempts=2)), FAILED,
         requeue_at=FAILED_AT + timedelta(seconds=30), now=FAILED_AT + timedelta(seconds=29)),
    Case("a transient failure is retried once its backoff is over",
         observation(status=failure(transient=True, attempts=2)), FIRST_RUN, [f"submit {name(attempt=2)}"],
         now=FAILED_AT + timedelta(seconds=30)),
    Case("the retry fails again: recorded as one more attempt",
         observation(status=failure(transient=True, attempts=1),
                     runs={name(): (run(name(), Phase.FAILED, CONNECTION_ERROR, FAILED_AT),),
                           name(attempt=1): (run(name(attempt=1), Phase.FAILED, CONNECTION_ERROR, FAILED_AT),)}),
         FAILED, requeue_at=FAILED_AT + timedelta(seconds=30)),
]
SCHEDULE_CASES = [
    Case("no tick due: come back at the next one",
         observation(records={"materialized": done(time="2025-06-01T12:10:00+00:00")}), SERVED, spec=spec(materialization=HOURLY),
         requeue_at=datetime(2025, 6, 1, 13, tzinfo=UTC)),
    Case("a tick passed since the last run: a full refresh",
         observation(records={"materialized": done(time="2025-06-01T11:50:00+00:00")}), SERVING_AND_RUNNING,
         [f"submit {name(tick=datetime(2025, 6, 1, 12, tzinfo=UTC))}"], spec=spec(materialization=HOURLY),
         requeue_at=datetime(2025, 6, 1, 13, tzinfo=UTC)),
    Case("exactly at the tick", observation(records={"materialized": done(time="2025-06-01T12:10:00+00:00")}),
         SERVING_AND_RUNNING, [f"submit {name(tick=datetime(2025, 6, 1, 13, tzinfo=UTC))}"],
         spec=spec(materialization=HOURLY), now=datetime(2025, 6, 1, 13, tzinfo=UTC),
         requeue_at=datetime(2025, 6, 1, 14, tzinfo=UTC)),
    Case("a tick's refresh refused by the quality gate is not repeated until the next tick",
         observation(records={"materialized": done(time="2025-06-01T11:50:00+00:00"), "rejected": rejected()}),
         [SOURCE_OK, APPLIED, ("DataQuality", False, "QualityCheckFailed"), ("Materialized", False, "QualityCheckFailed")],
         spec=spec(materialization=HOURLY), requeue_at=datetime(2025, 6, 1, 13, tzinfo=UTC)),
    Case("a transient failure retries before the next tick",
         observation(status=failure(transient=True, attempts=1), records={"materialized": done(snapshot=11)}),
         [SOURCE_OK, APPLIED, ("Materialized", False, "MaterializationFailed"), ("DataQuality", True, "Passed")],
         spec=spec(materialization=HOURLY), requeue_at=FAILED_AT + timedelta(seconds=15),
         now=FAILED_AT + timedelta(seconds=5)),
]
CASES = SOURCE_CASES + SCHEMA_CASES + REGISTRY_CASES + MATERIALIZE_CASES + FAILURE_CASES + SCHEDULE_CASES


def describe(action: object) -> str:
    if isinstance(action, ApplyDefinition):
        return "apply"
    if isinstance(action, SubmitRun):
        return f"submit {action.workload.name}"
    assert isinstance(action, DeleteRun)
    return f"delete {action.name}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_decide(case: Case) -> None:
    decision = decide(case.spec, case.observed, case.now)
    outcome = decision.outcome
    assert [(c.type, c.status, c.reason) for c in outcome.conditions] == case.conditions
    assert [describe(a) for a in decision.actions] == case.actions
    assert outcome.requeue_at == case.requeue_at
    assert outcome.retry_after == case.retry_after


def test_another_tables_refused_edit_does_not_stop_the_featureset() -> None:
    """The DataLake is not Ready because an edit of `ratings` was refused; user_features is intact."""
    obj = {"metadata": {"name": "movielens", "generation": 4}, "spec": LAKE_DOC, "status": {
        "conditions": [
            {"type": "CatalogReady", "status": "True", "reason": "Connected", "lastTransitionTime": "2025-06-01T00:00:00Z"},
            {"type": "SchemaCompatible", "status": "False", "reason": "SchemaChangeRefused",
             "message": "table ratings: narrowing userId", "lastTransitionTime": "2025-06-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "SchemaChangeRefused", "lastTransitionTime": "2025-06-01T00:00:00Z"}],
        "tables": [{"name": "user_features", "currentSnapshotId": 12, "schemaId": 1},
                   {"name": "ratings", "currentSnapshotId": 5, "schemaId": 0}]}}
    decision = decide(spec(), observation(lake=lake_object(obj, "user_features")), NOW)
    assert decision.outcome.conditions[0] == Observed(
        "SourceReady", True, "SnapshotAvailable", 'table "user_features" of DataLake "movielens" is at snapshot 12')
    assert [describe(a) for a in decision.actions] == [f"submit {name()}"]


def test_a_schema_mismatch_names_the_field_the_column_and_both_types() -> None:
    decision = decide(spec(features=[{"name": "ratingCount", "dtype": "String"}]), observation(), NOW)
    registry = decision.outcome.conditions[1]
    assert registry.message == ("spec.features[0].dtype declares String but column ratingCount is long "
                                "(table movielens.user_features, schema 1); nothing was written to Feast")
    assert decision.outcome.ready.reason == "SchemaMismatch" and not decision.actions


def test_a_failed_run_is_recorded_with_its_input() -> None:
    failed = run(name(), Phase.FAILED, VALUE_ERROR, FAILED_AT)
    outcome = decide(spec(), observation(runs={name(): (failed,)}), NOW).outcome
    assert outcome.fields["last_failure"] == MaterializationFailure(
        run=name(), time=FAILED_AT, generation=3, snapshot_id=12, schema_id=1, feature_view_version=VERSION,
        transient=False, attempts=1)
    message = outcome.conditions[2].message
    assert VALUE_ERROR in message and "not retried until the spec or the table changes" in message
    # the next reconcile sees the record in its own status and leaves the input alone, keeping the run to read
    again = decide(spec(), observation(status=FeatureSetStatus(last_failure=outcome.fields["last_failure"]),
                                       runs={name(): (failed,)}), NOW + timedelta(hours=5))
    assert not again.actions and again.outcome.requeue_at is None and VALUE_ERROR in again.outcome.conditions[2].message


def test_the_submitted_run_materializes_what_was_decided() -> None:
    lake_with_secret = DataLakeSpec.model_validate({**LAKE_DOC, "catalog": {**LAKE_DOC["catalog"],
                                                                            "secretRef": {"name": "lake"}}})
    observed = observation(lake=lake(spec=lake_with_secret), lake_secret_keys=("s3.access-key-id",),
                           records={"materialized": done(snapshot=11)})
    (submit,) = decide(spec(quality={"minRows": 10}), observed, NOW).actions
    assert isinstance(submit, SubmitRun)
    request = MaterializeRequest.model_validate_json(submit.workload.files["request.json"])
    assert (request.snapshot_id, request.previous_snapshot_id, request.quality.min_rows) == (12, 11, 10)
    assert request.store == SETTINGS.to_json() and request.lake_secret_keys == ["s3.access-key-id"]
    assert "uri" in request.lake_catalog and submit.workload.owner == observed.owner


def test_a_materialized_snapshot_is_reported_in_status_fields() -> None:
    fields = decide(spec(), observation(records={"materialized": done()}), NOW).outcome.fields
    assert fields["feature_view_version"] == VERSION and fields["source_snapshot_id"] == 12
    assert fields["online_row_count"] == 547 and fields["last_materialized"].rows == 547


@pytest.mark.parametrize(("code", "transient"), [
    (EXIT_INPUT_ERROR, False),  # the component says its input cannot be materialized
    (1, True),  # anything else may heal: an unreachable store, a registry that moved on
    (137, True),  # killed
    (None, True),  # the supervisor died without recording a code
])
def test_which_failures_may_heal(code: int | None, transient: bool) -> None:
    assert failures.is_transient(WorkloadStatus("r", Phase.FAILED, "x", exit_code=code)) is transient


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 15), (2, 30), (3, 60), (8, 1920), (9, 3600), (50, 3600)])
def test_the_backoff_doubles_up_to_an_hour(attempts: int, seconds: int) -> None:
    recorded = failure(transient=True, attempts=attempts).last_failure
    assert recorded is not None
    assert failures.retry_at(recorded, 15.0) == FAILED_AT + timedelta(seconds=seconds)
