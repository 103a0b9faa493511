"""The FeatureSet's act and observe steps against the fakes of tests/support (an in-memory executor and
Kubernetes) and a real pyiceberg SQLite catalog; Feast's registry is replaced by recorders here (the
integration tests in tests/integration/features run it for real)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.api.kinds import DATALAKE, FEATURESET, Kind
from loom.config import ExecutorKind, OperatorConfig
from loom.domain.outcome import Decision, Outcome
from loom.domain.outcome import Observed as Condition
from loom.domain.workloads import Phase, Workload, WorkloadStatus
from loom.drivers.feast_registry import RegisteredView
from loom.drivers.feast_store import DefinitionConflict, OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.services import featureset
from loom.services.context import ReconcileContext
from loom.services.featureset import act as act_module
from loom.services.featureset import feature_view_definition
from loom.services.featureset import observe as observe_module
from loom.services.featureset.act import act
from loom.services.featureset.actions import ApplyDefinition, DeleteRun, SubmitRun
from loom.services.featureset.observe import LakeObject, Unavailable, observe
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube

NOW = datetime(2025, 6, 1, 12, 30, tzinfo=timezone.utc)
SPEC_DOC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"]}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}],
}
SPEC = FeatureSetSpec.model_validate(SPEC_DOC)


class RecordingKube(FakeKube):
    """FakeKube that also remembers which objects were read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind.kind, name))
        return super().get_loom(kind, namespace, name)


def context(tmp_path: Path, executor: FakeExecutor | None = None, kube: FakeKube | None = None,
            status: dict[str, Any] | None = None) -> ReconcileContext:
    config = OperatorConfig(state_dir=tmp_path / "state", executor=ExecutorKind.LOCAL, dependency_retry_seconds=7)
    return ReconcileContext("ml", "user-features", "uid-1", 3, kube or RecordingKube(), config,
                            executor or FakeExecutor(), NOW, status or {}, "loom.dev/v1alpha1", "FeatureSet")


def run_workload(name: str) -> Workload:
    return Workload(name, "ml", "materialize", labels={"loom.dev/featureset": "user-features"})


SETTINGS = StoreSettings("loom_ml", "sqlite:///registry.db", OnlineKind.REDIS, "redis:6379")
SOURCE = Condition("SourceReady", True, "SnapshotAvailable")
APPLIED = Condition("RegistryReady", True, "Applied")
RUNNING = Condition("Materialized", None, "Materializing")
QUALITY = Condition("DataQuality", None, "NotChecked")


def decision(*actions: Any) -> Decision[Any]:
    outcome = Outcome((SOURCE, APPLIED, RUNNING, QUALITY), {"feature_view_version": "v2", "online_row_count": 5})
    return Decision(outcome, actions)


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Feast's apply, recorded."""
    calls: list[Any] = []
    monkeypatch.setattr(act_module.feast_store, "apply", lambda settings, definition: calls.append(definition))
    return calls


def failing(error: Exception) -> Callable[..., None]:
    def fail(*_: Any) -> None:
        raise error
    return fail


def definition() -> Any:
    lake = DataLakeSpec.model_validate({"catalog": {"type": "sql", "uri": "sqlite:///c.db"}, "namespace": "movielens",
                                        "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]}]})
    return feature_view_definition(SPEC, lake, "ml", "user-features", SETTINGS.registry_uri)


def test_actions_are_carried_out_in_order(tmp_path: Path, applied: list[Any]) -> None:
    executor = FakeExecutor()
    executor.submit(run_workload("old-run"))
    executor.finish("ml", "old-run")
    d = decision(ApplyDefinition(SETTINGS, definition()), SubmitRun(run_workload("new-run")), DeleteRun("ml", "old-run"))
    assert act(d, context(tmp_path, executor)) == d.outcome
    assert applied == [definition()]
    assert [w.name for w in executor.submitted] == ["old-run", "new-run"] and executor.deleted == [("ml", "old-run")]


def test_a_registry_that_cannot_be_reached_stops_the_run_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(act_module.feast_store, "apply", failing(ConnectionError("could not connect to postgres")))
    executor = FakeExecutor()
    outcome = act(decision(ApplyDefinition(SETTINGS, definition()), SubmitRun(run_workload("new-run"))),
                  context(tmp_path, executor))
    assert outcome.conditions == (SOURCE, Condition("RegistryReady", False, "RegistryUnavailable",
                                                    "could not connect to postgres"))
    assert outcome.retry_after == 7 and outcome.fields == {"online_row_count": 5}  # the version was not applied
    assert executor.submitted == []


def test_a_name_taken_by_another_featureset_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conflict = DefinitionConflict('entity "user" is already used by other_view with join key uid (STRING)')
    monkeypatch.setattr(act_module.feast_store, "apply", failing(conflict))
    outcome = act(decision(ApplyDefinition(SETTINGS, definition())), context(tmp_path))
    assert outcome.conditions[1] == Condition("RegistryReady", False, "NameConflict", str(conflict))
    assert outcome.retry_after is None


def test_a_run_that_cannot_start_is_reported_and_retried(tmp_path: Path) -> None:
    executor = FakeExecutor(refuse=LookupError("Secret ml/lake has no key s3.access-key-id"))
    outcome = act(decision(SubmitRun(run_workload("new-run")), DeleteRun("ml", "old-run")), context(tmp_path, executor))
    assert outcome.conditions == (SOURCE, APPLIED, Condition("Materialized", False, "SubmitFailed",
                                                             "Secret ml/lake has no key s3.access-key-id"))
    assert outcome.retry_after == 7 and executor.deleted == []


def test_housekeeping_that_fails_changes_no_condition(tmp_path: Path) -> None:
    class Stuck(FakeExecutor):
        def delete(self, namespace: str, name: str) -> None:
            raise RuntimeError("the API server is unreachable")

    d = decision(DeleteRun("ml", "old-run"))
    outcome = act(d, context(tmp_path, Stuck()))
    assert outcome.conditions == d.outcome.conditions and outcome.fields == d.outcome.fields
    assert outcome.retry_after == 7


def test_delete_removes_the_runs_and_the_view_with_the_connection_from_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    removed: list[tuple[StoreSettings, str, str]] = []
    monkeypatch.setattr(act_module.feast_store, "remove", lambda s, view, owner: removed.append((s, view, owner)) or True)
    monkeypatch.setattr(act_module.feast_pins, "drop", lambda pin: True)
    monkeypatch.setattr(act_module.feast_pins, "remove_records", lambda pin, kinds: None)
    monkeypatch.setattr(act_module.feast_store, "redis_client", lambda s: SimpleNamespace(ping=lambda: True))
    executor, kube = FakeExecutor(), RecordingKube()
    for name in ("run-a", "run-b"):
        executor.submit(run_workload(name))
    executor.submit(Workload("someone-elses", "ml", "materialize", labels={"loom.dev/featureset": "other"}))
    kube.put_secret("ml", "feature-store", {"connection": "redis.ml:6379,password=s3cret"})
    spec = FeatureSetSpec.model_validate({**SPEC_DOC, "online": {"connectionSecretRef": {"name": "feature-store"}}})
    applied = {"featureViewVersion": "v2"}
    cleanup = featureset.delete(spec, context(tmp_path, executor, kube, applied))
    assert cleanup.removed == ("workload run-a", "workload run-b", "feature view user_features and its online data")
    assert sorted(executor.deleted) == [("ml", "run-a"), ("ml", "run-b")]
    ((settings, view, owner),) = removed
    assert (settings.online_connection, view, owner) == ("redis.ml:6379,password=s3cret", "user_features",
                                                         "ml/user-features")
    kube.secrets.clear()
    (left,) = featureset.delete(spec, context(tmp_path, executor, kube, applied)).left
    assert left.why == "SecretNotFoundError: Secret ml/feature-store does not exist"


# --- observe -----------------------------------------------------------------------------------


def lake_object(tmp_path: Path, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "loom.dev/v1alpha1", "kind": "DataLake",
        "metadata": {"name": "movielens", "namespace": "ml", "generation": 2},
        "spec": {"catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path}/lake/catalog.db",
                             "warehouse": f"file://{tmp_path}/lake/warehouse"},
                 "namespace": "movielens",
                 "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]}]},
        "status": {"conditions": [{"type": "CatalogReady", "status": "True" if ready else "False", "reason": "Connected",
                                   "lastTransitionTime": "2025-06-01T00:00:00Z"}],
                   "tables": [{"name": "user_features", "currentSnapshotId": 1, "schemaId": 0}]},
    }


@pytest.fixture
def feast_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observe_module, "registered_view", lambda settings, name: RegisteredView("ml/user-features", "v"))
    monkeypatch.setattr(observe_module.feast_pins, "read_records", lambda pin: {"materialized": {"snapshot": 1}})


def test_observe_reads_the_lake_table_once_and_never_the_featureset_itself(tmp_path: Path, feast_reads: None) -> None:
    catalog = open_catalog("default", {"type": "sql", "uri": f"sqlite:///{tmp_path}/lake/catalog.db",
                                       "warehouse": f"file://{tmp_path}/lake/warehouse"})
    catalog.create_namespace("movielens")
    data = pa.table({"userId": pa.array([1, 2], pa.int64()), "eventTimestamp": pa.array(
        [NOW, NOW], pa.timestamp("us", tz="UTC"))})
    created = catalog.create_table(("movielens", "user_features"), schema=data.schema)
    created.append(data)
    kube, executor = RecordingKube(), FakeExecutor()
    kube.put(DATALAKE, lake_object(tmp_path))
    kube.put(FEATURESET, {"metadata": {"name": "user-features", "namespace": "ml"}, "spec": {}})
    executor.submit(run_workload("run-a"))
    executor.set_runs("ml", "run-a", WorkloadStatus("run-a", Phase.SUCCEEDED))
    status = {"sourceSnapshotId": 1, "onlineRowCount": 2}

    observed = observe(SPEC, context(tmp_path, executor, kube, status))

    assert kube.reads == [("DataLake", "movielens")]
    assert isinstance(observed.lake, LakeObject) and observed.lake.catalog_ready is True and observed.lake.declared
    assert observed.table is not None and not isinstance(observed.table, Unavailable)
    assert observed.table.snapshot_id == created.current_snapshot().snapshot_id
    assert observed.table.columns == {"userId": "long", "eventTimestamp": "timestamptz"}
    assert observed.status.source_snapshot_id == 1 and observed.status.online_row_count == 2
    assert observed.runs == {"run-a": (WorkloadStatus("run-a", Phase.SUCCEEDED),)}
    assert observed.registry == RegisteredView("ml/user-features", "v")
    assert observed.records == {"materialized": {"snapshot": 1}}


def test_observe_records_what_it_could_not_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable(FakeKube):
        def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
            raise ConnectionError("the API server is unreachable")

    monkeypatch.setattr(observe_module, "registered_view", failing(ConnectionError("registry down")))
    monkeypatch.setattr(observe_module.feast_pins, "read_records", failing(ConnectionError("registry down")))

    class Broken(FakeExecutor):
        def names(self, namespace: str, labels: Any) -> set[str]:
            raise RuntimeError("forbidden")

    observed = observe(SPEC, context(tmp_path, Broken(), Unreachable()))
    assert observed.lake == Unavailable("the API server is unreachable")
    assert observed.registry == Unavailable("registry down") and observed.records == Unavailable("registry down")
    assert observed.runs == Unavailable("forbidden") and observed.table is None


def test_observe_keeps_secret_values_out_of_what_it_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feast_reads: None
) -> None:
    kube = RecordingKube()
    lake = lake_object(tmp_path)
    lake["spec"]["catalog"]["secretRef"] = {"name": "lake"}
    kube.put(DATALAKE, lake)
    kube.put_secret("ml", "lake", {"s3.secret-access-key": "hunter2-secret"})

    def refuse(name: str, properties: dict[str, str], *_: Any) -> None:
        raise PermissionError(f"access denied for key {properties['s3.secret-access-key']}")

    monkeypatch.setattr(observe_module, "read_table", refuse)
    observed = observe(SPEC, context(tmp_path, kube=kube))
    assert observed.table == Unavailable("access denied for key ***")
    assert observed.lake_secret_keys == ("s3.secret-access-key",)
    kube.secrets.clear()
    assert observe(SPEC, context(tmp_path, kube=kube)).table == Unavailable("Secret ml/lake does not exist")
