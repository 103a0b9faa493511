"""The InferenceService decision around the rollout, as tables: what the model source resolves to, the
FeatureSet's online store and the serving target decide whether anything is laid out; the rollout's
state decides the layout (revisions served, split, mirror), and promotion under alias tracking moves
the alias in the registry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from loom.api.inferenceservice import InferenceServiceSpec, InferenceServiceStatus, Revision, RolloutPhase
from loom.api.kinds import FEATURESET
from loom.api.trainingjob import Lineage
from loom.domain.materialization import ONLINE_CONNECTION_ENV
from loom.domain.outcome import Observed
from loom.domain.rollout import MetricResult, QueryMetrics, Split
from loom.domain.workloads import OwnerRef, SecretEnv
from loom.services.inferenceservice.actions import MoveAlias, Serve
from loom.services.inferenceservice.backend import Served
from loom.services.inferenceservice.decide import FEATURES_READY, MODEL_READY, Settings, decide
from loom.services.inferenceservice.observe import (
    InferenceServiceObserved,
    OnlineFeatures,
    Source,
    revision_name,
)
from loom.services.inferenceservice.rollout import PREDICTOR_READY
from loom.services.references import Reference
from loom.services.unavailable import Unavailable

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
URI = "sqlite:///mlflow.db"
ONLINE = OnlineFeatures("127.0.0.1:6379", "loom_ml", "user_features", {"userId": "INT64"})
SETTINGS = Settings(namespace="ml", name="recs", owner=OwnerRef("loom.dev/v1alpha1", "InferenceService", "recs", "u"),
                    image="serve:1", retry_seconds=15.0, poll_seconds=30.0, profiles={})


def rev(version: int) -> Revision:
    return Revision(name=revision_name("recs", str(version)), model_name="m", model_version=str(version),
                    model_uri=f"file:///artifacts/{version}")


V1, V2 = rev(1), rev(2)


def spec(**canary: Any) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate({
        "model": {"uri": "models:/m@champion"}, "predictor": {"featureSetRef": {"name": "users"}},
        "rollout": {"canary": {"interval": "1m", "stepWeights": [50], "fromAlias": "challenger", **canary}}})


def observed(serving: Revision | None = V1, candidate: Revision | None | Unavailable = None,
             status: InferenceServiceStatus | None = None, ready: frozenset[str] = frozenset(),
             **changes: Any) -> InferenceServiceObserved:
    values: dict[str, Any] = {
        "status": status or InferenceServiceStatus(),
        "training_job": None,
        "source": Source(URI, "models:/m@champion", serving),
        "candidate": candidate,
        "features": Reference(FEATURESET, "users", {"spec": {}}),
        "online": ONLINE,
        "served": Served(ready, "http://127.0.0.1:9000"),
        "promote": False,
        "abort": False,
        **changes,
    }
    return InferenceServiceObserved(**values)


def condition(conditions: tuple[Observed, ...], type_: str) -> Observed:
    return next(c for c in conditions if c.type == type_)


def serve(actions: tuple[Any, ...]) -> Serve | None:
    return next((a for a in actions if isinstance(a, Serve)), None)


def test_revision_names_are_dns_labels_of_the_service_and_version() -> None:
    assert revision_name("recs", "12") == "recs-v12"
    long = revision_name("r" * 70, "3")
    assert len(long) <= 63 and long.endswith("-v3")


@pytest.mark.parametrize(("changes", "reason", "retry"), [
    ({"source": Source(URI, "models:/m@champion", None)}, "VersionNotFound", None),
    ({"source": Unavailable("connection refused")}, "RegistryUnavailable", 15.0),
    ({"training_job": Reference(FEATURESET, "tj", None), "source": Source(URI, None, None)},
     "TrainingJobNotFound", None),
])
def test_nothing_is_laid_out_until_the_source_names_a_version(changes: dict[str, Any], reason: str,
                                                               retry: float | None) -> None:
    decision = decide(spec(), observed(**changes), SETTINGS, NOW)
    model = condition(decision.outcome.conditions, MODEL_READY)
    assert (model.status, model.reason) == (False, reason)
    assert serve(decision.actions) is None
    assert decision.outcome.retry_after == retry


def test_a_stable_revision_that_is_not_ready_says_what_its_server_said() -> None:
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZING, stable=V1, canary_weight=0, last_transition_time=NOW)
    said = "cannot start /srv/.venv-serve/bin/python: [Errno 2] No such file or directory"
    served = Served(frozenset(), "http://127.0.0.1:9000", why={V1.name: said})
    predictor = condition(decide(spec(), observed(status=status, served=served), SETTINGS, NOW).outcome.conditions,
                          PREDICTOR_READY)
    assert (predictor.status, predictor.reason) == (False, "RevisionNotReady")
    assert predictor.message.endswith(f"is not ready: {said}"), predictor.message
    quiet = condition(decide(spec(), observed(status=status), SETTINGS, NOW).outcome.conditions, PREDICTOR_READY)
    assert quiet.message.endswith("is not ready"), quiet.message


def test_an_online_connection_held_in_a_secret_reaches_the_servers_as_a_secret_reference_only() -> None:
    secret = SecretEnv(ONLINE_CONNECTION_ENV, "redis-credentials", "connection")
    held = OnlineFeatures("", "loom_ml", "user_features", {"userId": "INT64"}, secret)
    laid = serve(decide(spec(), observed(online=held), SETTINGS, NOW).actions)
    assert laid is not None and laid.serving.secret_env == (secret,)
    assert laid.serving.extra["onlineFeatures"] == {
        "connectionEnv": ONLINE_CONNECTION_ENV, "project": "loom_ml", "view": "user_features",
        "joinKeys": {"userId": "INT64"}}
    plain = serve(decide(spec(), observed(), SETTINGS, NOW).actions)
    assert plain is not None and plain.serving.secret_env == ()


def test_the_first_version_is_laid_out_alone_and_initialized_once_ready() -> None:
    decision = decide(spec(), observed(), SETTINGS, NOW)
    laid = serve(decision.actions)
    assert laid is not None and laid.serving.stable == V1 and laid.serving.canary is None
    assert laid.serving.split == Split(V1.name)
    assert laid.serving.extra == {"k": 10, "onlineFeatures": ONLINE.to_json()}
    assert decision.outcome.fields["phase"] == RolloutPhase.INITIALIZING.value
    assert condition(decision.outcome.conditions, MODEL_READY).status is True
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZING, stable=V1, canary_weight=0,
                                    last_transition_time=NOW)
    ready = decide(spec(), observed(status=status, ready=frozenset({V1.name})), SETTINGS, NOW)
    assert ready.outcome.fields["phase"] == RolloutPhase.INITIALIZED.value
    assert ready.outcome.ready.status is True
    assert ready.outcome.fields["url"] == "http://127.0.0.1:9000"
    assert ready.outcome.requeue_at == NOW + timedelta(seconds=30)  # the alias is read again


def test_a_version_number_is_not_polled() -> None:
    pinned = InferenceServiceSpec.model_validate({"model": {"uri": "models:/m/1"},
                                                  "predictor": {"featureSetRef": {"name": "users"}}})
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZED, stable=V1, canary_weight=0,
                                    last_transition_time=NOW)
    decision = decide(pinned, observed(status=status, ready=frozenset({V1.name})), SETTINGS, NOW)
    assert decision.outcome.requeue_at is None


@pytest.mark.parametrize(("changes", "type_", "reason", "retry"), [
    ({"features": Reference(FEATURESET, "users", None), "online": None}, FEATURES_READY, "FeatureSetNotFound", None),
    ({"online": "no Redis online store"}, FEATURES_READY, "NoOnlineStore", None),
    ({"online": Unavailable("Secret ml/redis has no key")}, FEATURES_READY, "SecretUnavailable", 15.0),
    ({"served": Served(missing="install Seldon Core 2")}, "PredictorReady", "BackendNotInstalled", None),
    ({"served": Unavailable("API server down")}, "PredictorReady", "TargetUnavailable", 15.0),
])
def test_what_blocks_serving_leaves_what_runs_as_it_is(changes: dict[str, Any], type_: str, reason: str,
                                                       retry: float | None) -> None:
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZED, stable=V1, canary_weight=0,
                                    last_transition_time=NOW)
    decision = decide(spec(), observed(status=status, **changes), SETTINGS, NOW)
    blocked = condition(decision.outcome.conditions, type_)
    assert (blocked.status, blocked.reason) == (False, reason)
    assert decision.actions == () and decision.outcome.fields == {}
    assert decision.outcome.retry_after == retry


def test_an_unreadable_registry_keeps_serving_the_stable_revision() -> None:
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZED, stable=V1, canary_weight=0,
                                    last_transition_time=NOW)
    decision = decide(spec(), observed(status=status, source=Unavailable("timeout"), candidate=Unavailable("timeout"),
                                       ready=frozenset({V1.name})), SETTINGS, NOW)
    laid = serve(decision.actions)
    assert laid is not None and laid.serving.stable == V1 and laid.serving.canary is None
    assert decision.outcome.retry_after == 15.0
    assert decision.outcome.fields["phase"] == RolloutPhase.INITIALIZED.value


def test_a_challenger_is_served_as_a_canary_with_its_mirror_and_analysed() -> None:
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZED, stable=V1, canary_weight=0,
                                    last_transition_time=NOW)
    started = decide(spec(mirror=20, metrics=[{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
                     observed(candidate=V2, status=status, ready=frozenset({V1.name})), SETTINGS, NOW)
    laid = serve(started.actions)
    assert laid is not None and laid.serving.canary == V2
    assert laid.serving.split == Split(V1.name, V2.name, 0, 20)
    progressing = InferenceServiceStatus(phase=RolloutPhase.PROGRESSING, stable=V1, canary=V2, canary_weight=50,
                                         last_transition_time=datetime(2026, 1, 1, 11, 58, tzinfo=timezone.utc))
    due = decide(spec(metrics=[{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
                 observed(candidate=V2, status=progressing, ready=frozenset({V1.name, V2.name})), SETTINGS, NOW)
    assert [type(a) for a in due.actions if isinstance(a, QueryMetrics)] == [QueryMetrics]
    judged = decide(spec(metrics=[{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
                    observed(candidate=V2, status=progressing, ready=frozenset({V1.name, V2.name})), SETTINGS, NOW,
                    (MetricResult("request-success-rate", 100.0),))
    assert judged.outcome.fields["phase"] == RolloutPhase.PROMOTING.value
    move = [a for a in judged.actions if isinstance(a, MoveAlias)]
    assert move == [MoveAlias(URI, "m", "champion", "2")]
    promoting = serve(judged.actions)
    assert promoting is not None and promoting.serving.split == Split(V1.name, V2.name, 50, 0)


def test_a_rolled_back_canary_is_no_longer_served() -> None:
    failed = InferenceServiceStatus(phase=RolloutPhase.FAILED, stable=V1, canary=V2, canary_weight=0,
                                    failed_checks=3, last_transition_time=NOW)
    decision = decide(spec(), observed(candidate=V2, status=failed, ready=frozenset({V1.name})), SETTINGS, NOW)
    laid = serve(decision.actions)
    assert laid is not None and laid.serving.canary is None and laid.serving.split == Split(V1.name)
    assert decision.outcome.fields["phase"] == RolloutPhase.FAILED.value
    # The stable revision serves: Ready, while CanaryReady says what happened to the canary.
    assert condition(decision.outcome.conditions, "CanaryReady").reason == "RolledBack"
    ready = decision.outcome.ready
    assert (ready.status, ready.reason) == (True, "Serving")


def test_the_stable_revision_carries_its_training_lineage() -> None:
    lineage = Lineage(model_version="1", run_id="r1", registered_model="m")
    status = InferenceServiceStatus(phase=RolloutPhase.INITIALIZED, stable=V1, canary_weight=0,
                                    last_transition_time=NOW)
    decision = decide(spec(), observed(status=status, source=Source(URI, "models:/m@champion", V1, lineage),
                                       ready=frozenset({V1.name})), SETTINGS, NOW)
    assert decision.outcome.fields["lineage"] == lineage
