"""Kopf handlers for featuresets: parse, reconcile, report (the logic lives in loom.services.featureset)."""

from loom.api.kinds import FEATURESET
from loom.handlers.reconcile import register
from loom.services import featureset

register(FEATURESET, featureset.reconcile)
