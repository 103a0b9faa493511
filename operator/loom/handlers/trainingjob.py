"""Kopf handlers for trainingjobs: parse, reconcile, report (the logic lives in loom.services.trainingjob)."""

from loom.api.kinds import TRAININGJOB
from loom.handlers.reconcile import register
from loom.services import trainingjob

register(TRAININGJOB, trainingjob.reconcile)
