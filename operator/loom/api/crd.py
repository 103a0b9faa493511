"""Generate CustomResourceDefinitions from the pydantic models (the models are the source of truth).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema: no $ref,
no anyOf-with-null for optionals, no titles or const, boolean exclusive bounds. This module does that
translation and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loom.api.kinds import KINDS, Kind
from loom.api.meta import GROUP, VERSION, LoomModel, cel

CATEGORY = "loom"
_DROP = {"title", "$defs"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs, collapse Optional[X] to X and rewrite 2020-12 keywords into OpenAPI v3.0."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = _resolve(defs[node.pop("$ref").rsplit("/", 1)[-1]], defs)
        node = _merge(target, node)
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions are not structural: {branches}")
        node = _merge(_resolve(branches[0], defs), node)
    if node.get("default", ...) is None:
        del node["default"]
    if "propertyNames" in node:
        names = node.pop("propertyNames")
        node = _merge(node, {"x-kubernetes-validations": [_key_rule(names)]})
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[limit] = node.pop(bound)
            node[bound] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        elif key == "additionalProperties" and value is False:
            continue  # extra="forbid": not structural; the API server's strict field validation refuses unknowns
        else:
            out[key] = value
    return out


def _key_rule(names: dict[str, Any]) -> dict[str, Any]:
    """A map's key constraints (JSON Schema propertyNames, which OpenAPI v3.0 lacks) as a CEL rule."""
    if set(names) - {"minLength", "maxLength"}:
        raise ValueError(f"only the length of map keys can be constrained: {names}")
    low, high = names.get("minLength", 0), names["maxLength"]
    return cel(f"self.all(k, k.size() >= {low} && k.size() <= {high})",
               f"keys must be {low} to {high} characters long")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Field-level keys win over the referenced model's; CEL rules of both are kept."""
    merged = {**base, **extra}
    rules = base.get("x-kubernetes-validations", []) + extra.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def openapi_schema(model: type[LoomModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _resolve(raw, raw.get("$defs", {}))


def crd(kind: Kind) -> dict[str, Any]:
    """The full CustomResourceDefinition of one kind."""
    spec_schema = openapi_schema(kind.spec)
    status_schema = openapi_schema(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/name": "loom", "app.kubernetes.io/part-of": "loom"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_crd() for c in kind.printer_columns],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "APIVersion of this object, loom.dev/v1alpha1.",
                                },
                                "kind": {"type": "string", "description": f"Kind of this object, {kind.kind}."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    """YAML text of a CRD, stable across runs so `crds/` diffs stay meaningful."""
    header = "# Generated by `make manifests` from operator/loom/api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    """Write one file per kind into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = directory / f"{GROUP}_{kind.plural}.yaml"
        path.write_text(render(kind))
        paths.append(path)
    return paths
