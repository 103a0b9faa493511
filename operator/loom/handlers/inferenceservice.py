"""Kopf handlers for inferenceservices: parse, reconcile, report (the logic lives in loom.services.inferenceservice)."""

from loom.api.kinds import INFERENCESERVICE
from loom.handlers.reconcile import register
from loom.services import inferenceservice

register(INFERENCESERVICE, inferenceservice.reconcile)
