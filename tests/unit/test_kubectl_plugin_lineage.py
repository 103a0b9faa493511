"""`kubectl loom lineage`, pure: the walk from a served revision back to the Iceberg snapshots its
training read, over objects shaped as the operator writes their statuses, and its tree and data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from loom.api.kinds import DATALAKE, FEATURESET, INFERENCESERVICE, TRAININGJOB, Kind
from loom.kubectl.lineage import NotTraceable, trace, tree
from loom.kubectl.render import tree as text

NS = "ml"
RUN_2 = "movielens-two-tower-5e6f7a8b"
RUN_1 = "movielens-two-tower-1a2b3c4d"
LINEAGE_2 = {"snapshots": [{"table": "user-features (FeatureSet)", "snapshotId": 7002},
                           {"table": "movielens/ratings", "snapshotId": 8002},
                           {"table": "movielens/movies", "snapshotId": 9001}],
             "featureViewVersion": "fv-abc", "runId": "0a1b2c", "loggedModelId": "m-42",
             "registeredModel": "movielens-two-tower", "modelVersion": "2",
             "modelUri": "models:/movielens-two-tower/2", "image": "local"}


def meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NS}


TJ = {"kind": "TrainingJob", "metadata": meta("movielens-two-tower"),
      "spec": {"dataset": {"featureSetRef": {"name": "user-features"}}, "model": {"name": "movielens-two-tower"}},
      "status": {"modelVersion": "2", "lineage": LINEAGE_2, "runs": [
          {"name": RUN_2, "phase": "Succeeded", "reason": "new FeatureSet snapshot 7002 (was 7001)",
           "snapshotId": 7002, "modelVersion": "2", "startTime": "2026-03-01T10:00:00Z",
           "completionTime": "2026-03-01T10:20:00Z",
           "inputs": [{"table": "movielens/ratings", "snapshotId": 8002},
                      {"table": "movielens/movies", "snapshotId": 9001}]},
          {"name": RUN_1, "phase": "Succeeded", "reason": "first run", "snapshotId": 7001, "modelVersion": "1",
           "inputs": [{"table": "movielens/ratings", "snapshotId": 8001},
                      {"table": "movielens/movies", "snapshotId": 9001}]}]}}
FS = {"kind": "FeatureSet", "metadata": meta("user-features"),
      "spec": {"source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}}},
      "status": {"sourceSnapshotId": 7003, "featureViewVersion": "fv-abc"}}
LAKE = {"kind": "DataLake", "metadata": meta("movielens"), "spec": {},
        "status": {"tables": [{"name": "ratings", "currentSnapshotId": 8003},
                              {"name": "movies", "currentSnapshotId": 9001},
                              {"name": "user_features", "currentSnapshotId": 7003}]}}


def isvc(version: str, spec_model: dict[str, Any], lineage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "InferenceService", "metadata": meta("movie-recommender"), "spec": {"model": spec_model},
            "status": {"phase": "Succeeded", "lineage": lineage,
                       "stable": {"name": f"movie-recommender-v{version}", "modelName": "movielens-two-tower",
                                  "modelVersion": version, "modelUri": f"file:///artifacts/{version}"}}}


class Objects:
    def __init__(self, *objects: Mapping[str, Any]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    def get(self, kind: Kind, name: str) -> Mapping[str, Any] | None:
        return self.objects.get((kind.kind, name))

    def list(self, kind: Kind) -> list[Mapping[str, Any]]:
        return [o for (k, _), o in self.objects.items() if k == kind.kind]


def test_a_served_version_traces_to_its_run_and_every_snapshot_it_read() -> None:
    service = isvc("2", {"trainingJobRef": {"name": "movielens-two-tower"}}, LINEAGE_2)
    found = trace(INFERENCESERVICE, service, Objects(TJ, FS, LAKE))
    assert found.gaps == ()
    data = found.to_dict()
    assert data["serving"] == {"inferenceService": "movie-recommender", "phase": "Succeeded",
                               "revision": "movie-recommender-v2", "canary": None}
    assert data["model"] == {"name": "movielens-two-tower", "version": "2", "uri": "models:/movielens-two-tower/2"}
    assert data["run"] == {"trainingJob": "movielens-two-tower", "name": RUN_2, "phase": "Succeeded",
                           "reason": "new FeatureSet snapshot 7002 (was 7001)", "startTime": "2026-03-01T10:00:00Z",
                           "completionTime": "2026-03-01T10:20:00Z", "runId": "0a1b2c", "loggedModelId": "m-42",
                           "image": "local"}
    assert data["features"] == {"featureSet": "user-features", "snapshotId": 7002, "featureViewVersion": "fv-abc",
                                "source": "movielens/user_features", "materializedSnapshotId": 7003,
                                "materializedFeatureViewVersion": "fv-abc"}
    assert data["tables"] == [{"table": "movielens/ratings", "snapshotId": 8002, "currentSnapshotId": 8003},
                              {"table": "movielens/movies", "snapshotId": 9001, "currentSnapshotId": 9001}]
    assert text(tree(found)) == f"""\
InferenceService ml/movie-recommender (Succeeded)
│   stable revision movie-recommender-v2
└── model movielens-two-tower version 2 (models:/movielens-two-tower/2)
    └── TrainingJob movielens-two-tower, run {RUN_2} (Succeeded, new FeatureSet snapshot 7002 (was 7001))
        │   MLflow run 0a1b2c, logged model m-42, started 2026-03-01T10:00:00Z, finished 2026-03-01T10:20:00Z, image local
        ├── FeatureSet user-features: snapshot 7002 of movielens/user_features, feature view fv-abc (materialized now: 7003, fv-abc)
        ├── DataLake table movielens/ratings: snapshot 8002 (current 8003)
        └── DataLake table movielens/movies: snapshot 9001 (current)
"""


def test_a_version_served_by_alias_is_found_in_the_trainingjob_that_registered_it() -> None:
    """model.uri names an alias, so no reference and no lineage on the service: the TrainingJob of
    the same registered model whose runs recorded the version is the one; an older version's run
    still names its snapshots, but its MLflow run id went with the lineage a later run replaced."""
    found = trace(INFERENCESERVICE, isvc("1", {"uri": "models:/movielens-two-tower@champion"}),
                  Objects(TJ, FS, LAKE))
    assert found.run is not None and (found.run.name, found.run.run_id) == (RUN_1, None)
    assert found.features is not None and found.features.snapshot_id == 7001
    assert found.features.feature_view_version is None
    assert [(t.table, t.snapshot_id) for t in found.tables] == [("movielens/ratings", 8001), ("movielens/movies", 9001)]
    assert found.gaps == ("the MLflow run id of version 1 is no longer in TrainingJob movielens-two-tower's status "
                          "(a later run's lineage replaced it)",)
    assert text(tree(found)).endswith("└── ? " + found.gaps[0] + "\n")


def test_a_trainingjob_traces_its_last_registered_version() -> None:
    found = trace(TRAININGJOB, TJ, Objects(FS, LAKE))
    assert found.serving is None and found.model is not None and found.model.version == "2"
    assert found.run is not None and found.run.name == RUN_2 and found.run.run_id == "0a1b2c"
    assert text(tree(found)).startswith("model movielens-two-tower version 2 (models:/movielens-two-tower/2)\n"
                                        "└── TrainingJob movielens-two-tower, run ")


def test_a_trainingjob_without_a_version_yet_traces_its_newest_run() -> None:
    running = {**TJ, "status": {"runs": [{"name": RUN_1, "phase": "Running", "reason": "first run",
                                          "snapshotId": 7001, "inputs": []}]}}
    found = trace(TRAININGJOB, running, Objects(FS, LAKE))
    assert found.model is None and found.run is not None and found.run.phase == "Running"
    assert found.gaps == (f"run {RUN_1} registered no version yet",)


@pytest.mark.parametrize("service, objects, gap", [
    ({"kind": "InferenceService", "metadata": meta("s"), "spec": {}, "status": {}}, Objects(),
     "InferenceService s serves no revision yet"),
    (isvc("5", {"uri": "models:/movielens-two-tower@champion"}), Objects(TJ),
     "no TrainingJob in ml records version 5 of movielens-two-tower"),
    (isvc("2", {"trainingJobRef": {"name": "gone"}}), Objects(TJ),
     "TrainingJob gone records version 2 of movielens-two-tower (not found)"),
])
def test_what_cannot_be_traced_is_said(service: dict[str, Any], objects: Objects, gap: str) -> None:
    assert trace(INFERENCESERVICE, service, objects).gaps == (gap,)


@pytest.mark.parametrize("kind", [DATALAKE, FEATURESET])
def test_lineage_starts_at_a_service_or_a_trainingjob(kind: Kind) -> None:
    with pytest.raises(NotTraceable, match="InferenceService or a TrainingJob"):
        trace(kind, LAKE, Objects())
