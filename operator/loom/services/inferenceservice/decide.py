"""An InferenceService's decision, pure: (spec, what was observed, settings, now) -> conditions, status
and actions. The model source must resolve to a registry version, the FeatureSet (if named) must be
readable online, and the serving target must exist; then the rollout (`rollout.py`, Flagger's rules)
decides the revisions and the split, and one level-based `Serve` lays them out. A source that cannot be
read this time leaves what is served as it is: the rollout goes on with what it has on record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loom.api.gpuprofile import GpuProfile
from loom.api.inferenceservice import InferenceServiceSpec, RolloutPhase, RolloutStrategy
from loom.builders.training import node_shape
from loom.domain.outcome import READY, Decision, Observed, Outcome
from loom.domain.rollout import MetricResult, Promote, QueryMetrics, RemoveAnnotation, Split
from loom.domain.serving import Serving
from loom.domain.workloads import OwnerRef, SecretEnv
from loom.services.inferenceservice.actions import Action, MoveAlias, Serve
from loom.services.inferenceservice.observe import InferenceServiceObserved, OnlineFeatures, Source
from loom.services.inferenceservice.rollout import (
    CANARY_READY,
    PREDICTOR_READY,
    RolloutDecision,
    RolloutObserved,
    RolloutState,
    decide_rollout,
)
from loom.services.unavailable import Unavailable

MODEL_READY = "ModelReady"
FEATURES_READY = "FeaturesReady"
# Phases in which the canary is served (after them it is promoted, or rolled back and removed).
CANARY_SERVED = (RolloutPhase.PROGRESSING, RolloutPhase.PROMOTING, RolloutPhase.FINALISING)
DEFAULT_K = 10


@dataclass(frozen=True)
class Settings:
    namespace: str
    name: str
    owner: OwnerRef | None
    image: str
    retry_seconds: float
    poll_seconds: float
    profiles: Mapping[str, GpuProfile] | Unavailable


def _model_condition(o: InferenceServiceObserved) -> Observed:
    if o.training_job is not None and o.training_job.body is None:
        return Observed(MODEL_READY, False, "TrainingJobNotFound", f'TrainingJob "{o.training_job.name}" does not exist')
    source = o.source
    if isinstance(source, Unavailable):
        return Observed(MODEL_READY, False, "RegistryUnavailable", f"the model registry cannot be read: {source.message}")
    if source.model_uri is None:
        return Observed(MODEL_READY, False, "InvalidTrainingJob", "the TrainingJob's spec does not name a model")
    if source.revision is None:
        return Observed(MODEL_READY, False, "VersionNotFound",
                        f"{source.model_uri} names no version in the registry yet")
    return Observed(MODEL_READY, True, "VersionResolved",
                    f"{source.model_uri} is version {source.revision.model_version}")


def _extra(spec: InferenceServiceSpec, o: InferenceServiceObserved) -> dict[str, Any] | Observed:
    """The runtime's extra parameters, or the FeaturesReady condition that keeps them from being known."""
    ref = spec.predictor.feature_set_ref
    extra: dict[str, Any] = {"k": DEFAULT_K}
    if ref is None:
        return extra
    if o.features is None or o.features.body is None:
        return Observed(FEATURES_READY, False, "FeatureSetNotFound", f'FeatureSet "{ref.name}" does not exist')
    online = o.online
    if isinstance(online, Unavailable):
        return Observed(FEATURES_READY, False, "SecretUnavailable", online.message)
    if isinstance(online, str):
        return Observed(FEATURES_READY, False, "NoOnlineStore", online)
    if online is None:
        return Observed(FEATURES_READY, False, "InvalidFeatureSet", f'FeatureSet "{ref.name}" has an invalid spec')
    return {**extra, "onlineFeatures": online.to_json()}


def _secret_env(o: InferenceServiceObserved) -> tuple[SecretEnv, ...]:
    """What the serving processes read from Secrets: the online store's connection, when held there."""
    return (o.online.secret,) if isinstance(o.online, OnlineFeatures) and o.online.secret else ()


def layout(spec: InferenceServiceSpec, settings: Settings, state: RolloutState, extra: Mapping[str, Any],
           secret_env: tuple[SecretEnv, ...] = ()) -> Serving:
    """What the serving target runs for a rollout state: the stable revision, the canary while it is
    under analysis or being promoted, and the split between them (mirroring only under analysis)."""
    assert state.stable is not None
    canary = state.canary if state.phase in CANARY_SERVED else None
    skip = spec.rollout.canary.skip_analysis or spec.rollout.strategy == RolloutStrategy.REPLACE
    mirror = spec.rollout.canary.mirror if state.phase == RolloutPhase.PROGRESSING and not skip else 0
    weight = (state.canary_weight or 0) if canary is not None else 0
    split = Split(state.stable.name, None if canary is None else canary.name, weight, mirror if canary else 0)
    predictor = spec.predictor
    resources = predictor.resources
    profile = None
    if predictor.gpu_profile is not None and isinstance(settings.profiles, Mapping):
        profile = settings.profiles.get(predictor.gpu_profile)
    return Serving(
        name=settings.name, namespace=settings.namespace, image=predictor.image or settings.image,
        stable=state.stable, split=split, canary=canary, owner=settings.owner, replicas=predictor.replicas,
        min_replicas=predictor.min_replicas, max_replicas=predictor.max_replicas,
        node=node_shape(profile, resources.cpu if resources else None, resources.memory if resources else None),
        extra=dict(extra), secret_env=secret_env,
    )


def _actions(spec: InferenceServiceSpec, rollout: RolloutDecision, source: Source | Unavailable,
             serve: Serving | None) -> list[Action | QueryMetrics]:
    actions: list[Action | QueryMetrics] = []
    for action in rollout.actions:
        if isinstance(action, (QueryMetrics, RemoveAnnotation)):
            actions.append(action)
        elif isinstance(action, Promote) and action.alias is not None and not isinstance(source, Unavailable):
            move = action.alias
            actions.append(MoveAlias(source.tracking_uri, move.model_name, move.alias, move.version))
    if serve is not None:
        actions.append(Serve(serve))
    return actions


def decide(spec: InferenceServiceSpec, o: InferenceServiceObserved, settings: Settings, now: datetime,
           analysis: tuple[MetricResult, ...] | None = None) -> Decision[Action | QueryMetrics]:
    model = _model_condition(o)
    source = o.source
    serving = source.revision if not isinstance(source, Unavailable) else None
    candidate = o.candidate if not isinstance(o.candidate, Unavailable) else None
    served = o.served
    ready = frozenset() if isinstance(served, Unavailable) else served.ready
    why = {} if isinstance(served, Unavailable) else served.why
    state = RolloutState.from_status(o.status)
    rollout = decide_rollout(spec, settings.namespace, state,
                             RolloutObserved(serving, candidate, ready, o.promote, o.abort, analysis, why), now)
    extra = _extra(spec, o)
    conditions = [model]
    retry = None
    if any(isinstance(x, Unavailable) for x in (source, o.candidate, served, o.online)):
        retry = settings.retry_seconds
    blocked: Observed | None = None
    if isinstance(extra, Observed):
        blocked = extra
    elif isinstance(served, Unavailable):
        blocked = Observed(PREDICTOR_READY, False, "TargetUnavailable", f"the serving target cannot be read: "
                                                                        f"{served.message}")
    elif served.missing is not None:
        blocked = Observed(PREDICTOR_READY, False, "BackendNotInstalled", served.missing)
    if blocked is not None:  # nothing is laid out: what runs keeps running as it is
        conditions.append(blocked)
        fields: dict[str, Any] = {}
        return Decision(Outcome(tuple(conditions), fields, retry_after=retry),
                        tuple(a for a in _actions(spec, rollout, source, None) if isinstance(a, RemoveAnnotation)))
    if spec.predictor.feature_set_ref is not None:
        conditions.append(Observed(FEATURES_READY, True, "OnlineStoreFound",
                                   f'online features of FeatureSet "{spec.predictor.feature_set_ref.name}"'))
    assert not isinstance(extra, Observed)
    new = rollout.state
    serve = layout(spec, settings, new, extra, _secret_env(o)) if new.stable is not None else None
    conditions.extend(rollout.conditions)
    conditions.append(_ready(conditions, new))
    fields = {**new.fields(), "url": None if isinstance(served, Unavailable) else served.url,
              "lineage": _lineage(o, new)}
    return Decision(Outcome(tuple(conditions), fields, retry_after=retry, events=rollout.events,
                            requeue_at=_due(spec, settings, rollout, now)),
                    tuple(_actions(spec, rollout, source, serve)))


def _ready(conditions: list[Observed], state: RolloutState) -> Observed:
    """Ready while the stable revision serves: a canary under analysis or rolled back is CanaryReady's
    business, not a reason to call the service down."""
    blockers = Outcome(tuple(c for c in conditions if c.type != CANARY_READY)).ready
    if not blockers.status or state.stable is None:
        return blockers
    return Observed(READY, True, "Serving", f"version {state.stable.model_version} serves the stable traffic")


def _due(spec: InferenceServiceSpec, settings: Settings, rollout: RolloutDecision, now: datetime) -> datetime | None:
    """The rollout's next step, or sooner the next look at the aliases the model source follows: a
    TrainingJob's changes wake the object, an alias moved in MLflow does not."""
    if spec.model.alias is None:
        return rollout.next_due
    poll = now + timedelta(seconds=settings.poll_seconds)
    return poll if rollout.next_due is None else min(poll, rollout.next_due)


def _lineage(o: InferenceServiceObserved, state: RolloutState) -> Any:
    """What trained the stable revision: the TrainingJob's lineage while it is that version's."""
    stable = state.stable
    source = o.source
    if stable is None:
        return None
    if not isinstance(source, Unavailable) and source.lineage is not None \
            and source.lineage.model_version == stable.model_version:
        return source.lineage
    old = o.status
    return old.lineage if old.stable is not None and old.stable.name == stable.name else None
