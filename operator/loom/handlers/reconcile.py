"""The Kopf glue every kind shares: one reconcile loop per object, woken in memory; each reconcile
parses the spec at the boundary, runs the service, writes status only when it changed, turns
condition transitions into Events, hands the next due time to the scheduler, and counts it all in
metrics."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from loom import logs
from loom.api.kinds import Kind
from loom.api.meta import API_VERSION, GROUP, VERSION
from loom.config import OperatorConfig
from loom.domain.outcome import READY, Observed, Outcome
from loom.handlers.bodies import kept_annotation
from loom.handlers.triggers import OWN, ObjectRef, marker
from loom.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES
from loom.services.context import ReconcileContext
from loom.services.status import Transition, next_status

Service = Callable[[Any, ReconcileContext], Outcome]
# Annotations under Loom's prefix that a user sets to ask for something (Kopf's bookkeeping shares it).
# Kopf's finalizer on every object with a deletion handler (set in `lifecycle`).
FINALIZER = f"{GROUP}/finalizer"

log = logging.getLogger(__name__)


def describe_errors(error: ValidationError) -> str:
    """One line per invalid field, with the field path as users write it (spec.a.b[0].c)."""
    lines = []
    for err in error.errors():
        path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        lines.append(f"{path}: {err['msg']}")
    return "; ".join(lines)


def _post_events(body: kopf.Body, transitions: list[Transition]) -> None:
    """One Event and one log line per transition; a condition that Ready merely repeats is not
    posted twice."""
    ready = next((t.condition for t in transitions if t.condition.type == READY), None)
    for t in transitions:
        cond = t.condition
        if ready is not None and cond is not ready and (cond.reason, cond.message) == (ready.reason, ready.message):
            continue
        kind = "Normal" if cond.status == "True" or cond.status == "Unknown" else "Warning"
        message = f"{cond.type}={cond.status}" + (f": {cond.message}" if cond.message else "")
        kopf.event(body, type=kind, reason=cond.reason, message=message)
        log.log(logging.INFO if kind == "Normal" else logging.WARNING, "%s (%s)", message, cond.reason)


# The statuses a chain of writes keeps as superseded while the watch lags behind it.
SUPERSEDED_KEPT = 8


@dataclass(frozen=True)
class Written:
    """The status this loop last wrote, the resourceVersion the object had when it was read, and the
    statuses that write superseded: until the watch delivers it, the live body may still show the
    status it replaced, also in a newer version of the object (the operator's own metadata change,
    such as a manual request's annotation removed, or the user's edit, may arrive before the status
    write), or an earlier write of the same loop that the watch has not caught up with."""

    read_at: str | None
    superseded: tuple[dict[str, Any], ...]
    status: dict[str, Any]


def current_status(body: kopf.Body, written: Written | None) -> dict[str, Any]:
    """The newest status: the live one, unless it is one this loop's writes have replaced (only the
    operator writes status)."""
    live = dict(body.get("status") or {})
    if written is not None and (body.metadata.get("resourceVersion") == written.read_at or live in written.superseded):
        return written.status
    return live


def superseding(body: kopf.Body, previous: Written | None, status: dict[str, Any]) -> Written:
    """What a write of `status` over `body` supersedes: the live status, and while the watch has not
    delivered the previous write yet, that write and what it superseded (a second write can land
    before the first is seen: the object's next version then shows the first, not the newest)."""
    live = dict(body.get("status") or {})
    superseded = [live]
    if previous is not None and live != previous.status:
        superseded += [s for s in (previous.status, *previous.superseded) if s not in superseded]
    return Written(body.metadata.get("resourceVersion"), tuple(superseded[:SUPERSEDED_KEPT]), status)


def _write(kind: Kind, body: kopf.Body, memo: kopf.Memo, current: dict[str, Any], outcome: Outcome,
           now: datetime, previous: Written | None) -> Written | None:
    status, transitions = next_status(kind.status, current, outcome, body.metadata.get("generation"), now)
    written = None
    if status is not None:
        memo.kube.patch_status(kind, body.metadata.namespace or "", body.metadata.name or "", status)
        written = superseding(body, previous, {**current, **status})
    _post_events(body, transitions)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    return written


def make_context(kind: Kind, body: kopf.Body, memo: kopf.Memo, now: datetime,
                 status: dict[str, Any] | None = None) -> ReconcileContext:
    """The services' view of one object and of the drivers set up at start-up."""
    return ReconcileContext(
        namespace=body.metadata.namespace or "",
        name=body.metadata.name or "",
        uid=body.metadata.uid or "",
        generation=body.metadata.get("generation"),
        kube=memo.kube,
        config=memo.config,
        executor=memo.executor,
        now=now,
        status=dict(body.get("status") or {}) if status is None else status,
        api_version=API_VERSION,
        kind=kind.kind,
        annotations=dict(body.metadata.annotations or {}),
    )


@dataclass(frozen=True)
class Reconciled:
    """When the object wants its next reconcile (None: only on a change), and what was written."""

    due: datetime | None
    written: Written | None


def reconcile_once(kind: Kind, service: Service, body: kopf.Body, memo: kopf.Memo,
                   written: Written | None) -> Reconciled:
    """One reconcile. The wall clock is read here, once, and passed down as `now`.

    An invalid spec is reported (Ready=False/InvalidSpec naming the fields) and not retried: it
    stays invalid until the user changes it. An external system that failed is retried after the
    service's backoff, and anything else due later (a schedule tick) is asked for the same way."""
    logs.about(kind.kind, body.metadata.namespace, body.metadata.name or "")
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    current = current_status(body, written)
    try:
        try:
            spec = kind.spec.model_validate(dict(body.spec))
        except ValidationError as error:
            outcome = Outcome((Observed(READY, False, "InvalidSpec", describe_errors(error)),))
            result = "invalid"
        else:
            outcome = service(spec, make_context(kind, body, memo, now, current))
            result = "ok" if outcome.retry_after is None else "retry"
        written = _write(kind, body, memo, current, outcome, now, written) or written
        RECONCILES.labels(kind.kind, result).inc()
        due = outcome.requeue_at
        if outcome.retry_after is not None:
            retry = now + timedelta(seconds=outcome.retry_after)
            due = retry if due is None else min(due, retry)
        return Reconciled(due, written)
    except Exception:
        RECONCILE_ERRORS.labels(kind.kind).inc()
        RECONCILES.labels(kind.kind, "error").inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind.kind).observe(time.monotonic() - started)


def finalized(body: Mapping[str, Any]) -> bool:
    return FINALIZER in ((body.get("metadata") or {}).get("finalizers") or [])


def reconcile_alone(kind: Kind, service: Service, body: kopf.Body, memo: kopf.Memo,
                    written: Written | None, guarded: bool = False) -> Reconciled:
    """`reconcile_once` under the object's lock; an object being deleted is its finalizer's alone. A
    `guarded` kind creates what only its finalizer removes, so it waits until Kopf has added it."""
    ref = ObjectRef(kind.plural, body.metadata.namespace or "", body.metadata.name or "")
    with memo.wakeups.exclusive(ref):
        if body.metadata.get("deletionTimestamp") or (guarded and not finalized(body)):
            return Reconciled(None, written)
        return reconcile_once(kind, service, body, memo, written)


def own_change(body: Mapping[str, Any], guarded: bool = False) -> str:
    """What of an object's own watch event asks for a reconcile: its generation (the spec) and its
    annotations outside Kopf's bookkeeping (so `kubectl annotate` asks for one, as in Kopf's diff)
    or among Loom's manual requests, and for a guarded kind its finalizer's arrival."""
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if kept_annotation(k)}
    return marker([meta.get("generation"), annotations, guarded and finalized(body)])


async def _woken(wake: asyncio.Event, stopping: asyncio.Future[Any], timeout: float | None) -> None:
    """Until a wake-up, the loop's stop or the resync timeout, whichever comes first."""
    woken = asyncio.ensure_future(wake.wait())
    await asyncio.wait({woken, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    woken.cancel()


MAX_BACKOFF_SECONDS = 600.0


def backoff(config: OperatorConfig, failures: int) -> timedelta:
    """After an unexpected error: the dependency backoff, doubling per failure, at most ten minutes."""
    return timedelta(seconds=min(config.dependency_retry_seconds * 2 ** min(failures, 10), MAX_BACKOFF_SECONDS))


async def _loop(kind: Kind, service: Service, memo: kopf.Memo, guarded: bool, resync: float | None,
                ref: ObjectRef, current: Callable[[], kopf.Body], stop: asyncio.Event) -> None:
    """An object's reconcile loop: reconcile, then wait to be woken (or for its due time, which the
    scheduler turns into a wake-up, or for the resync), until `stop`."""
    wake = memo.wakeups.register(ref, {OWN: own_change(current(), guarded)})
    stopping = asyncio.ensure_future(stop.wait())  # one waiter for the loop's whole life
    written: Written | None = None
    failures = 0
    try:
        while not stop.is_set():
            wake.clear()
            try:
                # Kopf's context (for kopf.event) travels with the call, as asyncio.to_thread does.
                done = await asyncio.get_running_loop().run_in_executor(
                    memo.reconcilers, contextvars.copy_context().run,
                    reconcile_alone, kind, service, current(), memo, written, guarded)
                written, due, failures = done.written, done.due, 0
            except Exception:
                log.exception("reconcile failed", extra=logs.extra(kind.kind, ref.namespace, ref.name))
                due = datetime.now(timezone.utc) + backoff(memo.config, failures)
                failures += 1
            memo.scheduler.at(ref, due)
            await _woken(wake, stopping, resync)
    finally:
        stopping.cancel()
        memo.wakeups.unregister(ref, wake)
        memo.scheduler.at(ref, None)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig, kind: Kind, service: Service,
             guarded: bool = False) -> None:
    """One reconcile loop per object (`handlers.loops`), level-based: it reconciles when it starts
    (the object was created, or the operator started) and whenever it is woken (`triggers`), one
    reconcile at a time. Nothing about the loop is written to the object; with
    `config.resync_seconds` it also reconciles objects left unchanged that long, so drift in the
    driven systems is repaired (a resync that finds nothing new writes nothing)."""
    loop = functools.partial(_loop, kind, service)
    resync = config.resync_seconds or None

    @kopf.on.event(GROUP, VERSION, kind.plural, id="wake", registry=registry)
    async def changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        raw = event["object"]
        meta = raw.get("metadata") or {}
        ref = ObjectRef(kind.plural, meta.get("namespace") or "", meta.get("name") or "")
        memo.loops.seen(ref, raw, event.get("type") == "DELETED", functools.partial(loop, memo, guarded, resync))
        memo.wakeups(ref, OWN, own_change(raw, guarded))
