"""The spec schema of each kind, read from the generated CRDs and translated to plain JSON Schema
for hypothesis-jsonschema: Kubernetes-only keywords (x-kubernetes-*, CEL rules) are dropped, objects
are closed (the API server prunes or, strictly, refuses unknown fields), and sizes are capped so a
draw stays small and fast; the huge values are the mutations' job."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from tests.conftest import ROOT

GROUP = "loom.dev"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class FuzzKind:
    """One custom resource as the fuzzer addresses it."""

    kind: str
    plural: str
    sample: str  # samples/<sample>.yaml

    @property
    def short(self) -> str:
        return {"DataLake": "dl", "FeatureSet": "fs", "TrainingJob": "tj", "InferenceService": "is"}[self.kind]


KINDS = (
    FuzzKind("DataLake", "datalakes", "datalake"),
    FuzzKind("FeatureSet", "featuresets", "featureset"),
    FuzzKind("TrainingJob", "trainingjobs", "trainingjob"),
    FuzzKind("InferenceService", "inferenceservices", "inferenceservice"),
)

MAX_ITEMS = 3
MAX_PROPERTIES = 3
MAX_LENGTH = 64  # for strings without a pattern; a pattern already bounds what is drawn


@cache
def crd_spec_schema(plural: str) -> dict[str, Any]:
    """openAPIV3Schema.properties.spec of crds/loom.dev_<plural>.yaml, as committed."""
    crd = yaml.safe_load((ROOT / "crds" / f"{GROUP}_{plural}.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == VERSION)
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def to_json_schema(node: Any) -> Any:
    """A structural schema node as JSON Schema draft 4/7, bounded for generation."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "default", "format"):
            continue
        out[key] = to_json_schema(value)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.get("type") == "array":
        out["maxItems"] = min(out.get("maxItems", MAX_ITEMS), MAX_ITEMS)
    if out.get("type") == "object" and "additionalProperties" in out and "properties" not in out:
        out["maxProperties"] = min(out.get("maxProperties", MAX_PROPERTIES), MAX_PROPERTIES)
    if out.get("type") == "string" and "pattern" not in out and "enum" not in out:
        out["maxLength"] = min(out.get("maxLength", MAX_LENGTH), MAX_LENGTH)
    return out


def spec_json_schema(plural: str) -> dict[str, Any]:
    schema: dict[str, Any] = to_json_schema(crd_spec_schema(plural))
    return schema
