"""What every workload of one DataLake shares: whom it belongs to, and how it reaches the catalog —
the plain catalog properties as JSON in a workload file (they may be far larger than one environment
variable or argument may be), each credential from the catalog's Secret into an environment variable
of its own, named on the command line only by that variable (the `--catalog-name`,
`--catalog-properties-file` and `--secret-property` options the lake components take)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from loom.api.datalake import DataLakeSpec
from loom.builders.labels import owned_by
from loom.domain.workloads import OwnerRef, SecretEnv, Workload, digest, dns_name

CATALOG_FILE = "catalog.json"
# The same for every workload, so names are digests of the file's content and of the other arguments.
CATALOG_FILE_ARGS = ("--catalog-properties-file", CATALOG_FILE)
SECRET_ENV = "LOOM_CATALOG_SECRET_{}"
# Runs of a schedule are disposable: their outcome is in the table and in the DataLake's conditions.
SCHEDULED_RUN_TTL_SECONDS = 86400


@dataclass(frozen=True)
class LakeRef:
    """The DataLake whose workloads are built. `catalog_properties` are the plain ones (never the
    Secret's values); `secret_keys` are the keys of the catalog Secret that join them at run time."""

    namespace: str
    owner: OwnerRef
    catalog_properties: Mapping[str, str]
    secret_keys: tuple[str, ...] = ()

    @property
    def labels(self) -> dict[str, str]:
        return owned_by(self.owner.kind, self.owner.name)


@dataclass(frozen=True)
class CatalogAccess:
    """`properties` is the content of the workload's CATALOG_FILE; `args` name the catalog and the
    secret properties (CATALOG_FILE_ARGS come on top)."""

    properties: str
    secret_env: tuple[SecretEnv, ...]
    args: tuple[str, ...]

    @property
    def files(self) -> dict[str, str]:
        return {CATALOG_FILE: self.properties}


def catalog_access(spec: DataLakeSpec, lake: LakeRef) -> CatalogAccess:
    properties = json.dumps(dict(lake.catalog_properties), sort_keys=True)
    ref = spec.catalog.secret_ref
    secret_env = tuple(
        SecretEnv(SECRET_ENV.format(i), ref.name, key) for i, key in enumerate(sorted(lake.secret_keys))
    ) if ref is not None else ()
    args = (
        "--catalog-name", spec.catalog.name,
        *(a for s in secret_env for a in ("--secret-property", f"{s.key}={s.name}")),
    )
    return CatalogAccess(properties, secret_env, args)


def lake_workload(spec: DataLakeSpec, lake: LakeRef, component: str, base: str, args: tuple[str, ...],
                  schedule: str | None, name_parts: tuple[str, ...] = ()) -> Workload:
    """A workload of the DataLake that reaches its catalog: the component's own `args` after the catalog
    options, named `<base>-<hash>` over the catalog properties, `name_parts` and the arguments, so a
    change to any of them is a new workload and the same spec always builds the same one."""
    access = catalog_access(spec, lake)
    own = (*access.args, *args)
    return Workload(
        name=dns_name(base, digest(access.properties, *name_parts, *own)),
        namespace=lake.namespace,
        component=component,
        args=(*CATALOG_FILE_ARGS, *own),
        files=access.files,
        secret_env=access.secret_env,
        owner=lake.owner,
        labels=lake.labels,
        schedule=schedule,
        ttl_seconds_after_finished=SCHEDULED_RUN_TTL_SECONDS if schedule else None,
    )
