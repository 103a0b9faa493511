"""The workload of one TrainingJob run, pure: the trainer component (`components/train`) in every
process of a distributed run, reading everything it needs from `train.json` in its workload files —
the FeatureSet's registry and snapshot, the lake tables at the snapshots the run was started for, the
MLflow experiment, the model and the evaluation settings. Catalog credentials stay in their Secret and
reach the run as environment variables, named in the file only by those variables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from loom.api.trainingjob import Metric, TrainingJobSpec
from loom.builders.labels import owned_by
from loom.domain.training import Training
from loom.domain.workloads import OwnerRef, SecretEnv, Workload, digest, dns_name

KIND = "TrainingJob"
COMPONENT = "train"
CONFIG_FILE = "train.json"
SECRET_ENV = "LOOM_{}_SECRET_{}"


@dataclass(frozen=True)
class FeatureInput:
    """The FeatureSet's view in the Feast registry, at the snapshot this run trains on."""

    registry: str
    project: str
    view: str
    entity_key: str  # the user column the features join on, in the label rows too
    snapshot_id: int
    feature_view_version: str | None


@dataclass(frozen=True)
class TableInput:
    """A lake table read at one snapshot: its catalog's plain properties, and the keys of the
    catalog's Secret that join them at run time."""

    table: str  # <namespace>.<table> in the catalog
    catalog_name: str
    properties: Mapping[str, str]
    snapshot_id: int
    secret_name: str | None = None
    secret_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tracking:
    uri: str
    experiment: str
    artifact_location: str | None


def trainingjob_label(name: str) -> dict[str, str]:
    """The selector of a TrainingJob's runs."""
    return owned_by(KIND, name)


def run_name(trainingjob: str, snapshot_id: int) -> str:
    """One run per FeatureSet snapshot: the same snapshot always names the same run."""
    return dns_name(trainingjob, digest(str(snapshot_id)))


def _table(role: str, table: TableInput) -> tuple[dict[str, object], tuple[SecretEnv, ...]]:
    env = tuple(
        SecretEnv(SECRET_ENV.format(role.upper(), i), table.secret_name, key)
        for i, key in enumerate(sorted(table.secret_keys))
    ) if table.secret_name else ()
    return {
        "catalogName": table.catalog_name,
        "catalogProperties": dict(sorted(table.properties.items())),
        "secretProperties": [f"{e.key}={e.name}" for e in env],
        "table": table.table,
        "snapshotId": table.snapshot_id,
    }, env


def train_config(spec: TrainingJobSpec, run: str, owner: OwnerRef, namespace: str, image: str,
                 features: FeatureInput, labels: TableInput, items: TableInput | None,
                 tracking: Tracking) -> tuple[dict[str, object], tuple[SecretEnv, ...]]:
    """`train.json` of one run, and the Secret-held variables it names."""
    labels_json, labels_env = _table("labels", labels)
    items_json, items_env = _table("items", items) if items is not None else (None, ())
    fields = spec.dataset.labels
    config: dict[str, object] = {
        "run": {"name": run, "trainingJob": f"{namespace}/{owner.name}", "uid": owner.uid, "seed": 0,
                "image": image},
        "tracking": {"uri": tracking.uri, "experiment": tracking.experiment,
                     "artifactLocation": tracking.artifact_location},
        "features": {"registry": features.registry, "project": features.project, "view": features.view,
                     "snapshotId": features.snapshot_id, "featureViewVersion": features.feature_view_version},
        "labels": {**labels_json, "userField": features.entity_key, "itemField": fields.item_field,
                   "labelField": fields.label_field, "timestampField": fields.timestamp_field},
        "items": None if items_json is None or spec.dataset.items is None
        else {**items_json, "keyField": spec.dataset.items.key_field},
        "model": {"name": spec.model.name, "entrypoint": spec.model.entrypoint,
                  "hyperparameters": dict(sorted(spec.model.hyperparameters.items()))},
        "evaluation": {"metric": Metric(spec.evaluation.metric).value, "k": 10,
                       "holdoutFraction": spec.evaluation.holdout_fraction,
                       "positiveRating": spec.evaluation.positive_rating,
                       "championAlias": spec.evaluation.champion_alias},
    }
    return config, labels_env + items_env


def train_workload(spec: TrainingJobSpec, run: str, owner: OwnerRef, namespace: str, image: str,
                   features: FeatureInput, labels: TableInput, items: TableInput | None, tracking: Tracking,
                   training: Training) -> Workload:
    """One run of the TrainingJob: named `run` (a name stands for one run), owned by the TrainingJob.
    Retries are Kubeflow's (`training.backoff_limit`), so the workload itself asks for none."""
    config, secret_env = train_config(spec, run, owner, namespace, image, features, labels, items, tracking)
    return Workload(
        name=run,
        namespace=namespace,
        component=COMPONENT,
        args=("--config-file", CONFIG_FILE),
        files={CONFIG_FILE: json.dumps(config, indent=1, sort_keys=True)},
        secret_env=secret_env,
        owner=owner,
        labels=trainingjob_label(owner.name),
        retries=training.backoff_limit,
        training=training,
    )
