"""An InferenceService's rollout, pure: (spec, the rollout state from status, the observed revisions,
this interval's analysis, now) -> the next state, actions, conditions, Events and the next due time.

Flagger's rules: a new revision starts a canary at weight 0 (with `mirror`, shadow traffic from the
start); once it is ready the weight goes to the first step; every `interval` (boundaries counted
from `lastTransitionTime`: the phase's start, or the canary's first traffic) an analysis runs. A passing analysis advances the
weight (stepWeight up to maxWeight, or stepWeights); after the last step passes the canary is
promoted (Promoting, then Finalising with all traffic on it, then Succeeded). A failing analysis
holds the weight and counts a failed check; `threshold` failed checks roll it back (Failed).
failedChecks resets only for a new revision; a new revision mid-analysis restarts the canary.
skipAnalysis (or strategy Replace) promotes a ready revision at once. The annotations
loom.dev/promote and loom.dev/abort promote or roll back the canary under analysis.

An analysis is two calls: a due analysis without results returns `QueryMetrics` and nothing else,
and the caller decides again with the results (values only: no I/O here). Everything the next step
depends on is in status, so a restarted operator takes the same step with the same counters.
A canary that is not ready when an analysis is due counts a failed check, so one that never comes
up is rolled back after `threshold` intervals instead of holding the rollout forever."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from loom.api.inferenceservice import (
    Analysis,
    Canary,
    CheckResult,
    InferenceServiceSpec,
    InferenceServiceStatus,
    MetricCheck,
    Revision,
    RolloutPhase,
    RolloutStrategy,
)
from loom.api.meta import parse_duration
from loom.domain.outcome import Event, Observed
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
    RolloutAction,
    SetWeights,
    Split,
    promql_duration,
    render_query,
)

PREDICTOR_READY = "PredictorReady"
CANARY_READY = "CanaryReady"
NOT_READY_CHECK = "revision-ready"

Phase = RolloutPhase
# No rollout under way: a new revision starts one (None: a stable revision recorded without a phase).
RESTING = (None, Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED)


@dataclass(frozen=True)
class RolloutState:
    """The rollout's part of the status, and nothing else: what a restart resumes from."""

    phase: RolloutPhase | None = None
    stable: Revision | None = None
    canary: Revision | None = None
    canary_weight: int | None = None
    failed_checks: int = 0
    iterations: int = 0
    last_transition_time: datetime | None = None
    last_analysis: Analysis | None = None

    @classmethod
    def from_status(cls, status: InferenceServiceStatus) -> RolloutState:
        return cls(
            phase=RolloutPhase(status.phase) if status.phase else None, stable=status.stable, canary=status.canary,
            canary_weight=status.canary_weight, failed_checks=status.failed_checks, iterations=status.iterations,
            last_transition_time=status.last_transition_time, last_analysis=status.last_analysis,
        )

    def fields(self) -> dict[str, Any]:
        """The status fields to write (Outcome.fields)."""
        return {
            "phase": self.phase.value if self.phase else None, "stable": self.stable, "canary": self.canary,
            "canary_weight": self.canary_weight, "failed_checks": self.failed_checks, "iterations": self.iterations,
            "last_transition_time": self.last_transition_time, "last_analysis": self.last_analysis,
        }


@dataclass(frozen=True)
class RolloutObserved:
    """What the rollout reads besides its state.

    `serving` is the version the model source resolves to (model.uri's alias or version, or the
    TrainingJob's); `candidate` the version under canary.fromAlias (None without it or while the alias
    is unset); `ready` the names of revisions whose servers are ready, `why` what the others' servers
    say; `promote`/`abort` whether the annotations are set; `analysis` this interval's results, when
    the caller ran QueryMetrics."""

    serving: Revision | None
    candidate: Revision | None = None
    ready: frozenset[str] = frozenset()
    promote: bool = False
    abort: bool = False
    analysis: tuple[MetricResult, ...] | None = None
    why: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutDecision:
    state: RolloutState
    actions: tuple[RolloutAction, ...] = ()
    conditions: tuple[Observed, ...] = ()
    events: tuple[Event, ...] = ()
    next_due: datetime | None = None


def boundary_after(anchor: datetime, moment: datetime, interval: timedelta) -> datetime:
    """The first interval boundary (anchor + k * interval, k >= 1) later than `moment`."""
    k = max(1, math.floor((moment - anchor) / interval) + 1)
    return anchor + k * interval


def judge(metric: MetricCheck, result: MetricResult | None) -> CheckResult:
    """One check against its thresholdRange; no number (or NaN, as 0/0 without traffic gives) fails."""
    low, high = metric.threshold_range.min, metric.threshold_range.max
    value = result.value if result is not None else None
    if value is None or math.isnan(value):
        why = result.error if result is not None and result.error else "the query returned no value"
        return CheckResult(name=metric.name, passed=False, message=f"{metric.name}: no data ({why})"[:1024])
    if low is not None and value < low:
        return CheckResult(name=metric.name, value=value, passed=False, message=f"{metric.name} {value:g} < {low:g}")
    if high is not None and value > high:
        return CheckResult(name=metric.name, value=value, passed=False, message=f"{metric.name} {value:g} > {high:g}")
    bounds = " and ".join(s for s in (f">= {low:g}" if low is not None else "",
                                      f"<= {high:g}" if high is not None else "") if s)
    return CheckResult(name=metric.name, value=value, passed=True, message=f"{metric.name} {value:g} {bounds}")


def _label(revision: Revision) -> str:
    return f"{revision.name} (model {revision.model_name} version {revision.model_version})"


@dataclass
class _Step:
    """The decision under construction: one rollout step may chain several transitions."""

    spec: InferenceServiceSpec
    namespace: str
    seen: RolloutObserved
    now: datetime
    state_at_start: RolloutState
    state: RolloutState
    actions: list[RolloutAction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    query_now: bool = False

    @property
    def requests_apply(self) -> bool:
        """Manual requests act on a canary that was under analysis when this decision began."""
        return self.state_at_start.phase == Phase.PROGRESSING

    @property
    def canary_spec(self) -> Canary:
        return self.spec.rollout.canary

    @property
    def interval(self) -> timedelta:
        return parse_duration(self.canary_spec.interval)

    @property
    def weights(self) -> tuple[int, ...]:
        return self.canary_spec.weights

    @property
    def skip(self) -> bool:
        return bool(self.canary_spec.skip_analysis) or self.spec.rollout.strategy == RolloutStrategy.REPLACE.value

    def ready(self, revision: Revision | None) -> bool:
        return revision is not None and revision.name in self.seen.ready

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))

    def enter(self, phase: RolloutPhase, **changes: Any) -> None:
        self.state = replace(self.state, phase=phase, last_transition_time=self.now, **changes)

    def split(self, weight: int, mirror: int = 0, *, canary: bool = True) -> None:
        assert self.state.stable is not None
        name = self.state.canary.name if canary and self.state.canary is not None else None
        self.actions.append(SetWeights(Split(self.state.stable.name, name, weight, mirror)))

    def due_at(self) -> datetime | None:
        """When the current phase next acts by time; None when it waits for an event instead."""
        s = self.state
        if s.phase not in (Phase.PROGRESSING, Phase.PROMOTING, Phase.FINALISING) or s.last_transition_time is None:
            return None
        if s.phase == Phase.PROGRESSING and self.skip:
            return None  # promoted as soon as the canary is ready, which arrives as an event
        last = s.last_analysis.time if s.phase == Phase.PROGRESSING and s.last_analysis else s.last_transition_time
        return boundary_after(s.last_transition_time, max(last, s.last_transition_time), self.interval)


def decide_rollout(spec: InferenceServiceSpec, namespace: str, state: RolloutState, seen: RolloutObserved,
                   now: datetime) -> RolloutDecision:
    step = _Step(spec, namespace, seen, now, state, state)
    wanted = seen.candidate or seen.serving
    _manual_requests(step)
    if state.stable is None or state.phase == Phase.INITIALIZING:
        _initialize(step, seen.serving or seen.candidate)
    elif state.phase in RESTING:
        _rest(step, wanted)
    elif state.phase == Phase.PROGRESSING:
        _progress(step, wanted)
    elif state.phase == Phase.PROMOTING:
        _promote(step)
    elif state.phase == Phase.FINALISING:
        _finalise(step)
    _adopt_alias(step)
    due = _next_due(step)
    return RolloutDecision(step.state, tuple(step.actions), _conditions(step), tuple(step.events), due)


def _next_due(step: _Step) -> datetime | None:
    if step.query_now:
        return step.now
    due = step.due_at()
    if due is not None and due <= step.now:  # acted on this boundary already: the next one
        assert step.state.last_transition_time is not None
        return boundary_after(step.state.last_transition_time, step.now, step.interval)
    return due


def _manual_requests(step: _Step) -> None:
    """Requests outside an analysis have nothing to act on: they are cleared, saying so."""
    if step.requests_apply:
        return
    for flag, key in ((step.seen.promote, PROMOTE_ANNOTATION), (step.seen.abort, ABORT_ANNOTATION)):
        if flag:
            step.actions.append(RemoveAnnotation(key))
            step.event("Warning", "RequestIgnored", f"{key} ignored: no canary is under analysis "
                                                    f"(phase {step.state.phase.value if step.state.phase else 'none'})")


def _initialize(step: _Step, initial: Revision | None) -> None:
    """The first revision takes all traffic (no canary: there is nothing to compare it with)."""
    if initial is None:
        return
    old = step.state.stable
    if old is None or old.name != initial.name:
        if old is not None:
            step.actions.append(RetireRevision(old))
        step.enter(Phase.INITIALIZING, stable=initial, canary=None, canary_weight=0)
        step.split(0)
        step.event("Normal", "Initializing", f"serving {_label(initial)}: waiting for it to be ready")
    if step.ready(initial):
        step.enter(Phase.INITIALIZED)
        step.event("Normal", "Initialized", f"{_label(initial)} is ready and takes all traffic")


def _rest(step: _Step, wanted: Revision | None) -> None:
    s = step.state
    assert s.stable is not None
    if wanted is None or wanted.name == s.stable.name:
        return
    if s.phase == Phase.FAILED and s.canary is not None and wanted.name == s.canary.name:
        return  # rolled back: the same revision is not tried again
    _start(step, wanted, f"new revision {_label(wanted)}")
    _progress(step, wanted)


def _start(step: _Step, revision: Revision, why: str) -> None:
    """A canary at weight 0, its counters from zero: failedChecks resets only here."""
    mirror = 0 if step.skip else step.canary_spec.mirror
    step.enter(Phase.PROGRESSING, canary=revision, canary_weight=0, failed_checks=0, iterations=0, last_analysis=None)
    step.split(0, mirror)
    how = "promoted once ready (skipAnalysis)" if step.skip else (
        f"weights {', '.join(map(str, step.weights))}% every {step.canary_spec.interval}"
        + (f", {mirror}% mirrored" if mirror else ""))
    step.event("Normal", "CanaryStarted", f"{why}: starting canary analysis; {how}")


def _progress(step: _Step, wanted: Revision | None) -> None:
    s = step.state
    assert s.stable is not None and s.canary is not None
    seen, canary_spec = step.seen, step.canary_spec
    if seen.abort and step.requests_apply:
        step.actions.append(RemoveAnnotation(ABORT_ANNOTATION))
        _roll_back(step, f"aborted by annotation {ABORT_ANNOTATION}")
        return
    if wanted is not None and wanted.name != s.canary.name:
        step.actions.append(RetireRevision(s.canary))
        if wanted.name == s.stable.name:
            step.enter(Phase.SUCCEEDED, canary=None, canary_weight=0)
            step.split(0)
            step.event("Normal", "CanaryWithdrawn",
                       f"the model resolves to the stable {_label(s.stable)} again: canary {s.canary.name} withdrawn")
            return
        _start(step, wanted, f"new revision {_label(wanted)} during the analysis of {s.canary.name}")
        s = step.state
    assert s.canary is not None
    if s.failed_checks >= canary_spec.threshold:  # e.g. a restart after the check that reached it
        _roll_back(step, _failure_text(step))
        return
    ready = step.ready(s.canary)
    if seen.promote and ready and step.requests_apply:
        step.actions.append(RemoveAnnotation(PROMOTE_ANNOTATION))
        _to_promoting(step, f"promotion requested by annotation {PROMOTE_ANNOTATION}")
        return
    if step.skip:
        if ready:
            _to_promoting(step, "skipAnalysis: promoted without analysis")
        return
    mirror = canary_spec.mirror
    if s.canary_weight == 0 and not mirror and ready:
        # Nothing to analyse before traffic reaches it; the first analysis is a full interval later.
        step.state = replace(s, last_transition_time=step.now)
        _advance(step, "canary is ready")
        return
    due = step.due_at()
    if due is None or step.now < due:
        return
    if not ready:
        _count(step, (CheckResult(name=NOT_READY_CHECK, passed=False,
                                  message=f"canary revision {s.canary.name} is not ready"),))
        return
    metrics = canary_spec.metrics
    if metrics and seen.analysis is None:
        _query(step)
        return
    by_name: Mapping[str, MetricResult] = {r.name: r for r in seen.analysis or ()}
    _count(step, tuple(judge(m, by_name.get(m.name)) for m in metrics))


def _query(step: _Step) -> None:
    s, canary_spec = step.state, step.canary_spec
    assert s.canary is not None
    queries = []
    for metric in canary_spec.metrics:
        interval = promql_duration(parse_duration(metric.interval or canary_spec.interval))
        query = None if metric.query is None else render_query(
            metric.query, revision=s.canary.name, namespace=step.namespace, interval=interval)
        queries.append(MetricQuery(metric.name, query, interval))
    step.actions.append(QueryMetrics(s.canary.name, tuple(queries)))
    step.query_now = True


def _count(step: _Step, results: tuple[CheckResult, ...]) -> None:
    """Record one analysis: all passed advances, any failure holds the weight and counts."""
    s = step.state
    assert s.canary is not None
    analysis = Analysis(time=step.now, weight=s.canary_weight or 0, results=list(results))
    passed = all(r.passed for r in results)
    step.state = replace(s, iterations=s.iterations + 1, last_analysis=analysis,
                         failed_checks=s.failed_checks + (0 if passed else 1))
    if passed:
        _advance(step, "; ".join(r.message for r in results) or "no metrics to check")
        return
    why = _failure_text(step)
    if step.state.failed_checks >= step.canary_spec.threshold:
        _roll_back(step, why)
    else:
        step.event("Warning", "AnalysisFailed", f"halt advancement of {s.canary.name} at {s.canary_weight}%: {why}")


def _failure_text(step: _Step) -> str:
    s = step.state
    last = s.last_analysis
    failures = "; ".join(r.message for r in last.results if not r.passed) if last else ""
    return f"{failures or 'failed checks'} (check {s.failed_checks}/{step.canary_spec.threshold})"


def _advance(step: _Step, why: str) -> None:
    s = step.state
    assert s.canary is not None
    weights = step.weights
    current = s.canary_weight or 0
    following = next((w for w in weights if w > current), None)
    if following is None:
        _to_promoting(step, f"analysis passed at the last step ({current}%): {why}")
        return
    step.state = replace(s, canary_weight=following)
    step.split(following, step.canary_spec.mirror)
    number = weights.index(following) + 1
    step.event("Normal", "CanaryWeight", f"advance {s.canary.name} to {following}% "
                                         f"(step {number}/{len(weights)}): {why}")


def _to_promoting(step: _Step, why: str) -> None:
    s = step.state
    assert s.canary is not None
    step.enter(Phase.PROMOTING)
    step.actions.append(Promote(s.canary, _alias_move(step, s.canary)))
    step.event("Normal", "Promoting", f"promoting {_label(s.canary)}: {why}")


def _alias_move(step: _Step, revision: Revision) -> AliasMove | None:
    alias = step.spec.model.alias
    if step.canary_spec.from_alias is None or alias is None:
        return None
    return AliasMove(alias[0], alias[1], revision.model_version)


def _adopt_alias(step: _Step) -> None:
    """Under alias tracking with nothing under the served alias yet (the first version arrived under the
    tracked one), the stable revision takes the served alias once it serves: what is served is the
    champion the next version is measured against. Asked again until the registry shows it."""
    s = step.state
    if step.canary_spec.from_alias is None or step.seen.serving is not None or s.stable is None:
        return
    if s.phase not in (Phase.INITIALIZED, Phase.SUCCEEDED) or not step.ready(s.stable):
        return
    move = _alias_move(step, s.stable)
    if move is None or any(isinstance(a, Promote) for a in step.actions):
        return
    step.actions.append(Promote(s.stable, move))
    step.event("Normal", "AliasAdopted", f"@{move.alias} moved to {_label(s.stable)}, the version served")


def _promote(step: _Step) -> None:
    """Promoting lasts one interval; with alias tracking it ends when the alias has moved."""
    s = step.state
    assert s.canary is not None
    due = step.due_at()
    if due is None or step.now < due:
        return
    moved = step.canary_spec.from_alias is None or (
        step.seen.serving is not None and step.seen.serving.name == s.canary.name)
    if not moved or not step.ready(s.canary):
        step.enter(Phase.PROMOTING)  # the next boundary, from now
        step.actions.append(Promote(s.canary, _alias_move(step, s.canary)))
        step.event("Warning", "PromotionPending",
                   f"{_label(s.canary)} is not " + ("ready" if moved else "yet under the promoted alias")
                   + ": promoting again")
        return
    step.enter(Phase.FINALISING, canary_weight=100)
    step.split(100)
    step.event("Normal", "Finalising", f"routing all traffic to {_label(s.canary)}")


def _finalise(step: _Step) -> None:
    s = step.state
    assert s.canary is not None and s.stable is not None
    due = step.due_at()
    if due is None or step.now < due or not step.ready(s.canary):
        return
    old, new = s.stable, s.canary
    step.enter(Phase.SUCCEEDED, stable=new, canary=None, canary_weight=0)
    step.split(0)
    step.actions.append(RetireRevision(old))
    step.event("Normal", "Succeeded", f"promotion completed: {_label(new)} is stable, {old.name} retired")


def _roll_back(step: _Step, why: str) -> None:
    s = step.state
    assert s.canary is not None and s.stable is not None
    step.enter(Phase.FAILED, canary_weight=0)
    step.split(0, canary=False)
    step.actions.append(RollBack(s.canary, why))
    alias = step.spec.model.alias
    kept = f"; @{alias[1]} stays on version {s.stable.model_version}" if alias and step.canary_spec.from_alias else ""
    step.event("Warning", "RolledBack", f"rolling back {_label(s.canary)}: {why}{kept}")


def _conditions(step: _Step) -> tuple[Observed, ...]:
    s = step.state
    if s.stable is None:
        return (Observed(PREDICTOR_READY, None, "NoRevision", "no model version to serve yet"),)
    stable = (Observed(PREDICTOR_READY, True, "RevisionReady", f"{_label(s.stable)} is ready")
              if step.ready(s.stable) else
              Observed(PREDICTOR_READY, False, "RevisionNotReady", f"{_label(s.stable)} is not ready"
                       + (f": {why}" if (why := step.seen.why.get(s.stable.name)) else "")))
    return stable, _canary_condition(step)


def _canary_condition(step: _Step) -> Observed:
    s = step.state
    phase = s.phase or Phase.INITIALIZING
    if s.canary is None or phase in (Phase.INITIALIZING, Phase.INITIALIZED, Phase.SUCCEEDED):
        return Observed(CANARY_READY, True, "NoCanary", "no canary under analysis")
    if phase == Phase.FAILED:
        why = _failure_text(step) if s.failed_checks >= step.canary_spec.threshold else f"{ABORT_ANNOTATION} was set"
        return Observed(CANARY_READY, False, "RolledBack", f"canary {_label(s.canary)} was rolled back: {why}")
    if phase in (Phase.PROMOTING, Phase.FINALISING):
        return Observed(CANARY_READY, True, phase.value, f"{_label(s.canary)} passed its analysis")
    if not step.ready(s.canary):
        return Observed(CANARY_READY, False, "CanaryNotReady", f"canary revision {s.canary.name} is not ready")
    if s.failed_checks:
        return Observed(CANARY_READY, False, "AnalysisFailed", f"halted at {s.canary_weight}%: {_failure_text(step)}")
    weights = step.weights
    at = f"{s.canary_weight}% (step {weights.index(s.canary_weight) + 1}/{len(weights)})" \
        if s.canary_weight in weights else f"{s.canary_weight}%"
    return Observed(CANARY_READY, True, "Progressing", f"{_label(s.canary)} at {at}, checks passing")
