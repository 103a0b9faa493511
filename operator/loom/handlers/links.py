"""The links of the chain, each followed by events (see `triggers.follow`): what a dependent names
in its spec, and what it reads of the object it names. A dependent is reconciled only when that view
changes, never on a timer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from loom.api.kinds import DATALAKE, FEATURESET, INFERENCESERVICE, TRAININGJOB
from loom.handlers.triggers import follow


def readiness(body: Mapping[str, Any]) -> object:
    """What any dependent reads of a Loom object: its generation and conditions (Ready and why)."""
    status = body.get("status") or {}
    conditions = [(c.get("type"), c.get("status"), c.get("reason"), c.get("observedGeneration"))
                  for c in status.get("conditions") or []]
    return [body.get("metadata", {}).get("generation"), conditions]


def lake_table(lake: Mapping[str, Any], featureset: Mapping[str, Any]) -> object:
    """A FeatureSet reads one table of its DataLake: its declaration, its state in status (snapshot,
    schema) and the lake's catalog; other tables and the lake's other conditions do not concern it."""
    table = featureset["source"]["dataLakeRef"]["table"]
    spec = lake.get("spec") or {}
    declared = next((t for t in spec.get("tables") or [] if t.get("name") == table), None)
    status = next((t for t in (lake.get("status") or {}).get("tables") or [] if t.get("name") == table), None)
    observed = {k: v for k, v in (status or {}).items() if k != "lastIngest"}
    conditions = {c.get("type"): c.get("status") for c in (lake.get("status") or {}).get("conditions") or []}
    return [spec.get("catalog"), spec.get("namespace"), declared, observed, conditions.get("CatalogReady")]


def _one(*path: str) -> Any:
    def refs(spec: Mapping[str, Any]) -> Iterable[str]:
        value: Any = spec
        for key in path:
            value = (value or {}).get(key)
        return [value] if isinstance(value, str) else []
    return refs


def register(registry: kopf.OperatorRegistry) -> None:
    follow(registry, FEATURESET, DATALAKE, _one("source", "dataLakeRef", "name"), lake_table)
    follow(registry, TRAININGJOB, FEATURESET, _one("dataset", "featureSetRef", "name"),
           lambda body, _: readiness(body))
    follow(registry, TRAININGJOB, DATALAKE, _one("dataset", "labels", "dataLakeRef", "name"),
           lambda body, _: readiness(body))
    follow(registry, INFERENCESERVICE, TRAININGJOB, _one("model", "trainingJobRef", "name"),
           lambda body, _: readiness(body))
