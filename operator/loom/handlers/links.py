"""The links between objects, each followed by events (see `triggers.follow`): what a dependent names
(in its spec; a DataLake also names the owners of tables it declares, in its status), and what it
reads of the object it names. A dependent is reconciled only when that view changes, never on a timer."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import kopf

from loom.api.kinds import DATALAKE, FEATURESET, INFERENCESERVICE, TRAININGJOB, Kind
from loom.api.meta import GROUP, VERSION
from loom.handlers.bodies import slim
from loom.handlers.triggers import follow


def readiness(body: Mapping[str, Any]) -> object:
    """What any dependent reads of a Loom object: its generation and conditions (Ready, why, and the
    message a dependent repeats in its own)."""
    status = body.get("status") or {}
    conditions = [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration"))
                  for c in status.get("conditions") or []]
    return [body.get("metadata", {}).get("generation"), conditions]


def lake_table(lake: Mapping[str, Any], featureset: Mapping[str, Any]) -> object:
    """A FeatureSet reads one table of its DataLake, and is ready when that table is: how to reach the
    catalog, whether the table is declared, its snapshot and schema as the DataLake reports them (a
    reported schema is a table that exists) and whether the catalog is reachable. Other tables, their
    refused edits, row counts and ingest records, and the lake's other conditions do not concern it."""
    table = featureset["source"]["dataLakeRef"]["table"]
    spec = lake.get("spec") or {}
    status = lake.get("status") or {}
    declared = any(t.get("name") == table for t in spec.get("tables") or [])
    entry = next((t for t in status.get("tables") or [] if t.get("name") == table), None) or {}
    catalog = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "CatalogReady"), None)
    return [spec.get("catalog"), spec.get("namespace"), declared, entry.get("currentSnapshotId"),
            entry.get("schemaId"), catalog]


def _one(*path: str) -> Any:
    """The one object named at `path` of a dependent's spec, in the dependent's namespace."""
    def refs(body: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        value: Any = body.get("spec")
        for key in path:
            value = (value or {}).get(key)
        namespace = (body.get("metadata") or {}).get("namespace") or ""
        return [(namespace, value)] if isinstance(value, str) else []
    return refs


def _lakes_of_dataset(body: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """The DataLakes a TrainingJob reads: its labels' and its items'."""
    dataset = (body.get("spec") or {}).get("dataset") or {}
    namespace = (body.get("metadata") or {}).get("namespace") or ""
    names = {((dataset.get(part) or {}).get("dataLakeRef") or {}).get("name") for part in ("labels", "items")}
    return [(namespace, n) for n in sorted(n for n in names if isinstance(n, str))]


def features_snapshot(featureset: Mapping[str, Any], _: Mapping[str, Any]) -> object:
    """What a TrainingJob reads of its FeatureSet: readiness, and the snapshot and definition the
    features were materialized at (a new snapshot is what retraining starts on)."""
    status = featureset.get("status") or {}
    return [readiness(featureset), status.get("sourceSnapshotId"), status.get("featureViewVersion")]


def trained_version(trainingjob: Mapping[str, Any], _: Mapping[str, Any]) -> object:
    """What an InferenceService reads of its TrainingJob: readiness, and the newest registered version
    with the gate's verdict on it (a version that passed moves the alias serving follows)."""
    status = trainingjob.get("status") or {}
    return [readiness(trainingjob), status.get("modelVersion"), status.get("gate")]


def table_owners(body: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """The DataLakes (any namespace) that own tables this DataLake declares (`status.tables[].ownedBy`)."""
    owners = {t.get("ownedBy") for t in (body.get("status") or {}).get("tables") or []}
    return [(ns, name) for ns, _, name in (o.partition("/") for o in owners if isinstance(o, str) and "/" in o)]


def ownership(owner: Mapping[str, Any], _: Mapping[str, Any]) -> object:
    """What a claimant reads of a table's owner: whether that object (this uid) still holds it."""
    meta = owner.get("metadata") or {}
    return [meta.get("uid"), meta.get("deletionTimestamp") is not None]


def cache(registry: kopf.OperatorRegistry, kind: Kind) -> None:
    """Keep the newest body of every object of `kind` in the operator's watch cache, so services read
    the objects they depend on without an API call. Registered before the links' own handlers, so an
    object is cached before its dependents are woken by its change."""

    @kopf.on.event(GROUP, VERSION, kind.plural, id=f"cache-{kind.plural}", registry=registry)
    def seen(*, event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        raw = None if event.get("type") == "DELETED" else event.get("object")
        memo.watched.seen(kind.plural, namespace or "", name, slim(raw) if raw is not None else None)


def register(registry: kopf.OperatorRegistry, controllers: Collection[str]) -> None:
    """The links of the kinds this operator reconciles (`controllers`), and the watch cache of the
    kinds they read."""
    read = {DATALAKE.kind: FEATURESET.kind in controllers or DATALAKE.kind in controllers
            or TRAININGJOB.kind in controllers,
            FEATURESET.kind: TRAININGJOB.kind in controllers or INFERENCESERVICE.kind in controllers,
            TRAININGJOB.kind: INFERENCESERVICE.kind in controllers}
    for kind in (DATALAKE, FEATURESET, TRAININGJOB):
        if read[kind.kind]:
            cache(registry, kind)
    if FEATURESET.kind in controllers:
        follow(registry, FEATURESET, DATALAKE, _one("source", "dataLakeRef", "name"), lake_table)
    if DATALAKE.kind in controllers:
        follow(registry, DATALAKE, DATALAKE, table_owners, ownership)
    if TRAININGJOB.kind in controllers:
        follow(registry, TRAININGJOB, FEATURESET, _one("dataset", "featureSetRef", "name"), features_snapshot)
        follow(registry, TRAININGJOB, DATALAKE, _lakes_of_dataset, lambda body, _: readiness(body))
    if INFERENCESERVICE.kind in controllers:
        follow(registry, INFERENCESERVICE, TRAININGJOB, _one("model", "trainingJobRef", "name"), trained_version)
        follow(registry, INFERENCESERVICE, FEATURESET, _one("predictor", "featureSetRef", "name"),
               lambda body, _: readiness(body))
