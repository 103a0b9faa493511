"""Values of an InferenceService rollout that the decision, the serving builders and the Prometheus
analysis share: the traffic split, the queries of one analysis and their results, and the rollout's
actions. Revisions are named by the serving child that carries them (a Seldon Model, a KServe
predictor, a local MLServer process)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from loom.api.inferenceservice import Revision

PROMOTE_ANNOTATION = "loom.dev/promote"
ABORT_ANNOTATION = "loom.dev/abort"


@dataclass(frozen=True)
class Split:
    """Where requests go: `canary_weight` percent to the canary, the rest to the stable revision, and
    `mirror` percent of all requests copied to the canary with its answers discarded."""

    stable: str
    canary: str | None = None
    canary_weight: int = 0
    mirror: int = 0

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight


@dataclass(frozen=True)
class MetricQuery:
    """One check of an analysis: a custom metric's PromQL with its placeholders filled in, or None for
    a built-in, whose query depends on the serving target's metric names."""

    name: str
    query: str | None
    interval: str


@dataclass(frozen=True)
class MetricResult:
    """What Prometheus answered for one check; `value` is None when it returned no number (`error`
    says why: no series, the query failed, Prometheus unreachable)."""

    name: str
    value: float | None
    error: str = ""


def promql_duration(interval: timedelta) -> str:
    """A range PromQL accepts (whole seconds, or milliseconds below that precision)."""
    ms = round(interval.total_seconds() * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render_query(template: str, *, revision: str, namespace: str, interval: str) -> str:
    """Fill a custom metric's {{ revision }}, {{ namespace }} and {{ interval }} placeholders."""
    values = {"revision": revision, "namespace": namespace, "interval": interval}
    return re.sub(r"\{\{ *(revision|namespace|interval) *\}\}", lambda m: values[m.group(1)], template)


@dataclass(frozen=True)
class SetWeights:
    """Route traffic as `split` says (Seldon Experiment candidates and mirror, KServe canary[], the
    local router's table)."""

    split: Split


@dataclass(frozen=True)
class QueryMetrics:
    """An analysis is due: run these queries now against the canary revision, and decide again with
    their results."""

    revision: str
    queries: tuple[MetricQuery, ...]


@dataclass(frozen=True)
class AliasMove:
    """The MLflow alias promotion moves (e.g. champion) to the promoted version."""

    model_name: str
    alias: str
    version: str


@dataclass(frozen=True)
class Promote:
    """Make `revision` the one the serving target serves as stable, and move the alias if given."""

    revision: Revision
    alias: AliasMove | None = None


@dataclass(frozen=True)
class RollBack:
    """Take the canary out of service for good; the alias stays where it is."""

    revision: Revision
    reason: str


@dataclass(frozen=True)
class RetireRevision:
    """A revision nothing routes to any more (the old stable after promotion, a replaced canary)."""

    revision: Revision


@dataclass(frozen=True)
class RemoveAnnotation:
    """A manual request (loom.dev/promote or loom.dev/abort) was answered: clear it so it is not
    applied again to the next canary."""

    key: str


RolloutAction = SetWeights | QueryMetrics | Promote | RollBack | RetireRevision | RemoveAnnotation
