"""Seeded fuzz cases per kind: specs drawn from the CRD schema with hypothesis-jsonschema, and
mutations of the sample manifest. The same (kind, count, seed, sandbox) gives the same cases.

Everything that would reach the file system or the network (catalog and registry URIs, warehouses,
ingest sources, compaction engines) is first pointed into the run's sandbox directory or at a closed
loopback port, so a fuzzed DataLake never writes outside the run's temp dir nor calls out."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis_jsonschema import from_schema

from tests.conftest import ROOT
from tests.fuzz.mutations import MUTATIONS
from tests.fuzz.schemas import GROUP, VERSION, FuzzKind, spec_json_schema

SCHEMA_SHARE = 0.4  # of the cases per kind; the rest are mutations of the sample
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once
_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Case:
    """One manifest to submit: where it came from and the field its mutation aimed at, if any."""

    kind: FuzzKind
    index: int
    origin: str  # "schema", "sample" or "mutation:<name>"
    target: str | None
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest.get("metadata", {}).get("name", ""))


def draw_specs(kind: FuzzKind, count: int, seed_value: int) -> list[dict[str, Any]]:
    """`count` specs valid against the schema (CEL rules aside), deterministic for a seed."""
    strategy = from_schema(spec_json_schema(kind.plural))
    drawn: list[dict[str, Any]] = []
    attempt = 0
    while len(drawn) < count:
        batch: list[dict[str, Any]] = []

        @settings(max_examples=count - len(drawn), database=None, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        @seed(seed_value * _SEED_STRIDE + attempt)
        @given(strategy)
        def collect(spec: dict[str, Any]) -> None:
            batch.append(spec)

        collect()
        drawn.extend(batch)
        attempt += 1
    return drawn[:count]


def sample(kind: FuzzKind) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "samples" / f"{kind.sample}.yaml").read_text())
    return manifest


def sandbox(kind: FuzzKind, spec: Any, root: Path, index: int) -> None:
    """Point what reaches disk or network into `root` (or a closed port); cap costly workloads."""
    if not isinstance(spec, dict):
        return
    home = root / f"{kind.short}-{index:05d}"
    if kind.kind == "DataLake":
        catalog = spec.get("catalog")
        if isinstance(catalog, dict):
            uri = {"sql": f"sqlite:///{home}/catalog.db", "rest": f"http://{CLOSED}", "hive": f"thrift://{CLOSED}"}
            catalog["uri"] = uri.get(catalog.get("type"), f"http://{CLOSED}")  # type: ignore[arg-type]
            catalog["warehouse"] = f"file://{home}/warehouse"
            if isinstance(catalog.get("properties"), dict):
                for key in ("uri", "warehouse", "py-io-impl", "glue.endpoint", "s3.endpoint"):
                    catalog["properties"].pop(key, None)
        for i, ingest in enumerate(spec.get("ingest") or []):
            if isinstance(ingest, dict) and isinstance(ingest.get("source"), dict):
                ingest["source"]["uri"] = f"file://{home}/incoming/{i}/*"
        compaction = (spec.get("maintenance") or {}).get("compaction") if isinstance(spec.get("maintenance"), dict) else None
        if isinstance(compaction, dict):
            compaction["engine"] = "pyiceberg"  # a Spark JVM per tick would starve the 2-core machine
    if kind.kind == "FeatureSet" and isinstance(spec.get("registry"), dict):
        spec["registry"]["uri"] = f"sqlite:///{home}/registry.db"
    if kind.kind == "TrainingJob" and isinstance(spec.get("tracking"), dict):
        spec["tracking"]["trackingUri"] = f"http://{CLOSED}"


def link(kind: FuzzKind, spec: dict[str, Any], index: int) -> None:
    """Point a sample's references at the cases of the same index of the other kinds, which the
    runner puts in the same namespace, so dependency links and their triggers are exercised."""
    names = {short: f"{short}-{index:05d}" for short in ("dl", "fs", "tj")}
    if kind.kind == "FeatureSet":
        spec["source"]["dataLakeRef"]["name"] = names["dl"]
    if kind.kind == "TrainingJob":
        spec["dataset"]["featureSetRef"]["name"] = names["fs"]
        spec["dataset"]["labels"]["dataLakeRef"]["name"] = names["dl"]
    if kind.kind == "InferenceService":  # following the TrainingJob's versions instead of an alias
        spec["model"] = {"trainingJobRef": {"name": names["tj"]}}
        spec.get("rollout", {}).get("canary", {}).pop("fromAlias", None)
        spec["predictor"]["featureSetRef"]["name"] = names["fs"]


def manifest(kind: FuzzKind, name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind.kind, "metadata": {"name": name}, "spec": spec}


def cases(kind: FuzzKind, count: int, seed_value: int, root: Path) -> list[Case]:
    """`count` cases for `kind`: the sample itself first, then schema draws and mutations interleaved
    by a seeded shuffle."""
    rng = random.Random(f"{seed_value}/{kind.kind}")
    n_schema = round(count * SCHEMA_SHARE) if count > 1 else 0
    specs = draw_specs(kind, n_schema, seed_value) if n_schema else []
    origins = ["schema"] * n_schema + ["mutation"] * (count - n_schema)
    rng.shuffle(origins)
    if origins:
        origins[0] = "sample"
    out: list[Case] = []
    drawn = iter(specs)
    base = sample(kind)
    for index, origin in enumerate(origins):
        name = f"{kind.short}-{index:05d}"
        if origin == "schema":
            obj = manifest(kind, name, next(drawn))
            sandbox(kind, obj["spec"], root, index)
            out.append(Case(kind, index, "schema", None, obj))
            continue
        obj = manifest(kind, name, copy.deepcopy(base["spec"]))
        sandbox(kind, obj["spec"], root, index)
        link(kind, obj["spec"], index)
        if origin == "sample":
            out.append(Case(kind, index, "sample", None, obj))
            continue
        out.append(_mutated(kind, index, obj, rng))
    return out


def _mutated(kind: FuzzKind, index: int, base: dict[str, Any], rng: random.Random) -> Case:
    """A mutation that changes the manifest (one that finds nothing to aim at, such as a cron edge
    case on a kind without schedules, gives way to another)."""
    unchanged = json.dumps(base, sort_keys=True)
    for _ in range(20):
        obj = copy.deepcopy(base)
        label = rng.choice(sorted(MUTATIONS))
        target = MUTATIONS[label](obj, rng)
        if json.dumps(obj, sort_keys=True) != unchanged:
            return Case(kind, index, f"mutation:{label}", target, obj)
    raise AssertionError(f"no mutation changed {kind.kind} {index}")
