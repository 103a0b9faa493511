"""Bad manifests are refused by the API server itself (schema, enums, ranges, CEL), and the message
names the offending field. `--dry-run=server` runs the full admission chain without storing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Kubectl, sample

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set a dotted path (list indexes as numbers) in the object's spec."""

    def mutate(obj: dict[str, Any]) -> None:
        node: Any = obj["spec"]
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is _DELETE:
            del node[int(leaf) if leaf.isdigit() else leaf]
        else:
            node[int(leaf) if leaf.isdigit() else leaf] = value

    return mutate


_DELETE = object()

CASES: dict[str, list[tuple[str, Mutation, str]]] = {
    "datalake": [
        ("catalog type enum", _set("catalog.type", "mysql"), "spec.catalog.type"),
        ("catalog required", _set("catalog", _DELETE), "spec.catalog: Required value"),
        ("namespace pattern", _set("namespace", "9-bad"), "spec.namespace"),
        ("no tables", _set("tables", []), "spec.tables"),
        ("iceberg type", _set("tables.0.columns.0.type", "varchar"), "spec.tables[0].columns[0].type"),
        ("transform", _set("tables.0.partitionBy.0.transform", "bucket[0]"), "spec.tables[0].partitionBy[0].transform"),
        ("partition column exists", _set("tables.0.partitionBy.0.column", "nope"), "partitionBy[].column must name a column"),
        ("sort column exists", _set("tables.0.sortBy.0.column", "nope"), "sortBy[].column must name a column"),
        ("duplicate column", lambda o: o["spec"]["tables"][0]["columns"].append({"name": "userId", "type": "int"}),
         "spec.tables[0].columns[4]: Duplicate value"),
        ("ingest table exists", _set("ingest.0.table", "nope"), "ingest[].table must name a table in spec.tables"),
        ("ingest uri scheme", _set("ingest.0.source.uri", "http://example/x.parquet"), "spec.ingest[0].source.uri"),
        ("ingest format", _set("ingest.0.source.format", "xml"), "spec.ingest[0].source.format"),
        ("ingest schedule", _set("ingest.0.schedule", "every five minutes"), "spec.ingest[0].schedule"),
        ("retain last", _set("maintenance.expireSnapshots.retainLast", 0), "spec.maintenance.expireSnapshots.retainLast"),
        ("duration", _set("maintenance.expireSnapshots.olderThan", "3 days"), "spec.maintenance.expireSnapshots.olderThan"),
        ("deletion policy", _set("deletionPolicy", "Destroy"), "spec.deletionPolicy"),
        ("unknown field", _set("bogus", 1), 'unknown field "spec.bogus"'),
        ("cron minute", _set("ingest.0.schedule", "61 * * * *"), "spec.ingest[0].schedule"),
        ("cron day of month", _set("ingest.0.schedule", "* * 32 * *"), "spec.ingest[0].schedule"),
        ("cron month", _set("ingest.0.schedule", "* * * 13 *"), "spec.ingest[0].schedule"),
        ("cron day of week", _set("maintenance.compaction.schedule", "0 0 * * 7"), "spec.maintenance.compaction.schedule"),
        ("30-digit duration", _set("maintenance.expireSnapshots.olderThan", "9" * 30 + "d"),
         "spec.maintenance.expireSnapshots.olderThan"),
        ("duration over ten years", _set("maintenance.expireSnapshots.olderThan", "3651d"),
         "spec.maintenance.expireSnapshots.olderThan: Invalid value: \"string\": must be at most 3650d"),
        ("oversize property value", _set("catalog.properties", {"token": "x" * 100_000}),
         "spec.catalog.properties.token: Too long"),
        ("too many properties", _set("catalog.properties", {f"k{i}": "v" for i in range(33)}),
         "spec.catalog.properties: Too many"),
        ("oversize property key", _set("tables.0.properties", {"k" * 254: "v"}),
         "spec.tables[0].properties: Invalid value: \"object\": keys must be 1 to 253 characters long"),
        ("oversize doc", _set("tables.0.columns.0.doc", "x" * 2000), "spec.tables[0].columns[0].doc: Too long"),
        ("bucket digits", _set("tables.0.partitionBy.0.transform", "bucket[99999999999]"),
         "spec.tables[0].partitionBy[0].transform"),
    ],
    "featureset": [
        ("source required", _set("source.dataLakeRef", _DELETE), "spec.source.dataLakeRef: Required value"),
        ("ref name", _set("source.dataLakeRef.name", "Bad_Name"), "spec.source.dataLakeRef.name"),
        ("no entities", _set("entities", []), "spec.entities"),
        ("join keys", _set("entities.0.joinKeys", []), "spec.entities[0].joinKeys"),
        ("value type", _set("entities.0.valueType", "FLOAT"), "spec.entities[0].valueType"),
        ("dtype", _set("features.0.dtype", "Decimal"), "spec.features[0].dtype"),
        ("ttl", _set("ttl", "forever"), "spec.ttl"),
        ("online store", _set("online.store", "memcached"), "spec.online.store"),
        ("schedule", _set("materialization.schedule", "hourly"), "spec.materialization.schedule"),
        ("null fraction", _set("quality.features.0.maxNullFraction", 1.5), "spec.quality.features[0].maxNullFraction"),
        ("quality feature exists", _set("quality.features.0.name", "nope"), "quality.features[].name must name one of spec.features"),
        ("min rows", _set("quality.minRows", -1), "spec.quality.minRows"),
        ("30-digit ttl", _set("ttl", "999999999999999999999999999999d"), "spec.ttl"),
        ("ttl over ten years", _set("ttl", "87601h"), 'spec.ttl: Invalid value: "string": must be at most 3650d'),
        ("cron month name", _set("materialization.schedule", "0 0 * foo *"), "spec.materialization.schedule"),
        ("oversize description", _set("entities.0.description", "x" * 2000), "spec.entities[0].description: Too long"),
    ],
    "trainingjob": [
        ("dataset required", _set("dataset", _DELETE), "spec.dataset: Required value"),
        ("model name", _set("model.name", "bad name!"), "spec.model.name"),
        ("entrypoint", _set("model.entrypoint", "rm -rf /"), "spec.model.entrypoint"),
        ("alias", _set("model.alias", "Champion!"), "spec.model.alias"),
        ("no nodes", _set("numNodes", 0), "spec.numNodes"),
        ("nodes too many", _set("numNodes", 1000), "spec.numNodes"),
        ("procs per node", _set("numProcPerNode", 0), "spec.numProcPerNode"),
        ("backend", _set("backend", "MPIJob"), "spec.backend"),
        ("runtime group", _set("runtimeRef", {"name": "torch", "apiGroup": "kubeflow.org"}), "spec.runtimeRef.apiGroup"),
        ("memory", _set("resources.memory", "lots"), "spec.resources.memory"),
        ("gpu profile", _set("resources.gpuProfile", "A100_80GB"), "spec.resources.gpuProfile"),
        ("holdout fraction", _set("evaluation.holdoutFraction", 1.0), "spec.evaluation.holdoutFraction"),
        ("gate metric", _set("evaluation.metric", "accuracy"), "spec.evaluation.metric"),
        ("history limit", _set("retrain.historyLimit", 0), "spec.retrain.historyLimit"),
        ("queue", _set("queue", "Team Queue"), "spec.queue"),
        ("backoff", _set("backoffLimit", 50), "spec.backoffLimit"),
        ("deadline", _set("activeDeadline", "1 hour"), "spec.activeDeadline"),
        ("label field", _set("dataset.labels.labelField", "not a column"), "spec.dataset.labels.labelField"),
        ("oversize hyperparameters", _set("model.hyperparameters", {k: "x" * 100_000 for k in "abc"}),
         "spec.model.hyperparameters.a: Too long"),
        ("too many hyperparameters", _set("model.hyperparameters", {f"p{i}": "1" for i in range(33)}),
         "spec.model.hyperparameters: Too many"),
        ("30-digit deadline", _set("activeDeadline", "1" * 30 + "s"), "spec.activeDeadline"),
        ("oversize image", _set("image", "x" * 1000), "spec.image: Too long"),
    ],
    "inferenceservice": [
        ("both model sources", _set("model.trainingJobRef", {"name": "movielens-two-tower"}),
         "model must set exactly one of trainingJobRef or uri"),
        ("no model source", _set("model.uri", _DELETE), "model must set exactly one of trainingJobRef or uri"),
        ("uri form", lambda o: o["spec"].update(model={"uri": "s3://bucket/model"}), "spec.model.uri"),
        ("replicas", _set("predictor.replicas", 0), "spec.predictor.replicas"),
        ("runtime", _set("predictor.runtime", "triton"), "spec.predictor.runtime"),
        ("strategy", _set("rollout.strategy", "BlueGreen"), "spec.rollout.strategy"),
        ("step above max", _set("rollout.canary.stepWeight", 60), "canary.stepWeight must not exceed canary.maxWeight"),
        ("step zero", _set("rollout.canary.stepWeight", 0), "spec.rollout.canary.stepWeight"),
        ("max weight", _set("rollout.canary.maxWeight", 101), "spec.rollout.canary.maxWeight"),
        ("interval", _set("rollout.canary.interval", "soon"), "spec.rollout.canary.interval"),
        ("interval over ten years", _set("rollout.canary.interval", "3650d1ms"),
         "spec.rollout.canary.interval: Invalid value"),
        ("oversize query", _set("rollout.canary.metrics.2.query", "x" * 5000),
         "spec.rollout.canary.metrics[2].query: Too long"),
        ("custom metric needs query",
         lambda o: o["spec"]["rollout"]["canary"]["metrics"].append({"name": "ctr", "thresholdRange": {"min": 0.1}}),
         "metrics[].query is required"),
        ("built-in takes no query", _set("rollout.canary.metrics.0.query", "1"), "not allowed for a built-in"),
        ("metric needs a bound", _set("rollout.canary.metrics.0.thresholdRange", {}), "thresholdRange needs min or max"),
        ("unknown placeholder", _set("rollout.canary.metrics.2.query", "up{model=\"{{ model }}\"}"),
         "placeholders are {{ revision }}, {{ namespace }} and {{ interval }}"),
        ("interval under 10s", _set("rollout.canary.interval", "9s"), "canary.interval must be at least 10s"),
        ("step weights beside step weight", _set("rollout.canary.stepWeights", [10, 20]),
         "canary sets stepWeight/maxWeight or stepWeights, not both"),
        ("step weights decrease", lambda o: o["spec"]["rollout"].update(canary={"stepWeights": [30, 20]}),
         "canary.stepWeights must increase"),
        ("mirror", _set("rollout.canary.mirror", 101), "spec.rollout.canary.mirror"),
        ("target", _set("target", "triton"), "spec.target"),
        ("resources beside gpu profile", _set("predictor.gpuProfile", "nvidia-t4"),
         "predictor sets resources or gpuProfile, not both"),
        ("replicas above max", _set("predictor.replicas", 5), "predictor.replicas must not exceed predictor.maxReplicas"),
        ("from alias without an alias uri", _set("model.uri", "models:/movielens-two-tower/3"),
         "rollout.canary.fromAlias needs model.uri naming another alias"),
        ("from alias tracking itself", _set("rollout.canary.fromAlias", "champion"),
         "rollout.canary.fromAlias needs model.uri naming another alias"),
    ],
}

PARAMS = [pytest.param(kind, mutate, expected, id=f"{kind}-{label}") for kind, cases in CASES.items()
          for label, mutate, expected in cases]


def test_at_least_ten_cases_per_kind() -> None:
    assert all(len(cases) >= 10 for cases in CASES.values())


@pytest.mark.parametrize("kind, mutate, expected", PARAMS)
def test_invalid_manifest_is_rejected_naming_the_field(kc: Kubectl, kind: str, mutate: Mutation, expected: str) -> None:
    assert kc.run("create", "--dry-run=server", "-f", "-", stdin=_yaml(sample(kind))).returncode == 0
    bad = copy.deepcopy(sample(kind))
    mutate(bad)
    result = kc.run("create", "--dry-run=server", "-f", "-", stdin=_yaml(bad), check=False)
    assert result.returncode != 0, f"accepted: {bad['spec']}"
    assert expected in result.stderr, result.stderr


@pytest.mark.parametrize(
    "kind, mutate, expected",
    [
        ("datalake", _set("catalog.type", "rest"), "catalog.type is immutable"),
        ("datalake", _set("namespace", "other"), "namespace is immutable"),
        ("trainingjob", _set("dataset.labels.labelField", "stars"), "dataset is immutable"),
        ("trainingjob", _set("numNodes", 4), "numNodes is immutable"),
        ("trainingjob", _set("image", "other:1"), "image is immutable"),
    ],
    ids=["catalog-type", "namespace", "dataset", "num-nodes", "image-added"],
)
def test_immutable_fields_refuse_updates(kc: Kubectl, kind: str, mutate: Mutation, expected: str) -> None:
    obj = sample(kind)
    kc.apply(obj)
    before = kc.get(kind, obj["metadata"]["name"])
    mutate(obj)
    result = kc.apply(obj, check=False)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    after = kc.get(kind, obj["metadata"]["name"])
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def _yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj)
