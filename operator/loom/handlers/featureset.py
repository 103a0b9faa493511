"""Kopf handlers for featuresets: the shared reconcile (brought back by its DataLake table's changes,
see `links`) and the finalizer that removes the FeatureSet's workloads, and its feature view and
online data from Feast, retried a bounded number of times (`deletion_attempts`) before it lets go."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from loom import logs
from loom.api.featureset import FeatureSetSpec
from loom.api.kinds import FEATURESET
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.handlers import deletion, reconcile
from loom.services import featureset


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    reconcile.register(registry, config, FEATURESET, featureset.reconcile)

    @kopf.on.delete(GROUP, VERSION, FEATURESET.plural, id="feast-cleanup", registry=registry,
                    retries=config.deletion_attempts, backoff=config.dependency_retry_seconds)
    def remove_from_feast(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any) -> None:
        """Workloads always go; Feast is cleaned only if a definition was ever applied (an invalid spec
        applied none). The lake table is never touched. What cannot be removed is retried, then left
        with a Warning."""
        logs.about(FEATURESET.kind, body.metadata.namespace, body.metadata.name or "")
        try:
            spec: FeatureSetSpec | None = FeatureSetSpec.model_validate(dict(body.spec))
        except ValidationError as error:
            logger.info("invalid spec (%d error(s)): nothing was applied to Feast", error.error_count())
            spec = None
        deletion.attempt(FEATURESET, body, memo, logger, config, retry, lambda ctx: featureset.delete(spec, ctx))
