"""Kopf handlers for featuresets: the shared reconcile, a timer that notices new lake snapshots and
due schedule ticks (and nudges the reconcile through an annotation), and the finalizer that removes
the feature view and its online data from Feast when the FeatureSet goes."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from loom.api.featureset import FeatureSetSpec
from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.meta import GROUP, VERSION
from loom.config import OperatorConfig
from loom.drivers.kube import SecretNotFoundError
from loom.handlers.reconcile import make_context, register
from loom.services import featureset

NUDGE = "featureset.loom.dev/source"
_CONFIG = OperatorConfig.from_env()  # Kopf fixes timer intervals at registration, i.e. at import

register(FEATURESET, featureset.reconcile, resync_seconds=_CONFIG.resync_seconds)


@kopf.timer(GROUP, VERSION, FEATURESET.plural, id="follow-source", interval=_CONFIG.dependency_retry_seconds)
def follow_source(body: kopf.Body, patch: kopf.Patch, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """One GET of the DataLake; when its table moved on (or a schedule tick is due) an annotation
    change makes Kopf run the reconcile, once per new marker."""
    lake = memo.kube.get_loom(DATALAKE, namespace, body.spec["source"]["dataLakeRef"]["name"])
    marker = featureset.source_moved(dict(body.spec), dict(body.get("status") or {}), lake)
    if marker is not None and body.metadata.annotations.get(NUDGE) != marker:
        patch.metadata.annotations[NUDGE] = marker


@kopf.on.delete(GROUP, VERSION, FEATURESET.plural, id="feast-cleanup")
def remove_from_feast(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """The finalizer stays until Feast has let go of the view (registry errors are retried); the
    lake table is never touched."""
    try:
        spec = FeatureSetSpec.model_validate(dict(body.spec))
    except ValidationError as error:
        message = f"invalid spec, nothing removed from Feast: {error.error_count()} error(s)"
        raise kopf.PermanentError(message) from error
    try:
        removed = featureset.delete(spec, make_context(body, namespace, name, memo))
    except SecretNotFoundError as error:
        raise kopf.PermanentError(f"{error}; the feature view is left in Feast") from error
    if removed:
        logger.info("removed feature view %s and its online data from Feast", name)
