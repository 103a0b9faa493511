"""How an object is brought back for a reconcile when something outside it changed, without polling:

- a dependency changed (a DataLake's table moved to a new snapshot, so its FeatureSets must look),
- a workload run of the object started or finished (the executor reports it),
- a time the last reconcile asked for has come (a schedule tick, a backoff before retrying).

Each is a *nudge*: an annotation `trigger.loom.dev/<source>` on the object set to a marker of what
changed. Kopf sees the annotation change as an update and runs the object's one reconcile, serialized
with every other handler of that object. The marker is derived from the change itself, so the same
change nudges once: the API server drops a patch that changes nothing (no new resourceVersion).
The prefix is not `loom.dev/`, because Kopf leaves annotations under its own prefix out of the diff.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import kopf

from loom import logs
from loom.api.kinds import KINDS, Kind
from loom.api.meta import GROUP, VERSION
from loom.domain.workloads import RunChange

log = logging.getLogger(__name__)

PREFIX = "trigger.loom.dev"
SCHEDULE = "schedule"
WORKLOAD = "workload"


@dataclass(frozen=True, order=True)
class ObjectRef:
    plural: str
    namespace: str
    name: str


def marker(value: object) -> str:
    """A short, stable digest of what a dependent sees of a change."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Annotator(Protocol):
    def annotate(self, kind: Kind, namespace: str, name: str, annotations: dict[str, str]) -> None: ...


class Nudger:
    """Sets `trigger.loom.dev/<source>` on an object; an object that is gone is nothing to nudge."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds = {k.plural: k for k in kinds}
        self.by_kind = {k.kind: k for k in kinds}
        self.kube: Annotator | None = None

    def connect(self, kube: Annotator) -> None:
        self.kube = kube

    def __call__(self, ref: ObjectRef, source: str, value: str) -> None:
        if self.kube is None:
            raise RuntimeError("the nudger is used before the operator connected to the cluster")
        self.kube.annotate(self.kinds[ref.plural], ref.namespace, ref.name, {f"{PREFIX}/{source}": value})

    def run_changed(self, change: RunChange) -> None:
        """An executor saw a run start or finish: the owner reconciles now instead of polling."""
        owner = change.owner
        if owner is None or owner.kind not in self.by_kind:
            return
        kind = self.by_kind[owner.kind]
        self(ObjectRef(kind.plural, change.namespace, owner.name), WORKLOAD,
             marker([change.run.name, change.run.phase.value]))


class Scheduler:
    """Brings objects back at the time their last reconcile asked for (`Outcome.requeue_at`): one
    pending time per object, the newest request replacing the older one. A thread waits on a
    condition until the earliest time, so nothing spins and nothing is polled."""

    def __init__(self, nudge: Callable[[ObjectRef, str, str], None],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._nudge = nudge
        self._clock = clock
        self._due: dict[ObjectRef, datetime] = {}
        self._heap: list[tuple[datetime, ObjectRef]] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def at(self, ref: ObjectRef, when: datetime | None) -> None:
        """Ask for `ref` to be reconciled at `when`; None forgets any earlier request."""
        with self._wake:
            if when is None:
                self._due.pop(ref, None)
                return
            if self._due.get(ref) == when:
                return
            self._due[ref] = when
            heapq.heappush(self._heap, (when, ref))
            self._wake.notify()

    def pending(self, ref: ObjectRef) -> datetime | None:
        with self._wake:
            return self._due.get(ref)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="loom-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _next_due(self) -> tuple[ObjectRef, datetime] | None:
        """Pop what is due now, or wait until something is (or a new request comes in)."""
        with self._wake:
            while not self._stopped:
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # replaced or forgotten
                if not self._heap:
                    self._wake.wait()
                    continue
                when, ref = self._heap[0]
                wait = (when - self._clock()).total_seconds()
                if wait > 0:
                    self._wake.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[ref]
                return ref, when
            return None

    def _loop(self) -> None:
        while (due := self._next_due()) is not None:
            ref, when = due
            try:
                self._nudge(ref, SCHEDULE, when.isoformat())
            except Exception:  # an unreachable API server must not end the scheduler
                kind = next((k.kind for k in KINDS if k.plural == ref.plural), ref.plural)
                log.exception("could not bring it back for its scheduled reconcile",
                              extra=logs.extra(kind, ref.namespace, ref.name))


Refs = Callable[[Mapping[str, Any]], Iterable[str]]
View = Callable[[Mapping[str, Any], Mapping[str, Any]], object]


def follow(registry: kopf.OperatorRegistry, dependent: Kind, dependency: Kind, refs: Refs, view: View) -> None:
    """Reconcile each `dependent` when what it sees of a `dependency` changes.

    `refs(dependent spec)` names the dependencies of one dependent (same namespace); `view(dependency
    body, dependent spec)` is the part of the dependency that this dependent reads. A Kopf index keeps
    dependents by dependency, and a watch on the dependency kind nudges exactly the dependents whose
    view changed, once per change. One mechanism for every link of the chain (DataLake -> FeatureSet
    -> TrainingJob -> InferenceService)."""
    index_id = f"{dependent.plural}_by_{dependency.singular}"
    source = dependency.singular

    @kopf.index(GROUP, VERSION, dependent.plural, id=index_id, registry=registry)
    def by_dependency(*, namespace: str | None, name: str, spec: kopf.Spec, annotations: kopf.Annotations,
                      **_: Any) -> dict[tuple[str | None, str], tuple[str, dict[str, Any], str | None]]:
        plain = dict(spec)
        seen = annotations.get(f"{PREFIX}/{source}")
        return {(namespace, ref): (name, plain, seen) for ref in refs(plain)}

    @kopf.on.event(GROUP, VERSION, dependency.plural, id=f"follow-{index_id}", registry=registry)
    def changed(*, event: kopf.RawEvent, namespace: str | None, name: str, body: kopf.Body, memo: Any,
                **kwargs: Any) -> None:
        index: kopf.Index[tuple[str | None, str], tuple[str, dict[str, Any], str | None]] = kwargs[index_id]
        gone = event.get("type") == "DELETED"
        for dependent_name, dependent_spec, seen in index.get((namespace, name), []):
            value = marker("deleted" if gone else view(body, dependent_spec))
            if value != seen:
                memo.nudger(ObjectRef(dependent.plural, namespace or "", dependent_name), source, value)
