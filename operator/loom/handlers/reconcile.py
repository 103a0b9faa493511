"""The Kopf glue every kind shares: parse the spec at the boundary, run the service, write status
only when it changed, turn condition transitions into Events, hand the next due time to the
scheduler, and count it all in metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from loom import logs
from loom.api.kinds import Kind
from loom.api.meta import API_VERSION, GROUP, VERSION
from loom.config import OperatorConfig
from loom.domain.outcome import READY, Observed, Outcome
from loom.handlers.triggers import ObjectRef
from loom.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES
from loom.services.context import ReconcileContext
from loom.services.status import Transition, next_status

Service = Callable[[Any, ReconcileContext], Outcome]


def describe_errors(error: ValidationError) -> str:
    """One line per invalid field, with the field path as users write it (spec.a.b[0].c)."""
    lines = []
    for err in error.errors():
        path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        lines.append(f"{path}: {err['msg']}")
    return "; ".join(lines)


def _post_events(body: kopf.Body, transitions: list[Transition]) -> None:
    """One Event per transition; a condition that Ready merely repeats is not posted twice."""
    ready = next((t.condition for t in transitions if t.condition.type == READY), None)
    for t in transitions:
        cond = t.condition
        if ready is not None and cond is not ready and (cond.reason, cond.message) == (ready.reason, ready.message):
            continue
        kind = "Normal" if cond.status == "True" or cond.status == "Unknown" else "Warning"
        message = f"{cond.type}={cond.status}" + (f": {cond.message}" if cond.message else "")
        kopf.event(body, type=kind, reason=cond.reason, message=message)


def _write(kind: Kind, body: kopf.Body, patch: kopf.Patch, outcome: Outcome, now: datetime) -> None:
    status, transitions = next_status(kind.status, body.get("status"), outcome, body.metadata.get("generation"), now)
    if status is not None:
        patch.status.update(status)
    _post_events(body, transitions)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def make_context(kind: Kind, body: kopf.Body, memo: kopf.Memo, now: datetime) -> ReconcileContext:
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
        status=dict(body.get("status") or {}),
        api_version=API_VERSION,
        kind=kind.kind,
    )


def reconcile_once(kind: Kind, service: Service, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo) -> None:
    """One reconcile. The wall clock is read here, once, and passed down as `now`.

    An invalid spec is reported (Ready=False/InvalidSpec naming the fields) and not retried: it
    stays invalid until the user changes it, which is an update. An external system that failed is
    retried as an error (TemporaryError). Anything due later goes to the scheduler."""
    logs.about(kind.kind, body.metadata.namespace, body.metadata.name or "")
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    try:
        try:
            spec = kind.spec.model_validate(dict(body.spec))
        except ValidationError as error:
            _write(kind, body, patch, Outcome((Observed(READY, False, "InvalidSpec", describe_errors(error)),)), now)
            RECONCILES.labels(kind.kind, "invalid").inc()
            return
        outcome = service(spec, make_context(kind, body, memo, now))
        _write(kind, body, patch, outcome, now)
        memo.scheduler.at(ObjectRef(kind.plural, body.metadata.namespace or "", body.metadata.name or ""),
                          outcome.requeue_at)
        if outcome.retry_after is not None:
            RECONCILES.labels(kind.kind, "retry").inc()
            raise kopf.TemporaryError(outcome.ready.message, delay=outcome.retry_after)
        RECONCILES.labels(kind.kind, "ok").inc()
    except kopf.TemporaryError:
        raise
    except Exception:
        RECONCILE_ERRORS.labels(kind.kind).inc()
        RECONCILES.labels(kind.kind, "error").inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind.kind).observe(time.monotonic() - started)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig, kind: Kind, service: Service) -> None:
    """One level-based reconcile for create, update (including trigger annotations) and operator
    restart (resume); with `config.resync_seconds`, also a timer that runs the same reconcile on
    objects left unchanged that long, so drift in the driven systems is repaired (a resync that finds
    nothing new writes nothing)."""

    @kopf.on.resume(GROUP, VERSION, kind.plural, id="reconcile", registry=registry)
    @kopf.on.create(GROUP, VERSION, kind.plural, id="reconcile", registry=registry)
    @kopf.on.update(GROUP, VERSION, kind.plural, id="reconcile", registry=registry)
    def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        reconcile_once(kind, service, body, patch, memo)

    if config.resync_seconds > 0:

        @kopf.timer(GROUP, VERSION, kind.plural, id="resync", interval=config.resync_seconds,
                    idle=config.resync_seconds, registry=registry)
        def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
            reconcile_once(kind, service, body, patch, memo)
