"""Feast registry and online store for Loom's feature views: the RepoConfig, the Feast objects built
from a FeatureViewDefinition, and applying or removing them with Feast's own `FeatureStore.apply`.

`import feast` costs seconds, so it happens inside the functions, never at module import."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loom.domain.feature_views import (
    PIN_CATALOG,
    TAG_OWNER,
    TAG_VERSION,
    FeatureViewDefinition,
)
from loom.drivers import feast_internals
from loom.drivers.host import out_of_process

if TYPE_CHECKING:
    from feast import Entity, FeatureStore, FeatureView
    from feast.repo_config import RepoConfig


class OnlineKind(str, Enum):
    REDIS = "redis"
    SQLITE = "sqlite"


@dataclass(frozen=True)
class StoreSettings:
    """Where one Feast project lives: its SQL registry and its online store."""

    project: str
    registry_uri: str  # SQLAlchemy URL; also holds the pin catalog
    online_kind: OnlineKind
    online_connection: str  # redis "host:port[,password=...]" or a SQLite file path

    @property
    def sqlalchemy_uri(self) -> str:
        """Feast rewrites a bare postgresql:// to psycopg 3, which the main environment does not ship;
        name psycopg2 (what SQLAlchemy, and so the pin catalog, picks for it) explicitly."""
        if self.registry_uri.startswith("postgresql://"):
            return "postgresql+psycopg2://" + self.registry_uri[len("postgresql://") :]
        return self.registry_uri

    def to_json(self) -> dict[str, str]:
        return {
            "project": self.project,
            "registry_uri": self.registry_uri,
            "online_kind": self.online_kind.value,
            "online_connection": self.online_connection,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> "StoreSettings":
        return cls(data["project"], data["registry_uri"], OnlineKind(data["online_kind"]), data["online_connection"])


class DefinitionConflict(Exception):
    """The registry already holds an object of that name that belongs to someone else."""


def repo_config(settings: StoreSettings) -> "RepoConfig":
    from feast.repo_config import RepoConfig

    if settings.online_kind is OnlineKind.REDIS:
        # Every materialization reads a whole pinned snapshot over a window that ends now, so the
        # newest row per entity it writes is the newest the snapshot knows. Writing without Feast's
        # read-compare step makes Redis hold exactly that (as SQLite's upsert does), also after the
        # lake's history was rewritten, in one round trip instead of two.
        online: dict[str, Any] = {
            "type": "redis", "connection_string": settings.online_connection, "skip_dedup": True,
        }
    else:
        online = {"type": "sqlite", "path": settings.online_connection}
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry={
            "registry_type": "sql",
            "path": settings.sqlalchemy_uri,
            # Several processes share the registry (operator, materialization, training); never
            # answer from a stale cache.
            "cache_ttl_seconds": 0,
            # Model servers keep serving the last values while a materialization runs.
            "serve_features_while_materializing": True,
        },
        online_store=online,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
    )


def open_store(settings: StoreSettings) -> "FeatureStore":
    """The FeatureStore; local SQLite files get their directories first (SQLAlchemy and sqlite3
    create a database file, never the directory it lives in)."""
    from feast import FeatureStore

    uri = settings.sqlalchemy_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
    if settings.online_kind is OnlineKind.SQLITE:
        Path(settings.online_connection).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def feast_objects(definition: FeatureViewDefinition) -> tuple[list["Entity"], "FeatureView"]:
    """The Entity and FeatureView objects for a definition; the schema names the join keys too, so
    Feast never has to infer anything from the source at apply time."""
    from feast import Entity, FeatureView, Field, ValueType
    from feast.infra.data_sources.contrib.iceberg_catalog import IcebergSource
    from feast.types import from_value_type

    source = definition.source
    entities = [
        Entity(
            name=e.name,
            join_keys=[e.join_key],
            value_type=ValueType[e.value_type],
            description=e.description,
        )
        for e in definition.entities
    ]
    batch_source = IcebergSource(
        name=f"{definition.name}__pin",
        catalog_type="sql",
        catalog_name=PIN_CATALOG,
        warehouse=source.warehouse,
        namespace=source.pin.namespace,
        table=source.pin.table,
        catalog_properties={k: v for k, v in source.pin.catalog_properties().items() if k != "type"},
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_field or "",
        tags={TAG_OWNER: definition.owner},
    )
    schema = [Field(name=e.join_key, dtype=from_value_type(ValueType[e.value_type])) for e in definition.entities]
    schema += [Field(name=f.name, dtype=feast_type(f.dtype), description=f.description) for f in definition.features]
    view = FeatureView(
        name=definition.name,
        entities=entities,
        ttl=timedelta(seconds=definition.ttl_seconds),
        schema=schema,
        source=batch_source,
        online=definition.online,
        tags=definition.tags(),
    )
    return entities, view


def feast_type(name: str) -> Any:
    """feast.types object for a Loom dtype name such as Float64 or Array(Int64)."""
    from feast import types

    if name.startswith("Array(") and name.endswith(")"):
        return types.Array(feast_type(name[len("Array(") : -1]))
    return getattr(types, name)


def get_view(store: "FeatureStore", name: str) -> "FeatureView | None":
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException:
        return None


def applied_version(settings: StoreSettings, definition: FeatureViewDefinition) -> str | None:
    """The version tag of the view the registry holds for this definition (None when absent)."""
    view = get_view(open_store(settings), definition.name)
    if view is None:
        return None
    _check_owner(view.tags, definition)
    return view.tags.get(TAG_VERSION)


@out_of_process()
def apply(settings: StoreSettings, definition: FeatureViewDefinition) -> bool:
    """Make the registry hold exactly this definition; True when something was written."""
    store = open_store(settings)
    view = get_view(store, definition.name)
    if view is not None:
        _check_owner(view.tags, definition)
        if view.tags.get(TAG_VERSION) == definition.version:
            return False
    entities, new_view = feast_objects(definition)
    _check_entities(store, definition, entities)
    store.apply([*entities, new_view])
    return True


@out_of_process()
def remove(settings: StoreSettings, view_name: str, owner: str) -> bool:
    """Tear down the view's online data, then delete the view, its source and the entities no other
    view uses; False when there was no such view. A view of another owner is refused."""
    store = open_store(settings)
    view = get_view(store, view_name)
    if view is None:
        return False
    if view.tags.get(TAG_OWNER) != owner:
        raise DefinitionConflict(f'feature view "{view_name}" belongs to {view.tags.get(TAG_OWNER) or "someone else"}')
    used = {name for other in store.list_feature_views() if other.name != view.name for name in other.entities}
    orphans = [store.get_entity(name) for name in view.entities if name not in used]
    source = [view.batch_source] if view.batch_source is not None else []
    feast_internals.teardown_online(store, view)  # first: a failure leaves the view to find again
    store.apply([], objects_to_delete=[view, *source, *orphans], partial=False)
    return True


def online_row_count(settings: StoreSettings, definition: FeatureViewDefinition) -> int:
    """Entity rows of this view in the online store (keys carrying the view's timestamp)."""
    if settings.online_kind is OnlineKind.SQLITE:
        from feast.infra.online_stores.helpers import compute_table_id

        table = compute_table_id(settings.project, _Named(definition.name))
        with sqlite3.connect(settings.online_connection) as conn:
            try:
                (count,) = conn.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{table}"').fetchone()
            except sqlite3.OperationalError:  # the table appears with the first apply
                return 0
        return int(count)
    config = repo_config(settings)
    client = feast_internals.redis_client(config)
    pattern = feast_internals.redis_key_pattern(config, definition.join_keys)
    ts_field = feast_internals.timestamp_field(definition.name)
    count = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) == 1000:
            count += _count_with_field(client, batch, ts_field)
            batch = []
    return count + _count_with_field(client, batch, ts_field)


@out_of_process()
def ping_online(settings: StoreSettings) -> None:
    """Raise unless a Redis online store answers (a SQLite one is a local file)."""
    if settings.online_kind is OnlineKind.REDIS:
        redis_client(settings).ping()


def redis_client(settings: StoreSettings) -> Any:
    """A redis-py client on the Redis database Feast writes for these settings."""
    return feast_internals.redis_client(repo_config(settings))


def _count_with_field(client: Any, keys: list[bytes], field: bytes) -> int:
    if not keys:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hexists(key, field)
        return sum(1 for present in pipe.execute() if present)


@dataclass(frozen=True)
class _Named:
    """What Feast's table-id helper reads from a feature view."""

    name: str


def _check_owner(tags: dict[str, str], definition: FeatureViewDefinition) -> None:
    owner = tags.get(TAG_OWNER)
    if owner != definition.owner:
        raise DefinitionConflict(
            f'feature view "{definition.name}" in project "{definition.project}" belongs to {owner or "someone else"}'
        )


def _check_entities(store: "FeatureStore", definition: FeatureViewDefinition, entities: list["Entity"]) -> None:
    """An entity shared by several views must mean the same thing to all of them."""
    from feast.errors import EntityNotFoundException

    users: dict[str, list[str]] = {}
    for view in store.list_feature_views():
        if view.name != definition.name:
            for name in view.entities:
                users.setdefault(name, []).append(view.name)
    for entity in entities:
        try:
            existing = store.get_entity(entity.name)
        except EntityNotFoundException:
            continue
        same = (existing.join_key, existing.value_type) == (entity.join_key, entity.value_type)
        if not same and users.get(entity.name):
            raise DefinitionConflict(
                f'entity "{entity.name}" is already used by {", ".join(sorted(users[entity.name]))} '
                f"with join key {existing.join_key} ({existing.value_type.name})"
            )
