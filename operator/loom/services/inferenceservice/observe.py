"""Everything an InferenceService decision reads, once: the model version its source resolves to (and
the one under `canary.fromAlias`) in the MLflow registry, the TrainingJob it follows, where the
FeatureSet's online features are, the manual requests, and what the serving target shows of the
revisions on record. Reads only; a system that cannot be read is observed as Unavailable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loom.api.featureset import FeatureSetSpec, OnlineStoreType, ValueType
from loom.api.inferenceservice import InferenceServiceSpec, InferenceServiceStatus, Revision
from loom.api.kinds import FEATURESET, TRAININGJOB
from loom.api.trainingjob import Lineage, TrainingJobSpec, TrainingJobStatus
from loom.domain.feature_views import feast_name
from loom.domain.materialization import ONLINE_CONNECTION_ENV
from loom.domain.rollout import ABORT_ANNOTATION, PROMOTE_ANNOTATION
from loom.domain.workloads import MAX_NAME, SecretEnv, dns_name
from loom.drivers import mlflow_tracking
from loom.drivers.mlflow_tracking import ResolvedModel
from loom.services.context import ReconcileContext
from loom.services.featureset.definition import store_settings
from loom.services.inferenceservice.backend import Served, ServingBackend
from loom.services.references import Reference, observe_reference, parsed
from loom.services.unavailable import Unavailable, read

DEFAULT_CONNECTION_KEY = "connection"


@dataclass(frozen=True)
class OnlineFeatures:
    """The runtime's `onlineFeatures` (components/serve/online.py OnlineSource): Feast's Redis
    connection, project, view and the entity's join key with its Feast value type. A connection held
    in a Secret is never copied: `secret` names it, the serving processes get it as that variable."""

    connection: str
    project: str
    view: str
    join_keys: Mapping[str, str]
    secret: SecretEnv | None = None

    def to_json(self) -> dict[str, Any]:
        where = {"connectionEnv": self.secret.name} if self.secret else {"connection": self.connection}
        return {**where, "project": self.project, "view": self.view, "joinKeys": dict(self.join_keys)}


@dataclass(frozen=True)
class Source:
    """What the model source resolves to: the registry version as a revision (None while the alias or
    version does not exist yet) and, for a TrainingJob's, its lineage; `tracking_uri` is the registry."""

    tracking_uri: str
    model_uri: str | None  # models:/<name>@<alias> or /<version>; None while the TrainingJob has no model
    revision: Revision | None
    lineage: Lineage | None = None


@dataclass(frozen=True)
class InferenceServiceObserved:
    status: InferenceServiceStatus
    training_job: Reference | None
    source: Source | Unavailable
    candidate: Revision | None | Unavailable
    features: Reference | None
    online: OnlineFeatures | Unavailable | str | None  # str: why the FeatureSet cannot be read online
    served: Served | Unavailable
    promote: bool
    abort: bool


def revision_name(isvc: str, version: str) -> str:
    """The serving child of one version: `<isvc>-v<version>`, cut to a DNS label when long."""
    return dns_name(isvc, f"v{version}", MAX_NAME)


def _revision(isvc: str, resolved: ResolvedModel | None) -> Revision | None:
    if resolved is None:
        return None
    return Revision(name=revision_name(isvc, resolved.version), model_name=resolved.name,
                    model_version=resolved.version, model_uri=resolved.download_uri)



def _source(spec: InferenceServiceSpec, ctx: ReconcileContext, training_job: Reference | None) -> Source:
    """The version to serve: model.uri's, or the one under the TrainingJob's alias (what passed its
    evaluation gate), followed as it retrains."""
    tracking_uri, lineage = ctx.config.tracking_uri, None
    if training_job is None:
        uri = spec.model.uri
    else:
        body = training_job.body or {}
        tj = parsed(TrainingJobSpec, body.get("spec"))
        if tj is None:
            return Source(tracking_uri, None, None)
        tracking_uri = tj.tracking.tracking_uri or tracking_uri
        uri = f"models:/{tj.model.name}@{tj.model.alias}"
        tj_status = parsed(TrainingJobStatus, body.get("status")) or TrainingJobStatus()
        lineage = tj_status.lineage
    assert uri is not None  # the spec sets exactly one of trainingJobRef and uri
    revision = _revision(ctx.name, mlflow_tracking.resolve(tracking_uri, uri))
    if lineage is not None and (revision is None or lineage.model_version != revision.model_version):
        lineage = None  # the TrainingJob's last run is not the version served
    return Source(tracking_uri, uri, revision, lineage)


def _candidate(spec: InferenceServiceSpec, ctx: ReconcileContext) -> Revision | None:
    alias, tracked = spec.model.alias, spec.rollout.canary.from_alias
    if alias is None or tracked is None:
        return None
    return _revision(ctx.name, mlflow_tracking.resolve(ctx.config.tracking_uri, f"models:/{alias[0]}@{tracked}"))


def _online(features: Reference, ctx: ReconcileContext) -> OnlineFeatures | str | None:
    spec = parsed(FeatureSetSpec, (features.body or {}).get("spec"))
    if spec is None:
        return None
    if OnlineStoreType(spec.online.store) != OnlineStoreType.REDIS or not spec.online.enabled:
        return (f'FeatureSet "{features.name}" has no Redis online store: the serving runtime reads '
                "online features from Redis")
    secret = None
    ref = spec.online.connection_secret_ref
    if ref is not None:  # checked here, so a missing key is a condition, not a crashing model server
        key = ref.key or DEFAULT_CONNECTION_KEY
        if key not in ctx.kube.get_secret(ctx.namespace, ref.name):
            return f"Secret {ctx.namespace}/{ref.name} has no key {key!r}"
        secret = SecretEnv(ONLINE_CONNECTION_ENV, ref.name, key)
    settings = store_settings(spec, ctx.namespace, ctx.config)
    entity = spec.entities[0]
    return OnlineFeatures(settings.online_connection, settings.project, feast_name(features.name),
                          {entity.join_keys[0]: ValueType(entity.value_type).value}, secret)


def _served(spec: InferenceServiceSpec, ctx: ReconcileContext, backend: ServingBackend,
            status: InferenceServiceStatus) -> Served:
    revisions = [r for r in (status.stable, status.canary) if r is not None]
    return backend.observe(ctx.namespace, ctx.name, spec.target, revisions)


def observe(spec: InferenceServiceSpec, ctx: ReconcileContext, backend: ServingBackend) -> InferenceServiceObserved:
    status = parsed(InferenceServiceStatus, ctx.status) or InferenceServiceStatus()
    ref = spec.model.training_job_ref
    training_job = None if ref is None else observe_reference(ctx.kube, TRAININGJOB, ctx.namespace, ref.name)
    feature_ref = spec.predictor.feature_set_ref
    features = None if feature_ref is None else observe_reference(ctx.kube, FEATURESET, ctx.namespace,
                                                                 feature_ref.name)
    annotations = ctx.annotations
    return InferenceServiceObserved(
        status=status,
        training_job=training_job,
        source=read(lambda: _source(spec, ctx, training_job)),
        candidate=read(lambda: _candidate(spec, ctx)),
        features=features,
        online=None if features is None else read(lambda: _online(features, ctx)),
        served=read(lambda: _served(spec, ctx, backend, status)),
        promote=PROMOTE_ANNOTATION in annotations,
        abort=ABORT_ANNOTATION in annotations,
    )
