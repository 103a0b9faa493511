"""What a FeatureSet asks of Feast, computed from specs alone: the feature view definition (whose
version hash follows from it) and where its registry and online store are."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.api.meta import parse_duration
from loom.config import OperatorConfig
from loom.domain.feature_views import (
    EntityDefinition,
    FeatureDefinition,
    FeatureViewDefinition,
    PinnedSource,
    PinRef,
    feast_name,
    feast_project,
)
from loom.drivers.feast_store import OnlineKind, StoreSettings


def feature_view_definition(
    spec: FeatureSetSpec, lake: DataLakeSpec, namespace: str, name: str, registry_uri: str
) -> FeatureViewDefinition:
    project, view = feast_project(namespace), feast_name(name)
    source = spec.source
    return FeatureViewDefinition(
        project=project,
        name=view,
        owner=f"{namespace}/{name}",
        entities=tuple(
            EntityDefinition(e.name, e.join_keys[0], e.value_type, e.description or "") for e in spec.entities
        ),
        features=tuple(FeatureDefinition(f.name, f.dtype, f.description or "") for f in spec.features),
        ttl_seconds=parse_duration(spec.ttl).total_seconds(),
        online=spec.online.enabled,
        source=PinnedSource(
            pin=PinRef(registry_uri, project, view, tuple(sorted(lake.catalog.properties.items()))),
            lake_table=f"{lake.namespace}.{source.data_lake_ref.table}",
            warehouse=lake.catalog.warehouse or "",
            timestamp_field=source.timestamp_field,
            created_timestamp_field=source.created_timestamp_field,
        ),
    )


def store_settings(spec: FeatureSetSpec, namespace: str, config: OperatorConfig,
                   connection: str | None = None) -> StoreSettings:
    """This FeatureSet's registry and online store. The online connection is the operator's default
    unless the spec names a Secret: then it is `connection` when the caller read the Secret, and
    empty otherwise (a workload receives it from the Secret as an environment variable)."""
    kind = OnlineKind(spec.online.store)
    if spec.online.connection_secret_ref is not None:
        online = connection or ""
    else:
        online = config.feast_redis if kind is OnlineKind.REDIS else config.feast_sqlite_path
    return StoreSettings(feast_project(namespace), spec.registry.uri or config.feast_registry_uri, kind, online)
