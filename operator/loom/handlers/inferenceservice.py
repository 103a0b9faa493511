"""Kopf handlers for inferenceservices (the logic lives in loom.services.inferenceservice)."""

from __future__ import annotations

import kopf

from loom.api.kinds import INFERENCESERVICE
from loom.config import OperatorConfig
from loom.handlers import reconcile
from loom.services import inferenceservice


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    reconcile.register(registry, config, INFERENCESERVICE, inferenceservice.reconcile)
