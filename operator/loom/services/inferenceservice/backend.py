"""Where an InferenceService's revisions run: the serving target behind one small interface, so the
service's observe -> decide -> act is the same for the embedded default (the local executor's MLServer
processes and router: `local_serving.py`) and a cluster (Seldon Core 2 or KServe objects:
`cluster_serving.py`).

`apply` is level-based, like a server-side apply: it is given the whole wanted layout every reconcile
(`domain.serving.Serving`: the stable revision, the canary if one is served, the split) and makes the
target match it, removing the children of revisions the layout no longer has. `observe` reads which
revisions are ready to take traffic and where clients send requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from loom.api.inferenceservice import Revision, Target
from loom.builders.canary_queries import MetricSource
from loom.domain.serving import Serving


@dataclass(frozen=True)
class Served:
    """What the target shows of one InferenceService. `ready`: names of the revisions whose servers
    answer and that the traffic split can reach; `url`: where clients send V2 requests (None until
    known); `missing`: why this target cannot serve at all (e.g. Seldon Core 2's CRDs are not
    installed), naming the fix; `why`: what a revision's server that is not ready says (its exit,
    the command that could not start), by revision name."""

    ready: frozenset[str] = frozenset()
    url: str | None = None
    missing: str | None = None
    why: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Applied:
    """What `apply` reports: the url once known, what the target could not do of the split (a mirror
    KServe cannot carry) for an Event, and whether a retired revision is still kept because requests
    may still reach it (`draining`: apply again shortly to remove it)."""

    url: str | None = None
    warnings: tuple[str, ...] = ()
    draining: bool = False


class ServingBackend(Protocol):
    def metric_source(self, target: Target) -> MetricSource:
        """Whose metrics the canary analysis queries for this target."""

    def observe(self, namespace: str, name: str, target: Target, revisions: Sequence[Revision]) -> Served:
        """The readiness of `revisions` (the stable and canary on record) and the url."""

    def apply(self, serving: Serving, target: Target) -> Applied:
        """Make the target serve exactly `serving`'s revisions with its split; children of any other
        revision of this InferenceService are removed."""
