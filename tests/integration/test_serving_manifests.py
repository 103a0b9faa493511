"""Every golden serving manifest (tests/unit/golden/serving/) is server-side applied to the real
kube-apiserver with the minimal Seldon Core 2 and KServe CRDs of tests/crds/, with strict field
validation, and read back unchanged: nothing the builders write is refused or pruned. The children
belong to a real Loom InferenceService, so the garbage collector leaves them alone."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.builders.labels import MANAGER
from tests.conftest import ROOT, eventually
from tests.integration.conftest import Kubectl, sample

pytestmark = pytest.mark.integration

CRDS = (ROOT / "tests" / "crds" / "seldon", ROOT / "tests" / "crds" / "kserve")
GOLDEN = ROOT / "tests" / "unit" / "golden" / "serving"
GROUP_VERSIONS = ("mlops.seldon.io/v1alpha1", "serving.kserve.io/v1beta1", "serving.kserve.io/v1alpha1")
# Fully qualified: Loom's own InferenceService shares KServe's plural.
RESOURCES = {
    "Server": "servers.mlops.seldon.io",
    "Model": "models.mlops.seldon.io",
    "Experiment": "experiments.mlops.seldon.io",
    "ServingRuntime": "servingruntimes.serving.kserve.io",
    "InferenceService": "inferenceservices.serving.kserve.io",
}


def _served(kubectl: Kubectl, group_version: str) -> bool:
    return kubectl.run("get", "--raw", f"/apis/{group_version}", check=False).returncode == 0


@pytest.fixture(scope="module")
def serving_crds(kubectl: Kubectl) -> Iterator[None]:
    """Seldon's Server, Model, Experiment and KServe's InferenceService, ServingRuntime, removed after
    the module so other tests find the default control plane."""
    for crds in CRDS:
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
    for group_version in GROUP_VERSIONS:
        eventually(partial(_served, kubectl, group_version), what=f"{group_version} to be served")
    yield
    for crds in CRDS:
        kubectl.run("delete", "--ignore-not-found", "--wait=true", "--timeout=60s", "-f", str(crds))


def _owned(manifests: list[dict[str, Any]], namespace: str, uid: str) -> list[dict[str, Any]]:
    """The golden manifests in the test's namespace, owned by the test's InferenceService."""
    placed = copy.deepcopy(manifests)
    for manifest in placed:
        manifest["metadata"]["namespace"] = namespace
        for ref in manifest["metadata"].get("ownerReferences", []):
            ref["uid"] = uid
    return placed


def _owner(kc: Kubectl, name: str) -> str:
    owner = sample("inferenceservice")
    owner["metadata"]["name"] = name
    kc.apply(owner)
    uid: str = kc.get("inferenceservices.loom.dev", name)["metadata"]["uid"]
    return uid


def _apply(kc: Kubectl, manifest: dict[str, Any], check: bool = True) -> Any:
    return kc.run("apply", "--server-side", f"--field-manager={MANAGER}", "--validate=strict", "-f", "-",
                  stdin=yaml.safe_dump(manifest), check=check)


@pytest.mark.usefixtures("serving_crds")
@pytest.mark.parametrize("golden", sorted(p.name for p in GOLDEN.glob("*.yaml")))
def test_every_golden_manifest_is_applied_and_read_back(kc: Kubectl, namespace: str, golden: str) -> None:
    manifests = list(yaml.safe_load_all((GOLDEN / golden).read_text()))
    owner = manifests[0]["metadata"]["ownerReferences"][0]["name"]
    for manifest in _owned(manifests, namespace, _owner(kc, owner)):
        _apply(kc, manifest)
        found = kc.get(RESOURCES[manifest["kind"]], manifest["metadata"]["name"])
        assert found["apiVersion"] == manifest["apiVersion"]
        assert found["spec"] == manifest["spec"], f"{manifest['kind']} {manifest['metadata']['name']} changed"
        for key in ("labels", "annotations", "ownerReferences"):
            assert found["metadata"].get(key) == manifest["metadata"].get(key)


@pytest.mark.usefixtures("serving_crds")
@pytest.mark.parametrize(("golden", "kind", "path", "value"), [
    ("seldon-canary.yaml", "Model", ("spec", "storageURI"), "s3://x"),
    ("seldon-canary.yaml", "Experiment", ("spec", "candidates", 0, "percent"), 10),
    ("kserve-canary.yaml", "InferenceService", ("spec", "canary", 0, "weight"), 10),
    ("kserve-canary.yaml", "InferenceService", ("spec", "canary", 0, "trafficPercent"), 101),
])
def test_the_minimal_crds_refuse_what_the_real_ones_refuse(
    kc: Kubectl, namespace: str, golden: str, kind: str, path: tuple[Any, ...], value: Any
) -> None:
    """A misspelt field or an out-of-range weight is refused, not pruned: the CRDs are not a sieve."""
    manifest = next(m for m in yaml.safe_load_all((GOLDEN / golden).read_text()) if m["kind"] == kind)
    manifest["metadata"] = {"name": "refused", "namespace": namespace}
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    result = _apply(kc, manifest, check=False)
    assert result.returncode != 0, f"{kind} with {path} = {value!r} was accepted"
    assert str(path[-1]) in result.stderr, result.stderr


def test_the_crd_files_name_every_kind_the_builders_emit() -> None:
    kinds = {m["kind"] for p in GOLDEN.glob("*.yaml") for m in yaml.safe_load_all(p.read_text())}
    defined = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for d in CRDS for p in Path(d).glob("*.yaml")}
    assert kinds == defined == set(RESOURCES)
