"""The InferenceService rollout as tables: (canary spec, state from status, observed revisions, analysis
results, now) -> next state, actions, Events, conditions and the next due time. Flagger's rules."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from loom.api.inferenceservice import (
    Analysis,
    CheckResult,
    InferenceServiceSpec,
    InferenceServiceStatus,
    Revision,
    RolloutPhase,
)
from loom.domain.rollout import (
    ABORT_ANNOTATION,
    PROMOTE_ANNOTATION,
    AliasMove,
    MetricQuery,
    MetricResult,
    Promote,
    QueryMetrics,
    RemoveAnnotation,
    RetireRevision,
    RollBack,
    SetWeights,
    Split,
)
from loom.services.inferenceservice.rollout import (
    CANARY_READY,
    PREDICTOR_READY,
    RolloutDecision,
    RolloutObserved,
    RolloutState,
    boundary_after,
    decide_rollout,
)
from tests.conftest import ROOT

T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
NS = "ml"


def rev(version: int) -> Revision:
    return Revision(name=f"movie-recommender-{version}", model_name="movielens-two-tower",
                    model_version=str(version), model_uri=f"file:///mlruns/models/m-{version}/artifacts")


V1, V2, V3 = rev(1), rev(2), rev(3)


def spec(alias: bool = False, strategy: str = "Canary", **canary: Any) -> InferenceServiceSpec:
    raw = yaml.safe_load((ROOT / "samples" / "inferenceservice.yaml").read_text())["spec"]
    if not alias:  # the sample tracks @challenger; without it, a TrainingJob's versions are served
        raw["model"] = {"trainingJobRef": {"name": "movielens-two-tower"}}
        del raw["rollout"]["canary"]["fromAlias"]
    if "stepWeights" in canary:
        del raw["rollout"]["canary"]["stepWeight"], raw["rollout"]["canary"]["maxWeight"]
    raw["rollout"]["canary"].update(canary)
    raw["rollout"]["strategy"] = strategy
    return InferenceServiceSpec.model_validate(raw)


SPEC = spec()


def seen(serving: Revision | None = V2, candidate: Revision | None = None, ready: tuple[Revision, ...] = (V1, V2, V3),
         **more: Any) -> RolloutObserved:
    return RolloutObserved(serving=serving, candidate=candidate, ready=frozenset(r.name for r in ready), **more)


def results(success: float = 99.9, duration: float = 20, timeouts: float = 0) -> tuple[MetricResult, ...]:
    return (MetricResult("request-success-rate", success), MetricResult("request-duration", duration),
            MetricResult("upstream-timeouts", timeouts))


GOOD, BAD = results(), results(success=71.2)


def state(phase: str | None = "Progressing", weight: int | None = 10, failed: int = 0, iterations: int = 0,
          canary: Revision | None = V2, since: datetime = T0, last: datetime | None = None) -> RolloutState:
    analysis = Analysis(time=last, weight=weight or 0, results=[]) if last else None
    return RolloutState(phase=RolloutPhase(phase) if phase else None, stable=V1, canary=canary, canary_weight=weight,
                        failed_checks=failed,
                        iterations=iterations, last_transition_time=since, last_analysis=analysis)


RESTING = state("Succeeded", weight=0, canary=None)


def decide(s: InferenceServiceSpec, st: RolloutState, o: RolloutObserved, now: datetime,
           analysis: tuple[MetricResult, ...] = GOOD) -> RolloutDecision:
    """What the wiring does: a due analysis asks for its queries, and is decided again with the results."""
    first = decide_rollout(s, NS, st, o, now)
    if not any(isinstance(a, QueryMetrics) for a in first.actions):
        return first
    assert first.state == st and first.next_due == now and len(first.actions) == 1
    return decide_rollout(s, NS, st, replace(o, analysis=analysis), now)


def splits(d: RolloutDecision) -> list[Split]:
    return [a.split for a in d.actions if isinstance(a, SetWeights)]


def kinds(d: RolloutDecision) -> list[str]:
    return [type(a).__name__ for a in d.actions]


def condition(d: RolloutDecision, type_: str) -> tuple[bool | None, str, str]:
    c = next(c for c in d.conditions if c.type == type_)
    return c.status, c.reason, c.message


# ---------------------------------------------------------------------------------------------------
# Every phase transition, one row each: (state, observed, now) -> phase, weight, actions.

TRANSITIONS = [
    ("none -> Initializing", RolloutState(), seen(serving=V1, ready=()), T0,
     "Initializing", 0, ["SetWeights"]),
    ("none -> Initialized when ready at once", RolloutState(), seen(serving=V1), T0,
     "Initialized", 0, ["SetWeights"]),
    ("Initializing -> Initialized", RolloutState(phase=RolloutPhase.INITIALIZING, stable=V1, canary_weight=0,
                                                 last_transition_time=T0), seen(serving=V1), T0 + MIN,
     "Initialized", 0, []),
    ("Initialized -> Progressing (canary not ready)", state("Initialized", weight=0, canary=None),
     seen(ready=(V1,)), T0, "Progressing", 0, ["SetWeights"]),
    ("Succeeded -> Progressing, first step once ready", RESTING, seen(), T0, "Progressing", 10,
     ["SetWeights", "SetWeights"]),
    ("Progressing holds between boundaries", state(), seen(), T0 + 59 * timedelta(seconds=1), "Progressing", 10, []),
    ("Progressing advances on a passing analysis", state(), seen(), T0 + MIN, "Progressing", 20, ["SetWeights"]),
    ("Progressing -> Promoting after the last step", state(weight=50, iterations=4, last=T0 + 4 * MIN), seen(),
     T0 + 5 * MIN, "Promoting", 50, ["Promote"]),
    ("Progressing -> Failed at the threshold", state(failed=2, iterations=2, last=T0 + 2 * MIN), seen(analysis=BAD),
     T0 + 3 * MIN, "Failed", 0, ["SetWeights", "RollBack"]),
    ("Promoting -> Finalising", state("Promoting", weight=50), seen(), T0 + MIN, "Finalising", 100, ["SetWeights"]),
    ("Finalising -> Succeeded", state("Finalising", weight=100), seen(), T0 + MIN, "Succeeded", 0,
     ["SetWeights", "RetireRevision"]),
    ("Failed stays Failed for the same revision", state("Failed", weight=0, failed=3), seen(), T0 + 9 * MIN,
     "Failed", 0, []),
    ("Failed -> Progressing for a new revision", state("Failed", weight=0, failed=3), seen(serving=V3),
     T0 + 9 * MIN, "Progressing", 10, ["SetWeights", "SetWeights"]),
]


@pytest.mark.parametrize("st, o, now, phase, weight, actions", [t[1:] for t in TRANSITIONS],
                         ids=[t[0] for t in TRANSITIONS])
def test_phase_transitions(st: RolloutState, o: RolloutObserved, now: datetime, phase: str, weight: int,
                           actions: list[str]) -> None:
    d = decide(SPEC, st, o, now, analysis=o.analysis or GOOD)
    assert (d.state.phase, d.state.canary_weight, kinds(d)) == (phase, weight, actions)
    if d.state.phase != st.phase:
        assert d.state.last_transition_time == now
        assert d.events


def test_nothing_to_serve_yet() -> None:
    d = decide(SPEC, RolloutState(), seen(serving=None), T0)
    assert d.state == RolloutState() and d.actions == () and d.next_due is None
    assert condition(d, PREDICTOR_READY)[:2] == (None, "NoRevision")


def test_first_revision_takes_all_traffic() -> None:
    d = decide(SPEC, RolloutState(), seen(serving=V1, ready=()), T0)
    assert splits(d) == [Split(V1.name)]
    assert d.next_due is None  # readiness arrives as an event
    assert condition(d, PREDICTOR_READY)[:2] == (False, "RevisionNotReady")
    d = decide(SPEC, d.state, seen(serving=V1), T0 + timedelta(seconds=5))
    assert d.state.phase == "Initialized" and d.actions == ()
    assert condition(d, PREDICTOR_READY)[:2] == (True, "RevisionReady")
    assert condition(d, CANARY_READY)[:2] == (True, "NoCanary")


# ---------------------------------------------------------------------------------------------------
# Whole rollouts, as the operator would drive them one interval after another.

def drive(s: InferenceServiceSpec, st: RolloutState, o: RolloutObserved, start: datetime,
          analyses: list[tuple[MetricResult, ...]] | None = None, limit: int = 30) -> list[RolloutDecision]:
    """Decide at `start`, then at each next due time, until the rollout rests; analyses in order."""
    pending = list(analyses or [])
    out, now = [], start
    for _ in range(limit):
        before = st
        d = decide_rollout(s, NS, st, o, now)
        if any(isinstance(a, QueryMetrics) for a in d.actions):
            d = decide_rollout(s, NS, st, replace(o, analysis=pending.pop(0) if pending else GOOD), now)
        out.append(d)
        st = d.state
        if d.next_due is None:
            break
        assert d.next_due > now or d.state == before
        now = d.next_due
    return out


@pytest.mark.parametrize("canary, weights", [
    ({"stepWeight": 10, "maxWeight": 50}, [10, 20, 30, 40, 50]),
    ({"stepWeight": 20, "maxWeight": 50}, [20, 40, 50]),
    ({"stepWeights": [5, 25, 60]}, [5, 25, 60]),
    ({"stepWeights": [100]}, [100]),
], ids=["step-10-to-50", "step-20-capped-at-50", "step-weights", "one-step"])
def test_good_canary_is_promoted_through_every_step(canary: dict[str, Any], weights: list[int]) -> None:
    s = spec(**canary)
    decisions = drive(s, RESTING, seen(), T0)
    steps = [sp.canary_weight for d in decisions if d.state.phase == "Progressing" for sp in splits(d)]
    assert steps == [0, *weights]
    phases = [d.state.phase for d in decisions]
    assert phases == ["Progressing"] * len(weights) + ["Promoting", "Finalising", "Succeeded"]
    # One analysis per interval: the last step passes at T0 + n intervals, then one interval per phase.
    promoting = decisions[len(weights)]
    assert promoting.actions == (Promote(V2),)
    assert promoting.state.last_transition_time == T0 + len(weights) * MIN
    assert promoting.state.iterations == len(weights) and promoting.state.failed_checks == 0
    assert splits(decisions[-2]) == [Split(V1.name, V2.name, 100)]
    final = decisions[-1]
    assert final.state.stable == V2 and final.state.canary is None and final.state.canary_weight == 0
    assert final.actions == (SetWeights(Split(V2.name)), RetireRevision(V1))
    assert final.state.last_transition_time == T0 + (len(weights) + 2) * MIN
    assert [e.reason for d in decisions for e in d.events] == (
        ["CanaryStarted"] + ["CanaryWeight"] * len(weights) + ["Promoting", "Finalising", "Succeeded"])
    assert all(e.type == "Normal" for d in decisions for e in d.events)


def test_bad_canary_is_rolled_back_after_exactly_threshold_failed_checks() -> None:
    decisions = drive(SPEC, RESTING, seen(), T0, analyses=[BAD, BAD, BAD])
    assert [d.state.failed_checks for d in decisions] == [0, 1, 2, 3]
    assert [d.state.canary_weight for d in decisions] == [10, 10, 10, 0]  # a failed check halts advancement
    failed = decisions[-1]
    assert failed.state.phase == "Failed" and failed.next_due is None
    assert failed.state.last_transition_time == T0 + 3 * MIN  # threshold x interval after the first step
    assert failed.actions[0] == SetWeights(Split(V1.name))  # the stable revision keeps serving throughout
    rollback = failed.actions[1]
    assert isinstance(rollback, RollBack) and rollback.revision == V2
    assert rollback.reason == "request-success-rate 71.2 < 99 (check 3/3)"
    halts = [e for d in decisions[1:3] for e in d.events]
    assert [(e.type, e.reason) for e in halts] == [("Warning", "AnalysisFailed")] * 2
    assert halts[1].message.endswith("request-success-rate 71.2 < 99 (check 2/3)")
    assert condition(decisions[2], CANARY_READY) == (
        False, "AnalysisFailed", "halted at 10%: request-success-rate 71.2 < 99 (check 2/3)")
    assert condition(failed, CANARY_READY)[:2] == (False, "RolledBack")
    assert condition(failed, PREDICTOR_READY)[0] is True
    last = failed.state.last_analysis
    assert last is not None and [(r.name, r.passed) for r in last.results] == [
        ("request-success-rate", False), ("request-duration", True), ("upstream-timeouts", True)]


def test_a_passing_check_does_not_reset_failed_checks() -> None:
    decisions = drive(SPEC, RESTING, seen(), T0, analyses=[BAD, GOOD, BAD, BAD])
    assert [(d.state.failed_checks, d.state.canary_weight) for d in decisions] == [
        (0, 10), (1, 10), (1, 20), (2, 20), (3, 0)]
    assert decisions[-1].state.phase == "Failed"


def test_failed_checks_reset_only_for_a_new_revision() -> None:
    failed = drive(SPEC, RESTING, seen(), T0, analyses=[BAD, BAD, BAD])[-1].state
    again = decide(SPEC, failed, seen(), T0 + 10 * MIN)
    assert again.state == failed and again.actions == ()
    new = decide(SPEC, failed, seen(serving=V3), T0 + 10 * MIN)
    assert (new.state.canary, new.state.failed_checks, new.state.iterations, new.state.last_analysis) == (
        V3, 0, 0, None)


def test_several_failed_metrics_are_all_named() -> None:
    d = decide(SPEC, state(failed=1), seen(), T0 + MIN, analysis=results(success=71.2, duration=120.5))
    assert d.events[0].message.endswith(
        "request-success-rate 71.2 < 99; request-duration 120.5 > 50 (check 2/3)")


@pytest.mark.parametrize("result, message", [
    (MetricResult("request-success-rate", None, "no series"), "request-success-rate: no data (no series)"),
    (MetricResult("request-success-rate", math.nan), "request-success-rate: no data (the query returned no value)"),
    (None, "request-success-rate: no data (the query returned no value)"),
], ids=["no-series", "nan-without-traffic", "missing"])
def test_no_data_is_a_failed_check(result: MetricResult | None, message: str) -> None:
    analysis = tuple(r for r in (result, *GOOD[1:]) if r is not None)
    d = decide(SPEC, state(), seen(), T0 + MIN, analysis=analysis)
    assert d.state.failed_checks == 1 and d.state.canary_weight == 10
    assert d.state.last_analysis is not None
    assert d.state.last_analysis.results[0] == CheckResult(name="request-success-rate", value=None, passed=False,
                                                           message=message)


def test_an_unready_canary_counts_failed_checks_and_is_rolled_back() -> None:
    decisions = drive(SPEC, RESTING, seen(ready=(V1,)), T0)
    assert [d.state.failed_checks for d in decisions] == [0, 1, 2, 3]
    assert all(not any(isinstance(a, QueryMetrics) for a in d.actions) for d in decisions)
    assert condition(decisions[1], CANARY_READY)[:2] == (False, "CanaryNotReady")
    rollback = decisions[-1].actions[1]
    assert isinstance(rollback, RollBack)
    assert rollback.reason == "canary revision movie-recommender-2 is not ready (check 3/3)"


def test_the_analysis_queries_the_canary_revision() -> None:
    d = decide_rollout(SPEC, NS, state(), seen(), T0 + MIN)
    assert d.actions == (QueryMetrics("movie-recommender-2", (
        MetricQuery("request-success-rate", None, "60s"),
        MetricQuery("request-duration", None, "60s"),
        MetricQuery("upstream-timeouts",
                    'sum(increase(loom_router_requests_total{namespace="ml", revision="movie-recommender-2", '
                    'code="504"}[300s])) or vector(0)\n', "300s"),
    )),)
    assert d.state == state() and d.events == ()


def test_results_outside_a_due_analysis_are_ignored() -> None:
    d = decide_rollout(SPEC, NS, state(), seen(analysis=BAD), T0 + 30 * timedelta(seconds=1))
    assert d.state == state() and d.actions == () and d.next_due == T0 + MIN


def test_no_metrics_means_each_interval_advances() -> None:
    s = spec(metrics=[])
    d = decide_rollout(s, NS, state(), seen(), T0 + MIN)
    assert (d.state.canary_weight, d.state.iterations, kinds(d)) == (20, 1, ["SetWeights"])


# ---------------------------------------------------------------------------------------------------
# Manual control, skipAnalysis, new revisions, mirror.

def test_manual_promote_skips_the_remaining_steps() -> None:
    d = decide(SPEC, state(weight=20), seen(promote=True), T0 + 10 * timedelta(seconds=1))
    assert d.state.phase == "Promoting"
    assert d.actions == (RemoveAnnotation(PROMOTE_ANNOTATION), Promote(V2))
    assert "promotion requested by annotation loom.dev/promote" in d.events[0].message


def test_manual_promote_waits_for_a_ready_canary() -> None:
    d = decide(SPEC, state(weight=0), seen(ready=(V1,), promote=True), T0 + timedelta(seconds=10))
    assert d.state == state(weight=0) and d.actions == ()


def test_manual_abort_rolls_back_at_once() -> None:
    d = decide(SPEC, state(weight=40), seen(abort=True), T0 + timedelta(seconds=10))
    assert d.state.phase == "Failed" and d.state.canary_weight == 0 and d.state.failed_checks == 0
    assert d.actions == (RemoveAnnotation(ABORT_ANNOTATION), SetWeights(Split(V1.name)),
                         RollBack(V2, "aborted by annotation loom.dev/abort"))
    assert condition(d, CANARY_READY) == (
        False, "RolledBack",
        "canary movie-recommender-2 (model movielens-two-tower version 2) was rolled back: loom.dev/abort was set")


@pytest.mark.parametrize("flags, key", [({"promote": True}, PROMOTE_ANNOTATION), ({"abort": True}, ABORT_ANNOTATION)])
def test_requests_without_a_canary_are_cleared_and_ignored(flags: dict[str, bool], key: str) -> None:
    d = decide(SPEC, RESTING, seen(serving=V1, **flags), T0)
    assert d.state == RESTING and d.actions == (RemoveAnnotation(key),)
    assert d.events[0].reason == "RequestIgnored"


def test_a_stale_request_does_not_touch_the_canary_it_starts() -> None:
    d = decide(SPEC, RESTING, seen(promote=True, abort=True), T0)
    assert d.state.phase == "Progressing" and d.state.canary_weight == 10
    assert kinds(d) == ["RemoveAnnotation", "RemoveAnnotation", "SetWeights", "SetWeights"]


@pytest.mark.parametrize("s", [spec(skipAnalysis=True), spec(strategy="Replace")], ids=["skipAnalysis", "Replace"])
def test_skip_analysis_promotes_a_ready_revision_at_once(s: InferenceServiceSpec) -> None:
    waiting = decide(s, RESTING, seen(ready=(V1,)), T0)
    assert waiting.state.phase == "Progressing" and waiting.next_due is None
    assert splits(waiting) == [Split(V1.name, V2.name, 0, 0)]
    d = decide(s, waiting.state, seen(), T0 + timedelta(seconds=20))
    assert d.state.phase == "Promoting" and d.actions == (Promote(V2),)
    assert d.state.iterations == 0 and d.next_due == T0 + timedelta(seconds=20) + MIN
    decisions = drive(s, RESTING, seen(), T0)
    assert [d.state.phase for d in decisions] == ["Promoting", "Finalising", "Succeeded"]


def test_a_new_revision_restarts_the_canary() -> None:
    mid = state(weight=30, failed=1, iterations=3, last=T0 + 3 * MIN)
    now = T0 + 3 * MIN + timedelta(seconds=20)
    d = decide(SPEC, mid, seen(serving=V3), now)
    assert (d.state.phase, d.state.canary, d.state.canary_weight, d.state.failed_checks, d.state.iterations) == (
        "Progressing", V3, 10, 0, 0)
    assert d.state.last_transition_time == now and d.state.last_analysis is None
    assert d.actions == (RetireRevision(V2), SetWeights(Split(V1.name, V3.name, 0)),
                         SetWeights(Split(V1.name, V3.name, 10)))
    assert "during the analysis of movie-recommender-2" in d.events[0].message
    assert d.next_due == now + MIN


def test_a_withdrawn_revision_ends_the_canary() -> None:
    d = decide(SPEC, state(weight=30), seen(serving=V1), T0 + timedelta(seconds=5))
    assert (d.state.phase, d.state.stable, d.state.canary, d.state.canary_weight) == ("Succeeded", V1, None, 0)
    assert d.actions == (RetireRevision(V2), SetWeights(Split(V1.name)))
    assert d.events[0].reason == "CanaryWithdrawn"


def test_a_new_revision_waits_for_the_promotion_to_finish() -> None:
    promoting = state("Promoting", weight=50)
    d = decide(SPEC, promoting, seen(serving=V3), T0 + MIN)
    assert d.state.phase == "Finalising" and d.state.canary == V2
    done = decide(SPEC, d.state, seen(serving=V3), T0 + 2 * MIN)
    assert done.state.phase == "Succeeded" and done.state.stable == V2
    nxt = decide(SPEC, done.state, seen(serving=V3), T0 + 2 * MIN + timedelta(seconds=1))
    assert nxt.state.phase == "Progressing" and nxt.state.canary == V3


def test_mirror_is_carried_in_the_weights() -> None:
    s = spec(mirror=20)
    decisions = drive(s, RESTING, seen(), T0)
    route = [sp for d in decisions for sp in splits(d)]
    assert route == [
        Split(V1.name, V2.name, 0, 20),  # shadow traffic from the start: analysed before any request is its
        *[Split(V1.name, V2.name, w, 20) for w in (10, 20, 30, 40, 50)],
        Split(V1.name, V2.name, 100, 0),
        Split(V2.name),
    ]
    assert decisions[0].state.canary_weight == 0 and decisions[1].state.iterations == 1
    assert "20% mirrored" in decisions[0].events[0].message


# ---------------------------------------------------------------------------------------------------
# Time: analyses fall due on interval boundaries counted from the phase's start.

@pytest.mark.parametrize("anchor_offset, moment, expected", [
    (0, 0, 1), (0, 59, 1), (0, 60, 2), (0, 61, 2), (0, 150, 3), (30, 0, 1),
])
def test_boundary_after(anchor_offset: int, moment: int, expected: int) -> None:
    anchor = T0 + timedelta(seconds=anchor_offset)
    at = boundary_after(anchor, T0 + timedelta(seconds=moment), MIN)
    assert at == anchor + expected * MIN


def test_due_times_stay_on_boundaries_when_reconciles_are_late() -> None:
    s = spec(interval="90s")
    step = timedelta(seconds=90)
    early = decide(s, state(), seen(), T0 + timedelta(seconds=40))
    assert early.actions == () and early.next_due == T0 + step
    late = decide(s, state(), seen(), T0 + step + timedelta(seconds=25))  # e.g. the operator was busy
    assert late.state.canary_weight == 20 and late.state.last_analysis is not None
    assert late.next_due == T0 + 2 * step
    much_later = decide(s, late.state, seen(), T0 + 3 * step + timedelta(seconds=1))  # one boundary missed
    assert much_later.state.canary_weight == 30 and much_later.next_due == T0 + 4 * step


@pytest.mark.parametrize("st, now, due", [
    (state(), T0 + timedelta(seconds=5), T0 + MIN),
    (state(last=T0 + MIN + timedelta(seconds=7), iterations=1), T0 + MIN + timedelta(seconds=30), T0 + 2 * MIN),
    (state("Promoting", weight=50, since=T0 + timedelta(seconds=13)), T0 + MIN, T0 + timedelta(seconds=73)),
    (state("Finalising", weight=100), T0 + timedelta(seconds=1), T0 + MIN),
    (state("Failed", weight=0, failed=3), T0 + MIN, None),
    (RESTING, T0, None),
], ids=["first-analysis", "after-a-late-analysis", "promoting", "finalising", "failed", "resting"])
def test_next_due_time(st: RolloutState, now: datetime, due: datetime | None) -> None:
    d = decide_rollout(SPEC, NS, st, seen(serving=V2 if st.canary else V1), now)
    assert d.actions == () and d.next_due == due


# ---------------------------------------------------------------------------------------------------
# Alias tracking: models:/x@champion served, new @challenger versions start a canary.

def test_a_new_challenger_is_promoted_and_champion_moves() -> None:
    s = spec(alias=True)
    o = seen(serving=V1, candidate=V2)
    decisions = drive(s, RolloutState(phase=RolloutPhase.INITIALIZED, stable=V1, canary_weight=0,
                                           last_transition_time=T0), o, T0, limit=7)
    promoting = decisions[5]
    assert promoting.actions == (Promote(V2, AliasMove("movielens-two-tower", "champion", "2")),)
    # The alias has not moved yet (the MLflow write failed): promoted again on the next boundary.
    assert decisions[6].state.phase == "Promoting"
    assert decisions[6].actions == promoting.actions and decisions[6].events[0].reason == "PromotionPending"
    moved = seen(serving=V2, candidate=V2)
    final = drive(s, decisions[6].state, moved, decisions[6].next_due or T0)
    assert [d.state.phase for d in final] == ["Finalising", "Succeeded"]
    quiet = decide(s, final[-1].state, moved, T0 + 60 * MIN)
    assert quiet.state == final[-1].state and quiet.actions == ()


def test_a_rolled_back_challenger_leaves_champion() -> None:
    s = spec(alias=True)
    o = seen(serving=V1, candidate=V2)
    failed = drive(s, RESTING, o, T0, analyses=[BAD, BAD, BAD])[-1]
    assert failed.state.phase == "Failed"
    assert not any(isinstance(a, Promote) for a in failed.actions)
    assert failed.events[-1].message.endswith("(check 3/3); @champion stays on version 1")


# ---------------------------------------------------------------------------------------------------
# Restarts: the state is only what status holds.

def _through_status(st: RolloutState) -> RolloutState:
    wire = json.loads(json.dumps(InferenceServiceStatus(**st.fields()).to_wire()))
    return RolloutState.from_status(InferenceServiceStatus.model_validate(wire))


@pytest.mark.parametrize("analyses, cut", [([GOOD, BAD, GOOD], 3), ([BAD, BAD], 2), ([GOOD] * 5, 6)],
                         ids=["mid-progress", "one-check-from-rollback", "promoting"])
def test_a_restart_resumes_from_status_with_the_same_next_step(analyses: list[Any], cut: int) -> None:
    decisions = drive(SPEC, RESTING, seen(), T0, analyses=analyses + [BAD, BAD, BAD])
    snapshot, due = decisions[cut - 1].state, decisions[cut - 1].next_due
    assert due is not None
    restored = _through_status(snapshot)
    assert restored == snapshot
    for now in (due - timedelta(seconds=1), due, due + timedelta(seconds=17)):
        assert decide(SPEC, restored, seen(), now, analysis=BAD) == decide(SPEC, snapshot, seen(), now, analysis=BAD)


def test_a_restart_after_the_deciding_check_still_rolls_back() -> None:
    """Status says the threshold is reached (the operator stopped before rolling back, or the threshold
    was lowered): the rollback happens on the next decision, without waiting for an analysis."""
    d = decide_rollout(spec(threshold=2), NS, state(failed=2, iterations=2, last=T0 + 2 * MIN), seen(),
                       T0 + 2 * MIN + timedelta(seconds=3))
    assert d.state.phase == "Failed" and kinds(d) == ["SetWeights", "RollBack"]


def test_the_first_analysis_is_a_full_interval_after_the_first_traffic() -> None:
    started = decide(SPEC, RESTING, seen(ready=(V1,)), T0)
    ready_at = T0 + timedelta(seconds=50)
    d = decide(SPEC, started.state, seen(), ready_at)
    assert d.state.canary_weight == 10 and d.state.last_transition_time == ready_at
    assert d.next_due == ready_at + MIN
    assert decide(SPEC, d.state, seen(), T0 + MIN).actions == ()


def test_under_alias_tracking_the_first_version_served_takes_the_served_alias() -> None:
    """@champion unset, the first version under @challenger is served; once ready it becomes @champion
    (asked again until the registry shows it), and a served alias is never taken over."""
    first = decide_rollout(spec(alias=True), NS, RolloutState(), seen(serving=None, candidate=V1, ready=()), T0)
    assert first.state.phase == "Initializing" and first.state.stable == V1
    assert not [a for a in first.actions if isinstance(a, Promote)]
    ready = decide_rollout(spec(alias=True), NS, first.state, seen(serving=None, candidate=V1, ready=(V1,)), T0)
    assert ready.state.phase == "Initialized"
    assert [a for a in ready.actions if isinstance(a, Promote)] == [
        Promote(V1, AliasMove("movielens-two-tower", "champion", "1"))]
    assert [e.reason for e in ready.events] == ["Initialized", "AliasAdopted"]
    again = decide_rollout(spec(alias=True), NS, ready.state, seen(serving=None, candidate=V1, ready=(V1,)), T0)
    assert [a for a in again.actions if isinstance(a, Promote)] == [
        Promote(V1, AliasMove("movielens-two-tower", "champion", "1"))]
    held = decide_rollout(spec(alias=True), NS, ready.state, seen(serving=V1, candidate=V1, ready=(V1,)), T0)
    assert held.actions == () and held.events == ()
    untracked = decide_rollout(spec(), NS, ready.state, seen(serving=V1, ready=(V1,)), T0)
    assert untracked.actions == ()
