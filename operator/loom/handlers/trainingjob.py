"""Kopf handlers for trainingjobs (the logic lives in loom.services.trainingjob)."""

from __future__ import annotations

import kopf

from loom.api.kinds import TRAININGJOB
from loom.config import OperatorConfig
from loom.handlers import reconcile
from loom.services import trainingjob


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    reconcile.register(registry, config, TRAININGJOB, trainingjob.reconcile)
