"""The TrainingJob decision as tables: (spec, observed runs/MLflow/references, now) -> conditions,
status fields and actions. No I/O: observations are plain values."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetStatus
from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.trainingjob import RunRecord, TableSnapshot, TrainingJobSpec, TrainingJobStatus
from loom.builders.train import Tracking, run_name
from loom.domain.training import RETRAIN_ANNOTATION, Replicas, TrainerProgress
from loom.domain.workloads import OwnerRef, Phase, WorkloadStatus
from loom.drivers.mlflow_tracking import RegisteredVersion, TrackedRun
from loom.gpuprofiles import load_profiles
from loom.services.references import Reference
from loom.services.trainingjob.actions import DeleteRun, MoveAlias, RemoveAnnotation, SubmitRun
from loom.services.trainingjob.decide import Settings, decide, requested_run
from loom.services.trainingjob.observe import FeatureStore, LakeTable, Tracked, TrainingJobObserved, Unavailable
from tests.conftest import ROOT

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
PROFILES = load_profiles(ROOT / "gpu-profiles")
SETTINGS = Settings(
    namespace="ml", owner=OwnerRef("loom.dev/v1alpha1", "TrainingJob", "recsys", "uid-1"), image="trainer:1",
    tracking=Tracking("sqlite:///mlflow.db", "ml/recsys", None), progress_seconds=10, retry_seconds=15,
)
READY_BODY = {"metadata": {"generation": 1},
              "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                         "observedGeneration": 1}]}}
LAKE = DataLakeSpec.model_validate(yaml.safe_load((ROOT / "samples" / "datalake.yaml").read_text())["spec"])


def spec(**changes: Any) -> TrainingJobSpec:
    raw = yaml.safe_load(Path(ROOT / "samples" / "trainingjob.yaml").read_text())["spec"]
    for key, value in changes.items():
        raw[key] = value
    return TrainingJobSpec.model_validate(raw)


def observed(snapshot: int | None = 100, runs: list[RunRecord] | None = None,
             executor: dict[str, WorkloadStatus] | None = None, tracked: dict[str, Tracked] | None = None,
             aliases: dict[str, str | None] | None = None, features: dict[str, Any] | None = READY_BODY,
             **status: Any) -> TrainingJobObserved:
    return TrainingJobObserved(
        features=Reference(FEATURESET, "user-features", features),
        labels=Reference(DATALAKE, "movielens", READY_BODY),
        items=Reference(DATALAKE, "movielens", READY_BODY),
        status=TrainingJobStatus(runs=runs or [], **status),
        feature_store=FeatureStore("sqlite:///registry.db", "loom_ml", "user_features", "userId"),
        feature_status=FeatureSetStatus(source_snapshot_id=snapshot, feature_view_version="fv1"),
        label_table=LakeTable("movielens", "ratings", LAKE, 200),
        item_table=LakeTable("movielens", "movies", LAKE, 300),
        profiles=PROFILES,
        runs={k: (v,) for k, v in (executor or {}).items()},
        tracked=tracked or {},
        aliases=aliases if aliases is not None else {"challenger": None, "champion": None},
    )


def conditions(decision: Any) -> dict[str, tuple[bool | None, str]]:
    return {c.type: (c.status, c.reason) for c in decision.outcome.conditions}


RUN = run_name("recsys", 100)
INPUTS = [TableSnapshot(table="movielens/ratings", snapshot_id=200), TableSnapshot(table="movielens/movies", snapshot_id=300)]


def record(phase: str, name: str = RUN, snapshot: int = 100, **more: Any) -> RunRecord:
    return RunRecord(name=name, phase=phase, snapshot_id=snapshot, inputs=INPUTS, **more)


def test_data_not_ready_starts_nothing_and_says_which_reference() -> None:
    decision = decide(spec(), observed(features=None), SETTINGS, NOW)
    assert conditions(decision)["DataReady"] == (False, "FeatureSetNotFound")
    ready = decision.outcome.ready
    assert (ready.status, ready.reason) == (False, "FeatureSetNotFound")
    assert decision.actions == ()


def test_a_featureset_without_a_snapshot_is_not_ready_data() -> None:
    decision = decide(spec(), observed(snapshot=None), SETTINGS, NOW)
    assert conditions(decision)["DataReady"] == (False, "NoSnapshot")
    assert decision.actions == ()


def test_ready_data_starts_the_first_run_with_its_inputs_frozen_in_train_json() -> None:
    decision = decide(spec(), observed(), SETTINGS, NOW)
    [submit] = decision.actions
    assert isinstance(submit, SubmitRun)
    workload = submit.workload
    assert workload.name == RUN and workload.component == "train"
    assert workload.training is not None and workload.training.node.profile == "nvidia-t4"
    assert workload.training.num_proc_per_node == 1 and workload.training.backoff_limit == 2
    assert workload.training.active_deadline_seconds == 7200
    config = json.loads(workload.files["train.json"])
    assert config["features"] == {"registry": "sqlite:///registry.db", "project": "loom_ml", "view": "user_features",
                                  "snapshotId": 100, "featureViewVersion": "fv1"}
    assert (config["labels"]["snapshotId"], config["items"]["snapshotId"]) == (200, 300)
    assert config["labels"]["userField"] == "userId" and config["labels"]["table"] == "movielens.ratings"
    assert config["evaluation"]["championAlias"] == "champion"
    runs = decision.outcome.fields["runs"]
    assert [(r.name, r.phase, r.snapshot_id, r.reason) for r in runs] == [(RUN, "Pending", 100, "first run")]
    assert conditions(decision)["Trained"] == (None, "Pending")
    # nothing to poll before it runs: the child's status change brings the TrainingJob back
    assert decision.outcome.requeue_at is None and decision.outcome.retry_after is None


def test_a_running_run_shows_progress_from_mlflow_and_is_read_again_soon() -> None:
    started = NOW - timedelta(seconds=90)
    tracked = TrackedRun("r1", "RUNNING", started, {"epoch": 3, "loss": 0.41, "recall_at_10": 0.061},
                         {"epochs": "8"}, {}, (started + timedelta(seconds=30), started + timedelta(seconds=60),
                                                started + timedelta(seconds=90)))
    running = WorkloadStatus(RUN, Phase.RUNNING, started_at=started, replicas=Replicas(active=1))
    decision = decide(spec(), observed(runs=[record("Pending")], executor={RUN: running},
                                       tracked={RUN: Tracked(tracked)}), SETTINGS, NOW)
    progress = decision.outcome.fields["progress"]
    assert (progress.epoch, progress.total_epochs, progress.percent, progress.loss) == (3, 8, 38, 0.41)
    assert progress.metrics == {"recall@10": 0.061} and progress.estimated_remaining_seconds == 150
    assert decision.outcome.fields["phase"] == "Running" and decision.outcome.fields["replicas"].active == 1
    status, reason = conditions(decision)["Trained"]
    assert (status, reason) == (None, "Running")
    assert "epoch 3/8 (38%)" in next(c.message for c in decision.outcome.conditions if c.type == "Trained")
    assert decision.outcome.requeue_at == NOW + timedelta(seconds=10)
    assert decision.actions == ()  # the executor has it as the spec wants it: no write


def test_trainjob_trainer_status_wins_for_percent_and_time_left() -> None:
    running = WorkloadStatus(RUN, Phase.RUNNING, trainer=TrainerProgress(55, 42, {"loss": 0.3}))
    decision = decide(spec(), observed(runs=[record("Running")], executor={RUN: running},
                                       tracked={RUN: Tracked(None)}), SETTINGS, NOW)
    progress = decision.outcome.fields["progress"]
    assert (progress.percent, progress.estimated_remaining_seconds) == (55, 42)


@pytest.mark.parametrize(("suspend", "phase", "submitted"), [
    (True, Phase.RUNNING, True),      # suspend it
    (True, Phase.SUSPENDED, False),   # it is: nothing to write
    (False, Phase.SUSPENDED, True),   # resume it
    (False, Phase.RUNNING, False),
])
def test_suspend_reaches_the_run_both_ways_and_only_when_it_differs(suspend: bool, phase: Phase,
                                                                   submitted: bool) -> None:
    seen = WorkloadStatus(RUN, phase)
    decision = decide(spec(suspend=suspend), observed(runs=[record("Running")], executor={RUN: seen}),
                      SETTINGS, NOW)
    submits = [a for a in decision.actions if isinstance(a, SubmitRun)]
    assert [s.workload.training.suspend for s in submits if s.workload.training] == ([suspend] if submitted else [])


def test_a_suspended_run_is_not_polled() -> None:
    suspended = WorkloadStatus(RUN, Phase.SUSPENDED)
    decision = decide(spec(suspend=True), observed(runs=[record("Running")], executor={RUN: suspended}),
                      SETTINGS, NOW)
    assert conditions(decision)["Trained"] == (None, "Suspended")
    assert decision.outcome.fields["phase"] == "Suspended" and decision.outcome.requeue_at is None


def test_a_run_the_executor_lost_is_submitted_again() -> None:
    decision = decide(spec(), observed(runs=[record("Running")]), SETTINGS, NOW)
    assert [a.workload.name for a in decision.actions if isinstance(a, SubmitRun)] == [RUN]


def _finished(metrics: dict[str, float], aliases: dict[str, str | None], **spec_changes: Any) -> Any:
    done = WorkloadStatus(RUN, Phase.SUCCEEDED, started_at=NOW - timedelta(minutes=5), finished_at=NOW)
    run = TrackedRun("run-1", "FINISHED", NOW - timedelta(minutes=5), metrics, {"epochs": "8"},
                     {"loom.dev/feature-view-version": "fv1"})
    version = RegisteredVersion("movielens-two-tower", "4", "run-1", "m-abc", "models:/m-abc")
    return decide(spec(**spec_changes), observed(runs=[record("Running")], executor={RUN: done},
                                                 tracked={RUN: Tracked(run, version)}, aliases=aliases),
                  SETTINGS, NOW)


GOOD = {"recall_at_10": 0.09, "popularity_recall_at_10": 0.044, "champion_recall_at_10": 0.07, "epoch": 8, "loss": 1}


def test_a_version_that_passes_the_gate_gets_the_alias_and_full_lineage() -> None:
    decision = _finished(GOOD, {"challenger": "3", "champion": "2"})
    assert decision.actions[-1] == MoveAlias("sqlite:///mlflow.db", "movielens-two-tower", "challenger", "4")
    gate = decision.outcome.fields["gate"]
    assert gate.passed and gate.alias == "challenger" and "beats the champion (version 2)" in gate.reason
    lineage = decision.outcome.fields["lineage"]
    assert (lineage.run_id, lineage.logged_model_id, lineage.model_version) == ("run-1", "m-abc", "4")
    assert lineage.model_uri == "models:/movielens-two-tower/4" and lineage.feature_view_version == "fv1"
    assert [(s.table, s.snapshot_id) for s in lineage.snapshots] == [
        ("user-features (FeatureSet)", 100), ("movielens/ratings", 200), ("movielens/movies", 300)]
    assert decision.outcome.fields["metrics"]["recall@10"] == 0.09
    assert decision.outcome.fields["runs"][0].model_version == "4"
    assert conditions(decision)["GatePassed"] == (True, "GatePassed")
    assert conditions(decision)["Ready"] == (True, "ModelRegistered")
    assert decision.outcome.requeue_at is None


@pytest.mark.parametrize(("metrics", "aliases", "changes", "why"), [
    ({**GOOD, "recall_at_10": 0.05}, {"champion": None}, {}, "below the required 1.5x"),
    ({**GOOD, "recall_at_10": 0.068}, {"champion": "2"}, {}, "does not beat the champion (version 2) at 0.0700"),
    ({k: v for k, v in GOOD.items() if k != "champion_recall_at_10"}, {"champion": "2"}, {},
     "did not score the champion"),
    ({"recall_at_10": 0.09}, {}, {}, "no popularity_recall_at_10"),
])
def test_a_version_that_fails_the_gate_is_registered_but_keeps_no_alias(
    metrics: dict[str, float], aliases: dict[str, str | None], changes: dict[str, Any], why: str
) -> None:
    decision = _finished(metrics, aliases, **changes)
    assert not any(isinstance(a, MoveAlias) for a in decision.actions)
    gate = decision.outcome.fields["gate"]
    assert not gate.passed and why in gate.reason
    assert conditions(decision)["GatePassed"] == (False, "GateFailed")
    assert decision.outcome.fields["model_version"] == "4"
    assert conditions(decision)["Ready"] == (True, "ModelRegistered")  # the version is there, unaliased


def test_no_champion_needed_when_the_gate_does_not_ask_for_one() -> None:
    decision = _finished({**GOOD, "recall_at_10": 0.068}, {"champion": "2"},
                         evaluation={"mustBeatChampion": False})
    assert decision.outcome.fields["gate"].passed


def test_an_alias_already_in_place_is_not_moved_again() -> None:
    decision = _finished(GOOD, {"challenger": "4", "champion": "2"})
    assert not any(isinstance(a, MoveAlias) for a in decision.actions)


def test_a_succeeded_run_whose_version_is_not_visible_yet_is_looked_at_again() -> None:
    done = WorkloadStatus(RUN, Phase.SUCCEEDED, finished_at=NOW)
    decision = decide(spec(), observed(runs=[record("Running")], executor={RUN: done},
                                       tracked={RUN: Tracked(None)}), SETTINGS, NOW)
    assert decision.outcome.retry_after == 15 and "gate" not in {k for k, v in decision.outcome.fields.items() if v}


def test_a_new_snapshot_waits_for_the_active_run() -> None:
    running = WorkloadStatus(RUN, Phase.RUNNING)
    decision = decide(spec(), observed(snapshot=101, runs=[record("Running")], executor={RUN: running}),
                      SETTINGS, NOW)
    assert not any(isinstance(a, SubmitRun) for a in decision.actions)
    assert len(decision.outcome.fields["runs"]) == 1


def test_a_new_snapshot_after_a_finished_run_retrains_and_keeps_history() -> None:
    old = [record("Succeeded", name=run_name("recsys", s), snapshot=s, model_version=str(s)) for s in (99, 98, 97)]
    decision = decide(spec(), observed(snapshot=100, runs=old, model_version="99"), SETTINGS, NOW)
    submits = [a for a in decision.actions if isinstance(a, SubmitRun)]
    assert [s.workload.name for s in submits] == [RUN]
    assert decision.outcome.fields["runs"][0].reason == "new FeatureSet snapshot 100 (was 99)"
    # history limit 3: the three finished runs stay; a fourth finished one would be deleted
    assert not any(isinstance(a, DeleteRun) for a in decision.actions)
    four = [*old, record("Succeeded", name=run_name("recsys", 96), snapshot=96, model_version="96")]
    decision = decide(spec(), observed(snapshot=100, runs=four, model_version="99"), SETTINGS, NOW)
    assert [a.name for a in decision.actions if isinstance(a, DeleteRun)] == [run_name("recsys", 96)]
    assert [r.snapshot_id for r in decision.outcome.fields["runs"]] == [100, 99, 98, 97]


def test_without_retrain_a_new_snapshot_starts_nothing() -> None:
    old = [record("Succeeded", name=run_name("recsys", 99), snapshot=99, model_version="1")]
    decision = decide(spec(retrain={"onNewFeatures": False}), observed(snapshot=100, runs=old, model_version="1"),
                      SETTINGS, NOW)
    assert decision.actions == () and conditions(decision)["Ready"] == (True, "ModelRegistered")


def test_a_failed_run_says_why_and_is_not_restarted_for_the_same_snapshot() -> None:
    failed = WorkloadStatus(RUN, Phase.FAILED, message="CUDA out of memory", finished_at=NOW)
    decision = decide(spec(), observed(runs=[record("Running")], executor={RUN: failed}), SETTINGS, NOW)
    assert decision.actions == ()
    assert conditions(decision)["Trained"] == (False, "Failed")
    ready = decision.outcome.ready
    assert ready.status is False and "CUDA out of memory" in ready.message


def test_an_unknown_gpu_profile_lists_the_available_ones_and_is_not_retried() -> None:
    decision = decide(spec(resources={"gpuProfile": "tpu-v5"}), observed(), SETTINGS, NOW)
    ready = decision.outcome.ready
    assert (ready.status, ready.reason) == (False, "UnknownGpuProfile")
    assert "nvidia-t4" in ready.message and "nvidia-h200-141gb" in ready.message
    assert decision.actions == () and decision.outcome.retry_after is None


def test_a_gpu_profile_sets_one_process_per_gpu() -> None:
    decision = decide(spec(resources={"gpuProfile": "nvidia-h100-80gb"}), observed(), SETTINGS, NOW)
    [submit] = decision.actions
    assert isinstance(submit, SubmitRun) and submit.workload.training
    assert submit.workload.training.num_proc_per_node == 8


def test_an_unreadable_executor_is_retried_without_forgetting_the_runs() -> None:
    o = replace(observed(runs=[record("Running")]), runs=Unavailable("connection refused"))
    decision = decide(spec(), o, SETTINGS, NOW)
    assert decision.outcome.retry_after == 15
    assert [r.name for r in decision.outcome.fields["runs"]] == [RUN]


def test_a_finished_runs_child_goes_after_its_ttl_but_its_record_stays() -> None:
    done = WorkloadStatus(RUN, Phase.SUCCEEDED, finished_at=NOW - timedelta(minutes=30))
    finished = record("Succeeded", model_version="1", completion_time=NOW - timedelta(minutes=30))
    early = decide(spec(ttlAfterFinished="1h"), observed(runs=[finished], executor={RUN: done}, model_version="1"),
                   SETTINGS, NOW)
    assert not any(isinstance(a, DeleteRun) for a in early.actions)
    assert early.outcome.requeue_at == NOW + timedelta(minutes=30)
    late = decide(spec(ttlAfterFinished="20m"), observed(runs=[finished], executor={RUN: done}, model_version="1"),
                  SETTINGS, NOW)
    assert [a.name for a in late.actions if isinstance(a, DeleteRun)] == [RUN]
    assert [r.name for r in late.outcome.fields["runs"]] == [RUN]
    gone = decide(spec(ttlAfterFinished="20m"), observed(runs=[finished], model_version="1"), SETTINGS, NOW)
    assert gone.actions == () and gone.outcome.fields["runs"][0].phase == "Succeeded"


REQUEST = "2026-01-01T11:59:00Z"
REQUESTED = requested_run("recsys", 100, REQUEST, RUN)
DONE = WorkloadStatus(RUN, Phase.SUCCEEDED, finished_at=NOW - timedelta(minutes=5))


def events(decision: Any) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in decision.outcome.events]


def test_a_retrain_request_starts_a_run_of_the_current_snapshot_and_is_cleared() -> None:
    finished = observed(runs=[record("Succeeded", model_version="1")], executor={RUN: DONE}, model_version="1")
    decision = decide(spec(), replace(finished, retrain=REQUEST), SETTINGS, NOW)
    submit, remove = decision.actions
    assert isinstance(submit, SubmitRun) and submit.workload.name == REQUESTED != RUN
    assert json.loads(submit.workload.files["train.json"])["features"]["snapshotId"] == 100
    assert remove == RemoveAnnotation(RETRAIN_ANNOTATION)
    runs = decision.outcome.fields["runs"]
    assert [(r.name, r.phase, r.snapshot_id) for r in runs] == [(REQUESTED, "Pending", 100), (RUN, "Succeeded", 100)]
    assert runs[0].reason == "retrain requested by annotation loom.dev/retrain" and runs[0].inputs == INPUTS
    assert events(decision) == [("Normal", "RetrainRequested")]
    assert conditions(decision)["Trained"] == (None, "Pending")


@pytest.mark.parametrize("executor, features, ignored", [
    ({RUN: WorkloadStatus(RUN, Phase.RUNNING)}, READY_BODY, f"run {RUN} is Running; ask again once it has finished"),
    ({RUN: DONE}, {"metadata": {"generation": 1}, "status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "QualityGateFailed", "observedGeneration": 1}]}},
     "user-features"),
])
def test_a_retrain_request_that_cannot_start_a_run_is_cleared_with_a_warning_saying_why(
        executor: dict[str, WorkloadStatus], features: dict[str, Any], ignored: str) -> None:
    o = observed(runs=[record("Running")], executor=executor, features=features)
    decision = decide(spec(), replace(o, retrain=REQUEST), SETTINGS, NOW)
    assert decision.actions == (RemoveAnnotation(RETRAIN_ANNOTATION),)
    assert [r.name for r in decision.outcome.fields["runs"]] == [RUN]
    [warning] = decision.outcome.events
    assert (warning.type, warning.reason) == ("Warning", "RequestIgnored")
    assert warning.message.startswith("loom.dev/retrain ignored: ") and ignored in warning.message


def test_a_retrain_request_seen_again_after_its_run_started_only_clears_the_annotation() -> None:
    runs = [record("Pending", name=REQUESTED), record("Succeeded", model_version="1")]
    o = observed(runs=runs, executor={REQUESTED: WorkloadStatus(REQUESTED, Phase.RUNNING), RUN: DONE})
    decision = decide(spec(), replace(o, retrain=REQUEST), SETTINGS, NOW)
    assert decision.actions == (RemoveAnnotation(RETRAIN_ANNOTATION),) and decision.outcome.events == ()
    assert [r.name for r in decision.outcome.fields["runs"]] == [REQUESTED, RUN]


def test_the_same_request_value_asked_again_later_starts_another_run() -> None:
    again = requested_run("recsys", 100, REQUEST, REQUESTED)
    runs = [record("Succeeded", name=REQUESTED, model_version="2"), record("Succeeded", model_version="1")]
    o = observed(runs=runs, executor={REQUESTED: replace(DONE, name=REQUESTED), RUN: DONE}, model_version="2")
    decision = decide(spec(), replace(o, retrain=REQUEST), SETTINGS, NOW)
    assert [a.workload.name for a in decision.actions if isinstance(a, SubmitRun)] == [again]
    assert again not in (REQUESTED, RUN)


def test_a_retrain_request_is_answered_by_the_run_a_new_snapshot_starts() -> None:
    old = [record("Succeeded", name=run_name("recsys", 99), snapshot=99, model_version="1")]
    decision = decide(spec(), replace(observed(runs=old, model_version="1"), retrain=REQUEST), SETTINGS, NOW)
    submit, remove = decision.actions
    assert isinstance(submit, SubmitRun) and submit.workload.name == RUN
    assert remove == RemoveAnnotation(RETRAIN_ANNOTATION) and decision.outcome.events == ()
