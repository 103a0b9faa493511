"""The Kopf glue every finalizer shares: one cleanup attempt through the service, then either a
retry (TemporaryError with the service's backoff) or letting the object go, with a Warning Event
naming what was left behind. A user's delete always finishes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import kopf

from loom import logs
from loom.api.kinds import Kind
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.handlers.reconcile import make_context
from loom.handlers.triggers import ObjectRef
from loom.services.context import ReconcileContext
from loom.services.deletion import Cleanup, verdict

LEFT_BEHIND = "CleanupIncomplete"


def finish(body: kopf.Body, logger: kopf.Logger, config: OperatorConfig, cleanup: Cleanup, attempt: int) -> None:
    """Raise to be called again, or return to release the finalizer."""
    if cleanup.removed:
        logger.info("removed %s", ", ".join(cleanup.removed))
    decided = verdict(cleanup, attempt, config.deletion_attempts, config.dependency_retry_seconds)
    if decided.retry_after is not None:
        raise kopf.TemporaryError(
            f"cleanup attempt {attempt + 1} of {config.deletion_attempts} incomplete: {cleanup.message}",
            delay=decided.retry_after)
    if decided.warning is not None:
        message = f"deleted after {attempt + 1} attempt(s) with leftovers: {decided.warning}"
        logger.warning("%s", message)
        kopf.event(body, type="Warning", reason=LEFT_BEHIND, message=message)


def attempt(kind: Kind, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, config: OperatorConfig,
            retry: int, clean: Callable[[ReconcileContext], Cleanup]) -> None:
    """One cleanup attempt, under the object's lock: never alongside its loop's last reconcile."""
    ref = ObjectRef(kind.plural, body.metadata.namespace or "", body.metadata.name or "")
    with memo.wakeups.exclusive(ref):
        ctx = make_context(kind, body, memo, datetime.now(timezone.utc))
        finish(body, logger, config, clean(ctx), retry)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig, kind: Kind, handler_id: str,
             clean: Callable[[ReconcileContext], Cleanup]) -> None:
    """A finalizer whose one job is the service's `clean` (e.g. stopping local processes that nothing
    else would), retried a bounded number of times with the dependency backoff."""

    @kopf.on.delete(GROUP, VERSION, kind.plural, id=handler_id, registry=registry,
                    retries=config.deletion_attempts, backoff=config.dependency_retry_seconds)
    def cleanup(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any) -> None:
        logs.about(kind.kind, body.metadata.namespace, body.metadata.name or "")
        attempt(kind, body, memo, logger, config, retry, clean)
