"""Kopf handlers for datalakes: the shared reconcile (with a periodic resync that repairs tables
dropped behind Loom's back) and a finalizer that applies `deletionPolicy`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from loom import logs
from loom.api.datalake import DataLakeSpec
from loom.api.kinds import DATALAKE
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.domain.errors import SecretNotFoundError
from loom.handlers import reconcile
from loom.services import datalake


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    reconcile.register(registry, config, DATALAKE, datalake.reconcile)

    @kopf.on.delete(GROUP, VERSION, DATALAKE.plural, id="deletion-policy", registry=registry)
    def apply_deletion_policy(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
        """The finalizer stays until the tables are dropped (Delete) or at once (Retain); a transient
        catalog error is retried by Kopf, a spec or Secret that cannot be read lets go and keeps the data."""
        logs.about(DATALAKE.kind, body.metadata.namespace, body.metadata.name or "")
        try:
            spec = DataLakeSpec.model_validate(dict(body.spec))
        except ValidationError as error:
            raise kopf.PermanentError(f"invalid spec, no tables dropped: {error.error_count()} error(s)") from error
        ctx = reconcile.make_context(DATALAKE, body, memo, datetime.now(timezone.utc))
        try:
            dropped = datalake.delete(spec, ctx)
        except SecretNotFoundError as error:
            raise kopf.PermanentError(f"{error}; tables kept") from error
        except datalake.CatalogUnavailableError as error:
            raise kopf.TemporaryError(str(error), delay=config.dependency_retry_seconds) from error
        if dropped:
            logger.info("dropped tables %s from namespace %s", ", ".join(dropped), spec.namespace)
