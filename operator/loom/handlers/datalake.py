"""Kopf handlers for datalakes: the shared reconcile (with a periodic resync that repairs tables
dropped behind Loom's back) and a finalizer that removes the lake's workloads and applies
`deletionPolicy`, retried a bounded number of times (`deletion_attempts`) before it lets go."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from loom import logs
from loom.api.datalake import DataLakeSpec
from loom.api.kinds import DATALAKE
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.handlers import deletion, reconcile
from loom.services import datalake


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    reconcile.register(registry, config, DATALAKE, datalake.reconcile)

    @kopf.on.delete(GROUP, VERSION, DATALAKE.plural, id="deletion-policy", registry=registry,
                    retries=config.deletion_attempts, backoff=config.dependency_retry_seconds)
    def apply_deletion_policy(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int,
                              **_: Any) -> None:
        """Workloads always go; tables only under Delete and only if the lake ever got a status (an
        invalid spec created nothing). What cannot be removed is retried, then left with a Warning."""
        logs.about(DATALAKE.kind, body.metadata.namespace, body.metadata.name or "")
        try:
            spec: DataLakeSpec | None = DataLakeSpec.model_validate(dict(body.spec))
        except ValidationError as error:
            logger.info("invalid spec (%d error(s)): no tables were created, none dropped", error.error_count())
            spec = None
        deletion.attempt(DATALAKE, body, memo, logger, config, retry, lambda ctx: datalake.delete(spec, ctx))
