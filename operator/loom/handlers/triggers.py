"""How an object's reconcile loop is woken when something outside it changed, without polling and
without writing to the object:

- its own spec or annotations changed (a watch event with a new generation or new annotations),
- a dependency changed (a DataLake's table moved to a new snapshot, so its FeatureSets must look),
- a workload run of the object started or finished (the executor reports it),
- a time the last reconcile asked for has come (a schedule tick, a backoff before retrying).

Each is a *wake-up* of the object's reconcile loop (`handlers/reconcile.py`), held in memory: an
object's resourceVersion moves only when Loom writes something it observed. A wake-up carries the
value of what changed, so the same change wakes once; after a restart every loop reconciles once
anyway, so nothing is lost with the memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import kopf

from loom import logs
from loom.api.kinds import KINDS, Kind
from loom.api.meta import GROUP, VERSION
from loom.domain.workloads import RunChange

log = logging.getLogger(__name__)

SCHEDULE = "schedule"
WORKLOAD = "workload"
OWN = "own"


@dataclass(frozen=True, order=True)
class ObjectRef:
    plural: str
    namespace: str
    name: str


def marker(value: object) -> str:
    """A short, stable digest of what a dependent sees of a change."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _Loop:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event
    seen: dict[str, str]
    guard: threading.Lock


class Wakeups:
    """The wake-up events of the objects' reconcile loops, settable from any thread (the scheduler's,
    the local executor's, Kopf's handler threads). An object without a running loop has nothing to
    wake: its loop reconciles as soon as it starts."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.by_kind = {k.kind: k for k in kinds}
        self._lock = threading.Lock()
        self._loops: dict[ObjectRef, _Loop] = {}

    def register(self, ref: ObjectRef, seen: dict[str, str] | None = None) -> asyncio.Event:
        """Called by an object's loop, in the event loop, when it starts, with what its first reconcile
        will have seen (so that, told again, it does not wake the loop for a second one)."""
        event = asyncio.Event()
        with self._lock:
            self._loops[ref] = _Loop(asyncio.get_running_loop(), event, dict(seen or {}), threading.Lock())
        return event

    def exclusive(self, ref: ObjectRef) -> AbstractContextManager[object]:
        """Held by a reconcile of `ref` and by its finalizer, so the two never run at once (Kopf
        starts the finalizer while the loop's last reconcile may still be going)."""
        with self._lock:
            found = self._loops.get(ref)
        return found.guard if found is not None else nullcontext()

    def unregister(self, ref: ObjectRef, event: asyncio.Event) -> None:
        with self._lock:
            found = self._loops.get(ref)
            if found is not None and found.event is event:
                del self._loops[ref]

    def __len__(self) -> int:
        with self._lock:
            return len(self._loops)

    def __call__(self, ref: ObjectRef, source: str, value: str | None = None) -> None:
        """Wake `ref`'s loop; with a `value`, only if it differs from the last one from `source`."""
        with self._lock:
            found = self._loops.get(ref)
            if found is None:
                return
            if value is not None:
                if found.seen.get(source) == value:
                    return
                found.seen[source] = value
        found.loop.call_soon_threadsafe(found.event.set)

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

    def __init__(self, wake: Callable[[ObjectRef, str], None],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._wake_up = wake
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
                self._wake_up(ref, SCHEDULE)
            except Exception:  # nothing may end the scheduler
                kind = next((k.kind for k in KINDS if k.plural == ref.plural), ref.plural)
                log.exception("could not wake it for its scheduled reconcile",
                              extra=logs.extra(kind, ref.namespace, ref.name))


Refs = Callable[[Mapping[str, Any]], Iterable[tuple[str, str]]]
View = Callable[[Mapping[str, Any], Mapping[str, Any]], object]


def follow(registry: kopf.OperatorRegistry, dependent: Kind, dependency: Kind, refs: Refs, view: View) -> None:
    """Wake each `dependent` when what it sees of a `dependency` changes.

    `refs(dependent body)` names the dependencies of one dependent as (namespace, name), usually from
    its spec; `view(dependency body, dependent spec)` is the part of the dependency that it reads. A Kopf index keeps
    dependents by dependency, and a watch on the dependency kind wakes exactly the dependents whose
    view changed, once per change. One mechanism for every link of the chain (DataLake -> FeatureSet
    -> TrainingJob -> InferenceService)."""
    index_id = f"{dependent.plural}_by_{dependency.singular}"
    source = dependency.singular

    @kopf.index(GROUP, VERSION, dependent.plural, id=index_id, registry=registry)
    def by_dependency(*, namespace: str | None, name: str, body: kopf.Body,
                      **_: Any) -> dict[tuple[str | None, str], tuple[str, str, dict[str, Any]]]:
        plain = dict(body.spec)
        return {ref: (namespace or "", name, plain) for ref in refs(body)}

    @kopf.on.event(GROUP, VERSION, dependency.plural, id=f"follow-{index_id}", registry=registry)
    def changed(*, event: kopf.RawEvent, namespace: str | None, name: str, body: kopf.Body, memo: Any,
                **kwargs: Any) -> None:
        index: kopf.Index[tuple[str | None, str], tuple[str, str, dict[str, Any]]] = kwargs[index_id]
        gone = event.get("type") == "DELETED"
        for dependent_namespace, dependent_name, dependent_spec in index.get((namespace or "", name), []):
            value = marker("deleted" if gone else view(body, dependent_spec))
            memo.wakeups(ObjectRef(dependent.plural, dependent_namespace, dependent_name),
                         f"{source}:{namespace}/{name}", value)
