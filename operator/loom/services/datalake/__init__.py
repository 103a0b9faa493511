"""DataLake reconcile as observe → decide → act: observe reads the catalog (each table once), the
executor's runs and the object's status; decide is pure; act creates and evolves tables and submits
or removes workloads. Deletion applies `deletionPolicy` the same way."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec
from loom.domain.errors import SecretNotFoundError
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.datalake.act import act, drop
from loom.services.datalake.decide import decide, deletion
from loom.services.datalake.observe import observe
from loom.services.datalake.session import SECRET_NOT_FOUND, open_session


class CatalogUnavailableError(RuntimeError):
    """The catalog could not be reached or changed; the message has the Secret's values redacted."""


def reconcile(spec: DataLakeSpec, ctx: ReconcileContext) -> Outcome:
    with open_session(spec, ctx.kube, ctx.namespace) as session:
        return act(decide(spec, observe(spec, ctx, session), ctx.now), ctx, session)


def delete(spec: DataLakeSpec, ctx: ReconcileContext) -> list[str]:
    """Apply `deletionPolicy`; returns the tables dropped now. Raises SecretNotFoundError when the
    catalog's Secret is gone (the tables cannot be reached, so they are kept) and
    CatalogUnavailableError for a failure worth retrying."""
    deletions = deletion(spec)
    if not deletions:
        return []
    with open_session(spec, ctx.kube, ctx.namespace) as session:
        if session.failure is not None:
            if session.failure.reason == SECRET_NOT_FOUND:
                raise SecretNotFoundError(session.failure.message)
            raise CatalogUnavailableError(session.failure.message)
        try:
            return drop(deletions, session)
        except Exception as error:  # re-raised without the original, whose text may quote a credential
            raise CatalogUnavailableError(session.redact(error)) from None
