"""The Kopf glue every kind shares: parse the spec at the boundary, run the service, write status
only when it changed, turn condition transitions into Events, count it all in metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from loom.api.kinds import Kind
from loom.api.meta import GROUP, VERSION
from loom.domain.outcome import READY, Observed, Outcome
from loom.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES
from loom.services.context import ReconcileContext
from loom.services.status import Transition, next_status

SpecT = TypeVar("SpecT", bound=BaseModel)
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


def _write(kind: Kind, body: kopf.Body, patch: kopf.Patch, outcome: Outcome) -> None:
    status, transitions = next_status(
        kind.status, body.get("status"), outcome, body.metadata.get("generation"), datetime.now(timezone.utc)
    )
    if status is not None:
        patch.status.update(status)
    _post_events(body, transitions)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def _reconcile(
    kind: Kind, service: Service, body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, memo: kopf.Memo
) -> None:
    started = time.monotonic()
    try:
        try:
            spec = kind.spec.model_validate(dict(body.spec))
        except ValidationError as error:
            message = describe_errors(error)
            _write(kind, body, patch, Outcome((Observed(READY, False, "InvalidSpec", message),)))
            RECONCILES.labels(kind.kind, "invalid").inc()
            raise kopf.PermanentError(message) from error
        ctx = make_context(body, namespace, name, memo)
        outcome = service(spec, ctx)
        _write(kind, body, patch, outcome)
        if outcome.retry_after is not None:
            RECONCILES.labels(kind.kind, "waiting").inc()
            raise kopf.TemporaryError(outcome.ready.message, delay=outcome.retry_after)
        RECONCILES.labels(kind.kind, "ok").inc()
    except (kopf.PermanentError, kopf.TemporaryError):
        raise
    except Exception:
        RECONCILE_ERRORS.labels(kind.kind).inc()
        RECONCILES.labels(kind.kind, "error").inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind.kind).observe(time.monotonic() - started)


def make_context(body: kopf.Body, namespace: str, name: str, memo: kopf.Memo) -> ReconcileContext:
    """The services' view of one object and of the drivers set up at start-up."""
    return ReconcileContext(
        namespace=namespace,
        name=name,
        uid=body.metadata.uid,
        generation=body.metadata.get("generation"),
        kube=memo.kube,
        config=memo.config,
        executor=memo.executor,
    )


def register(kind: Kind, service: Service, resync_seconds: float = 0) -> None:
    """Register one level-based reconcile for create, update and operator restart (resume); with
    `resync_seconds`, also a timer that runs the same reconcile on objects left unchanged that long,
    so drift in the driven systems is repaired (a resync that finds nothing new writes nothing)."""

    @kopf.on.resume(GROUP, VERSION, kind.plural, id="reconcile")
    @kopf.on.create(GROUP, VERSION, kind.plural, id="reconcile")
    @kopf.on.update(GROUP, VERSION, kind.plural, id="reconcile")
    def reconcile(
        body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, memo: kopf.Memo, **_: Any
    ) -> None:
        _reconcile(kind, service, body, patch, namespace, name, memo)

    if resync_seconds > 0:

        @kopf.timer(GROUP, VERSION, kind.plural, id="resync", interval=resync_seconds, idle=resync_seconds)
        def resync(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
            _reconcile(kind, service, body, patch, namespace, name, memo)
