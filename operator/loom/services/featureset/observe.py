"""Everything a FeatureSet decision needs, read once into one value: the DataLake object (its spec and
the status entry of the source table), the lake table itself (its snapshot and that snapshot's
schema, one load), what the Feast registry holds, the materialization records next to the pin, the
runs of this FeatureSet's workloads, and the FeatureSet's own status as Kopf delivered it.

Reads only. A system that cannot be reached is recorded as `Unavailable`, never raised: whether
that matters, and how much, is the decision's business."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from loom.api.datalake import DataLakeSpec, DataLakeStatus, TableStatus
from loom.api.featureset import FeatureSetSpec, FeatureSetStatus
from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.meta import API_VERSION
from loom.builders.materialize import featureset_label
from loom.domain.feature_views import PinRef, feast_name
from loom.domain.workloads import OwnerRef, WorkloadStatus
from loom.drivers import feast_pins
from loom.drivers.feast_registry import RegisteredView, registered_view
from loom.drivers.feast_store import StoreSettings
from loom.drivers.iceberg_catalog import catalog_properties
from loom.drivers.iceberg_schema import LakeTable, read_table
from loom.services.context import ReconcileContext
from loom.services.featureset.definition import store_settings

CATALOG_READY = "CatalogReady"
T = TypeVar("T")


@dataclass(frozen=True)
class Unavailable:
    """A system that could not be read this time (Secret values redacted from the message)."""

    message: str


@dataclass(frozen=True)
class LakeObject:
    """The DataLake as its object says; `spec` is None when it does not parse."""

    spec: DataLakeSpec | None
    declared: bool  # the source table is one of spec.tables
    entry: TableStatus | None  # the source table's entry in status.tables
    catalog_ready: bool | None
    catalog_message: str = ""


@dataclass(frozen=True)
class Observation:
    owner: OwnerRef
    namespace: str
    generation: int | None
    retry_seconds: float
    settings: StoreSettings  # without Secret values: a Secret-held online connection is empty
    status: FeatureSetStatus
    lake: LakeObject | Unavailable | None  # None: the DataLake does not exist
    lake_secret_keys: tuple[str, ...] = ()
    table: LakeTable | Unavailable | None = None  # None: not in the catalog (or the lake is not usable)
    registry: RegisteredView | Unavailable | None = None  # None: the registry holds no view of this name
    records: Mapping[str, Mapping[str, Any]] | Unavailable = Unavailable("not read")
    runs: Mapping[str, tuple[WorkloadStatus, ...]] | Unavailable = Unavailable("not read")

    @property
    def name(self) -> str:
        return self.owner.name


def _redactor(secret: Mapping[str, str]) -> Callable[[object], str]:
    values = sorted((v for v in secret.values() if v), key=len, reverse=True)

    def redact(text: object) -> str:
        message = str(text) or type(text).__name__
        for value in values:
            message = message.replace(value, "***")
        return message

    return redact


def _read(read: Callable[[], T], redact: Callable[[object], str] = str) -> T | Unavailable:
    try:
        return read()
    except Exception as error:  # an unreachable system, a bad URI, a missing driver: all observed alike
        return Unavailable(redact(error))


def _status(raw: Mapping[str, Any]) -> FeatureSetStatus:
    try:
        return FeatureSetStatus.model_validate(dict(raw))
    except ValidationError:  # written by an older operator: start afresh rather than fail forever
        return FeatureSetStatus()


def lake_object(obj: Mapping[str, Any], table: str) -> LakeObject:
    try:
        spec: DataLakeSpec | None = DataLakeSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        spec = None
    try:
        status = DataLakeStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        status = DataLakeStatus()
    catalog = next((c for c in status.conditions if c.type == CATALOG_READY), None)
    return LakeObject(
        spec=spec,
        declared=spec is not None and any(t.name == table for t in spec.tables),
        entry=next((t for t in status.tables if t.name == table), None),
        catalog_ready=None if catalog is None else {"True": True, "False": False}.get(
            str(getattr(catalog.status, "value", catalog.status))),
        catalog_message=catalog.message if catalog is not None else "",
    )


def _lake_secret(lake: DataLakeSpec, ctx: ReconcileContext) -> dict[str, str]:
    ref = lake.catalog.secret_ref
    if ref is None:
        return {}
    values = ctx.kube.get_secret(ctx.namespace, ref.name)
    if ref.key is None:
        return values
    if ref.key not in values:
        raise LookupError(f"Secret {ctx.namespace}/{ref.name} has no key {ref.key!r}")
    return {ref.key: values[ref.key]}


def _runs(ctx: ReconcileContext) -> dict[str, tuple[WorkloadStatus, ...]]:
    names = ctx.executor.names(ctx.namespace, featureset_label(ctx.name))
    return {name: tuple(ctx.executor.runs(ctx.namespace, name)) for name in sorted(names)}


def observe(spec: FeatureSetSpec, ctx: ReconcileContext) -> Observation:
    ref = spec.source.data_lake_ref
    settings = store_settings(spec, ctx.namespace, ctx.config)
    found = _read(lambda: ctx.kube.get_loom(DATALAKE, ctx.namespace, ref.name))
    lake = found if found is None or isinstance(found, Unavailable) else lake_object(found, ref.table)

    keys: tuple[str, ...] = ()
    table: LakeTable | Unavailable | None = None
    if isinstance(lake, LakeObject) and lake.spec is not None and lake.declared:
        lake_spec = lake.spec
        secret = _read(lambda: _lake_secret(lake_spec, ctx))
        if isinstance(secret, Unavailable):
            table = secret
        else:
            keys = tuple(sorted(secret))
            properties = catalog_properties(lake_spec.catalog, secret)
            table = _read(lambda: read_table(lake_spec.catalog.name, properties, lake_spec.namespace, ref.table,
                                             spec.source.snapshot_id), _redactor(secret))

    pin = PinRef(settings.registry_uri, settings.project, feast_name(ctx.name))
    runs = _read(lambda: _runs(ctx))  # before the records: a run seen finished has written its record
    return Observation(
        owner=OwnerRef(API_VERSION, FEATURESET.kind, ctx.name, ctx.uid),
        namespace=ctx.namespace,
        generation=ctx.generation,
        retry_seconds=ctx.config.dependency_retry_seconds,
        settings=settings,
        status=_status(ctx.status),
        lake=lake,
        lake_secret_keys=keys,
        table=table,
        registry=_read(lambda: registered_view(settings, feast_name(ctx.name))),
        records=_read(lambda: feast_pins.read_records(pin)),
        runs=runs,
    )
