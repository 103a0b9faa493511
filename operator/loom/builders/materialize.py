"""FeatureSet -> the workload of one materialization run (pure; golden-file tested).

A run is named for exactly what it materializes (the definition's version at a snapshot, from which
earlier snapshot, for which schedule tick, which retry), so submitting it again never starts a
second run of the same thing, and a new input is a new run. The request goes to the run as a workload
file (REQUEST_FILE), never on its command line: a definition with many features or a catalog with many
properties is larger than one argument may be."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from loom.api.featureset import FeatureSetSpec
from loom.builders.labels import owned_by
from loom.domain.feature_views import FeatureViewDefinition, pin_env_name
from loom.domain.materialization import ONLINE_CONNECTION_ENV, MaterializeRequest
from loom.domain.workloads import MAX_NAME, OwnerRef, SecretEnv, Workload, digest, dns_name

COMPONENT = "materialize"
CONNECTION_KEY = "connection"  # the online store Secret's key when `connectionSecretRef.key` is unset
LABEL_LIMIT = 63
REQUEST_FILE = "request.json"


@dataclass(frozen=True)
class Target:
    """What one run materializes: the definition's version at a lake snapshot, incrementally after
    `previous` or in full, for a schedule tick or not, and which retry of a failed run it is."""

    version: str
    snapshot: int
    previous: int | None = None
    tick: datetime | None = None
    attempt: int = 0


@dataclass(frozen=True)
class LakeAccess:
    """How the run opens the lake catalog: its plain properties, and the keys of the catalog's Secret
    (their values reach the run only as environment variables from that Secret)."""

    catalog_name: str
    properties: Mapping[str, str]
    secret_name: str | None = None
    secret_keys: tuple[str, ...] = ()


def featureset_label(name: str) -> dict[str, str]:
    """The selector of a FeatureSet's workloads; a name too long for a label value is shortened with a
    hash that keeps it unique."""
    value = name if len(name) <= LABEL_LIMIT else dns_name(name, digest(name), LABEL_LIMIT)
    return owned_by("FeatureSet", value)


def run_name(featureset: str, target: Target) -> str:
    parts = [target.version, str(target.snapshot), str(target.previous), target.tick.isoformat() if target.tick else ""]
    if target.attempt:
        parts.append(f"retry-{target.attempt}")
    return dns_name(f"{featureset}-materialize", digest(*parts), MAX_NAME)


def workload(spec: FeatureSetSpec, owner: OwnerRef, namespace: str, definition: FeatureViewDefinition,
             store: Mapping[str, str], lake: LakeAccess, target: Target) -> Workload:
    """The run's workload. `store` is the Feast store as `StoreSettings.to_json` writes it, with an
    empty online connection when the connection lives in a Secret."""
    keys = sorted(lake.secret_keys)
    secret_env = [SecretEnv(pin_env_name(key), lake.secret_name, key) for key in keys if lake.secret_name]
    online_ref = spec.online.connection_secret_ref
    if online_ref is not None:
        secret_env.append(SecretEnv(ONLINE_CONNECTION_ENV, online_ref.name, online_ref.key or CONNECTION_KEY))
    request = MaterializeRequest(
        definition=definition.to_json(),
        store=dict(store),
        lake_catalog_name=lake.catalog_name,
        lake_catalog=dict(lake.properties),
        lake_secret_keys=keys if lake.secret_name else [],
        lake_table=definition.source.lake_table,
        snapshot_id=target.snapshot,
        previous_snapshot_id=target.previous,
        quality=spec.quality,
    )
    return Workload(
        name=run_name(owner.name, target),
        namespace=namespace,
        component=COMPONENT,
        args=("--request", f"@{REQUEST_FILE}"),
        files={REQUEST_FILE: request.model_dump_json()},
        secret_env=tuple(secret_env),
        owner=owner,
        labels=featureset_label(owner.name),
        retries=1,
    )
