"""Kopf handlers for datalakes: parse, reconcile, report (the logic lives in loom.services.datalake)."""

from loom.api.kinds import DATALAKE
from loom.handlers.reconcile import register
from loom.services import datalake

register(DATALAKE, datalake.reconcile)
