"""A deleted FeatureSet's cleanup against the fakes: its materialization workloads always go; Feast is
cleaned only when a definition was ever applied; a registry or online store that fails is reported
as the feature view left, with the URL's password redacted, and let go after the bound."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from loom.api.featureset import FeatureSetSpec
from loom.config import ExecutorKind, OperatorConfig
from loom.domain.workloads import Workload
from loom.services import featureset
from loom.services.context import ReconcileContext
from loom.services.deletion import Cleanup, verdict
from loom.services.featureset import act as act_module
from loom.services.featureset import deletion as deletion_module
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube

NOW = datetime(2025, 6, 1, 12, 30, tzinfo=timezone.utc)
APPLIED = {"featureViewVersion": "v2"}
RUNS = ("user-features-materialize-1", "user-features-schedule")
SPEC_DOC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"]}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}],
}
UNPARSEABLE = "sq\x01lite://loom:s3cret@/registry.db"


def spec(**changes: Any) -> FeatureSetSpec:
    return FeatureSetSpec.model_validate({**SPEC_DOC, **changes})


def context(tmp_path: Path, executor: FakeExecutor, status: dict[str, Any]) -> ReconcileContext:
    config = OperatorConfig(state_dir=tmp_path / "state", executor=ExecutorKind.LOCAL, dependency_retry_seconds=7)
    return ReconcileContext("ml", "user-features", "uid-1", 3, FakeKube(), config, executor, NOW, status,
                            "loom.dev/v1alpha1", "FeatureSet")


def executor_with_runs() -> FakeExecutor:
    executor = FakeExecutor()
    for name in RUNS:
        executor.submit(Workload(name, "ml", "materialize", labels={"loom.dev/featureset": "user-features"}))
    executor.submit(Workload("other-run", "ml", "materialize", labels={"loom.dev/featureset": "other"}))
    return executor


def deleted(executor: FakeExecutor) -> list[str]:
    return sorted(name for _, name in executor.deleted)


def test_an_unparseable_registry_url_is_retried_then_left_with_a_warning(tmp_path: Path) -> None:
    executor = executor_with_runs()
    unparseable = spec(registry={"uri": UNPARSEABLE}, online={"store": "sqlite"})
    cleanup = featureset.delete(unparseable, context(tmp_path, executor, APPLIED))
    (left,) = cleanup.left
    assert left.what == ("feature view user_features in the Feast registry sq\\x01lite://loom:***@/registry.db "
                         "and its online data")
    assert left.why.startswith("ArgumentError: Could not parse SQLAlchemy URL")
    assert deleted(executor) == list(RUNS), "the workloads go even so"
    assert [verdict(cleanup, attempt, 5, 7).retry_after for attempt in range(4)] == [7, 14, 28, 56]
    final = verdict(cleanup, 4, 5, 7)
    assert final.retry_after is None and final.warning == f"{left.what} left: {left.why}"
    assert "s3cret" not in final.warning


class Redis:
    def __init__(self, settings: Any) -> None:
        self.address = settings.online_connection

    def ping(self) -> bool:
        if self.address.startswith("127.0.0.1:9,"):
            raise ConnectionError(f"Error 111 connecting to {self.address} (connection refused)")
        return True


@pytest.fixture
def feast(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Redis answers unless it is at the discard port; the views removed from the registry."""
    removed: list[str] = []
    monkeypatch.setattr(deletion_module.feast_store, "redis_client", Redis)
    monkeypatch.setattr(act_module, "remove_definition", lambda settings, view, owner: removed.append(view) or True)
    return removed


def test_an_unreachable_redis_keeps_the_registry_untouched_and_names_both(tmp_path: Path, feast: list[str]) -> None:
    ctx = replace(context(tmp_path, executor_with_runs(), APPLIED),
                  config=OperatorConfig(state_dir=tmp_path, feast_redis="127.0.0.1:9,password=hunter2"))
    cleanup = featureset.delete(spec(), ctx)
    assert feast == [], "the registry still names the keys for the next attempt"
    registry = f"sqlite:///{tmp_path}/feast/registry.db"
    assert cleanup.message == (
        f"feature view user_features in the Feast registry {registry} left: kept until its online data can be "
        "removed; online data of feature view user_features in the redis online store 127.0.0.1:9,password=*** "
        "left: ConnectionError: Error 111 connecting to 127.0.0.1:9,password=*** (connection refused)")


def test_a_reachable_store_has_the_view_removed(tmp_path: Path, feast: list[str]) -> None:
    cleanup = featureset.delete(spec(), context(tmp_path, executor_with_runs(), APPLIED))
    assert feast == ["user_features"] and cleanup.left == ()
    assert cleanup.removed[-1] == "feature view user_features and its online data"


def test_a_featureset_that_never_applied_a_definition_lets_go_at_once(tmp_path: Path) -> None:
    executor = executor_with_runs()
    status = {"conditions": [{"type": "Ready", "status": "False", "reason": "RegistryUnavailable"}]}
    cleanup = featureset.delete(spec(registry={"uri": UNPARSEABLE}), context(tmp_path, executor, status))
    assert cleanup.left == () and verdict(cleanup, 0, 5, 7).retry_after is None
    assert deleted(executor) == list(RUNS)


def test_an_invalid_spec_removes_only_the_workloads(tmp_path: Path) -> None:
    executor = executor_with_runs()
    cleanup = featureset.delete(None, context(tmp_path, executor, APPLIED))
    assert cleanup == Cleanup(removed=tuple(f"workload {name}" for name in RUNS))
    assert deleted(executor) == list(RUNS)


def test_a_missing_connection_secret_is_named_and_the_workloads_still_go(tmp_path: Path) -> None:
    executor = executor_with_runs()
    with_secret = spec(online={"connectionSecretRef": {"name": "feature-store"}})
    (left,) = featureset.delete(with_secret, context(tmp_path, executor, APPLIED)).left
    assert left.why == "SecretNotFoundError: Secret ml/feature-store does not exist"
    assert deleted(executor) == list(RUNS)
