"""The CRDs in crds/ are exactly what the API models generate, and are structural and documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.crd import crd, render
from loom.api.kinds import KINDS, Kind
from loom.api.meta import GROUP

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_committed_crd_matches_models(kind: Kind) -> None:
    path = ROOT / "crds" / f"{GROUP}_{kind.plural}.yaml"
    assert path.read_text() == render(kind), f"{path} is stale: run `make manifests`"


def _walk(node: dict[str, Any], path: str):
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural_and_every_field_is_described(kind: Kind) -> None:
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, kind.kind):
        forbidden = {"$ref", "anyOf", "oneOf", "allOf", "const", "title", "$defs"} & node.keys()
        assert not forbidden, f"{path} is not structural: {forbidden}"
        assert node.get("additionalProperties") is not False, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        if "default" in node and "enum" in node:
            assert node["default"] in node["enum"], path
    for section in ("spec", "status"):
        for path, node in _walk(schema["properties"][section], f"{kind.kind}.{section}"):
            if not path.endswith("[]") and not path.endswith("{}"):
                assert node.get("description"), f"{path} has no description (kubectl explain would be empty)"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_names_status_and_columns(kind: Kind) -> None:
    doc = yaml.safe_load(render(kind))
    names = doc["spec"]["names"]
    assert names["categories"] == ["loom"]
    assert names["shortNames"]
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Ready", "Reason", "Age"} <= set(columns)


def test_immutable_fields_carry_transition_rules() -> None:
    spec = crd(KINDS[0])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec["properties"]["catalog"]["properties"]["type"]["x-kubernetes-validations"]
    assert {"rule": "self == oldSelf", "message": "catalog.type is immutable"} in rules


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_free_form_value_is_bounded(kind: Kind) -> None:
    """No string, list or map the API server accepts is unbounded: Kopf keeps the last handled spec in
    an annotation, and Kubernetes refuses more than 256 KiB of annotations, stranding the object."""
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for section in ("spec", "status"):
        for path, node in _walk(schema["properties"][section], f"{kind.kind}.{section}"):
            if node.get("type") == "string" and "enum" not in node and node.get("format") != "date-time":
                assert node.get("maxLength"), f"{path} has no maxLength"
            if node.get("type") == "array":
                assert node.get("maxItems"), f"{path} has no maxItems"
            if isinstance(node.get("additionalProperties"), dict):
                assert node.get("maxProperties"), f"{path} has no maxProperties"
                rules = [r["rule"] for r in node.get("x-kubernetes-validations", [])]
                assert any(r.startswith("self.all(k, k.size()") for r in rules), f"{path} has unbounded keys"


def test_map_keys_and_durations_become_cel_rules() -> None:
    spec = crd(KINDS[0])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    properties = spec["properties"]["catalog"]["properties"]["properties"]
    assert "propertyNames" not in properties
    assert properties["x-kubernetes-validations"] == [
        {"rule": "self.all(k, k.size() >= 1 && k.size() <= 253)", "message": "keys must be 1 to 253 characters long"}
    ]
    older = spec["properties"]["maintenance"]["properties"]["expireSnapshots"]["properties"]["olderThan"]
    assert [r["message"] for r in older["x-kubernetes-validations"]] == ["must be at most 3650d (10 years)"]
