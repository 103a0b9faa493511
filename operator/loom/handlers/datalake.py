"""Kopf handlers for datalakes: the shared reconcile (with a periodic resync that repairs tables
dropped behind Loom's back) and a finalizer that applies `deletionPolicy`."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from loom.api.datalake import DataLakeSpec
from loom.api.kinds import DATALAKE
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.drivers.kube import SecretNotFoundError
from loom.handlers.reconcile import make_context, register
from loom.services import datalake

# Kopf fixes a timer's interval when the handler is registered, i.e. at import.
register(DATALAKE, datalake.reconcile, resync_seconds=OperatorConfig.from_env().resync_seconds)


@kopf.on.delete(GROUP, VERSION, DATALAKE.plural, id="deletion-policy")
def apply_deletion_policy(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """The finalizer stays until the tables are dropped (Delete) or at once (Retain); a transient
    catalog error is retried by Kopf, a spec or Secret that cannot be read lets go and keeps the data."""
    try:
        spec = DataLakeSpec.model_validate(dict(body.spec))
    except ValidationError as error:
        raise kopf.PermanentError(f"invalid spec, no tables dropped: {error.error_count()} error(s)") from error
    ctx = make_context(body, namespace, name, memo)
    try:
        dropped = datalake.delete(spec, ctx)
    except SecretNotFoundError as error:
        raise kopf.PermanentError(f"{error}; tables kept") from error
    except datalake.CatalogUnavailableError as error:
        raise kopf.TemporaryError(str(error), delay=memo.config.dependency_retry_seconds) from error
    if dropped:
        logger.info("dropped tables %s from namespace %s", ", ".join(dropped), spec.namespace)
