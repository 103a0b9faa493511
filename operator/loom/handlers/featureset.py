"""Kopf handlers for featuresets: the shared reconcile (brought back by its DataLake table's changes,
see `links`) and the finalizer that removes the feature view and its online data from Feast when the
FeatureSet goes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from loom import logs
from loom.api.featureset import FeatureSetSpec
from loom.api.kinds import FEATURESET
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.domain.errors import SecretNotFoundError
from loom.handlers import reconcile
from loom.services import featureset


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    reconcile.register(registry, config, FEATURESET, featureset.reconcile)

    @kopf.on.delete(GROUP, VERSION, FEATURESET.plural, id="feast-cleanup", registry=registry)
    def remove_from_feast(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
        """The finalizer stays until Feast has let go of the view (registry errors are retried); the
        lake table is never touched."""
        logs.about(FEATURESET.kind, body.metadata.namespace, body.metadata.name or "")
        try:
            spec = FeatureSetSpec.model_validate(dict(body.spec))
        except ValidationError as error:
            message = f"invalid spec, nothing removed from Feast: {error.error_count()} error(s)"
            raise kopf.PermanentError(message) from error
        try:
            removed = featureset.delete(spec, reconcile.make_context(FEATURESET, body, memo, datetime.now(timezone.utc)))
        except SecretNotFoundError as error:
            raise kopf.PermanentError(f"{error}; the feature view is left in Feast") from error
        if removed:
            logger.info("removed feature view %s and its online data from Feast", body.metadata.name)
