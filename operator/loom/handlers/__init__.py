"""Kopf handlers: thin glue between Kopf and the services. Nothing registers at import; the CLI
(or a test) calls `build_registry(config)` with the configuration read once at start-up."""

from __future__ import annotations

import kopf

from loom.api.kinds import KINDS
from loom.config import ExecutorKind, OperatorConfig
from loom.handlers import datalake, featureset, inferenceservice, lifecycle, links, runs, serving, trainingjob


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """Every Loom handler, registered with this configuration into a registry of its own."""
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, config)
    modules = {"DataLake": datalake, "FeatureSet": featureset, "TrainingJob": trainingjob,
               "InferenceService": inferenceservice}
    for kind in config.controllers:
        modules[kind].register(registry, config)
    links.register(registry, config.controllers)
    if config.executor == ExecutorKind.KUBERNETES:  # the local executor reports its own runs
        runs.register(registry, KINDS)
        if "InferenceService" in config.controllers:
            serving.register(registry)
    return registry
