"""What Loom applies to Feast for one FeatureSet, as plain values (no Feast import: the operator
computes names and versions without paying for `import feast`).

The feature view's batch source is a *pin*: an entry in a pyiceberg SQL catalog that lives in the
Feast registry's database and points at the lake table's metadata file for one snapshot. Iceberg
metadata files are immutable, so the pin reads exactly that snapshot, the definition stays the same
when the lake moves on, and moving the pin is what publishes a new snapshot to Feast."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# pyiceberg reads extra catalog properties (FileIO credentials) from PYICEBERG_CATALOG__LOOM_PINS__*
# environment variables, which it spells with a hyphen.
PIN_CATALOG = "loom-pins"
TAG_OWNER = "loom.dev/featureset"
TAG_VERSION = "loom.dev/version"
TAG_LAKE_TABLE = "loom.dev/lake-table"


def pin_env_name(key: str) -> str:
    """The environment variable through which pyiceberg adds catalog property `key` (e.g. a FileIO
    credential from the lake's Secret) to the pin catalog, in every process that reads the pin."""
    return "PYICEBERG_CATALOG__" + "__".join(
        part.upper().replace("-", "_") for part in (PIN_CATALOG, key.replace(".", "__"))
    )


def feast_project(namespace: str) -> str:
    """One Feast project per Kubernetes namespace. Namespaces are DNS labels, so swapping '-' for '_'
    cannot collide, and the result is also valid for the SQLite online store (no hyphens there)."""
    return "loom_" + namespace.replace("-", "_")


def feast_name(name: str) -> str:
    """The feature view name for a FeatureSet name ('.' and '-' are not safe in every online store);
    two FeatureSets that map to the same name are told apart by the owner tag."""
    return name.replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class EntityDefinition:
    name: str
    join_key: str
    value_type: str  # feast.ValueType member name
    description: str = ""


@dataclass(frozen=True)
class FeatureDefinition:
    name: str
    dtype: str  # feast.types name, e.g. Float64 or Array(Int64)
    description: str = ""


@dataclass(frozen=True)
class PinRef:
    """One pin: an entry of the pin catalog (a pyiceberg SQL catalog in the registry database)."""

    catalog_uri: str
    namespace: str  # the Feast project
    table: str  # the feature view
    io_properties: tuple[tuple[str, str], ...] = ()  # the lake's FileIO settings (never Secret values)

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.namespace, self.table)

    def catalog_properties(self) -> dict[str, str]:
        return {"type": "sql", "uri": self.catalog_uri, **dict(self.io_properties)}


@dataclass(frozen=True)
class PinnedSource:
    """Where Feast reads the view's rows: the pin of one lake table."""

    pin: PinRef
    lake_table: str  # <lake namespace>.<table>, for lineage
    warehouse: str
    timestamp_field: str
    created_timestamp_field: str | None = None


@dataclass(frozen=True)
class FeatureViewDefinition:
    project: str
    name: str
    owner: str  # <namespace>/<FeatureSet name>
    entities: tuple[EntityDefinition, ...]
    features: tuple[FeatureDefinition, ...]
    ttl_seconds: float
    online: bool
    source: PinnedSource

    @property
    def version(self) -> str:
        """Hash of everything that shapes the applied Feast objects; stable across processes and
        independent of the snapshot being served."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def join_keys(self) -> list[str]:
        return [e.join_key for e in self.entities]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def tags(self) -> dict[str, str]:
        return {TAG_OWNER: self.owner, TAG_VERSION: self.version, TAG_LAKE_TABLE: self.source.lake_table}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FeatureViewDefinition":
        src = dict(data["source"])
        pin = dict(src.pop("pin"))
        pin["io_properties"] = tuple(tuple(p) for p in pin["io_properties"])
        return cls(
            project=data["project"],
            name=data["name"],
            owner=data["owner"],
            entities=tuple(EntityDefinition(**e) for e in data["entities"]),
            features=tuple(FeatureDefinition(**f) for f in data["features"]),
            ttl_seconds=float(data["ttl_seconds"]),
            online=bool(data["online"]),
            source=PinnedSource(pin=PinRef(**pin), **src),
        )
