"""The generated CRDs as kubectl users meet them."""

from __future__ import annotations

from tests.integration.conftest import Kubectl, sample


def test_four_crds_are_established(kubectl: Kubectl, crds: None) -> None:
    names = kubectl.run("get", "crd", "-o", "name").stdout.split()
    for plural in ("datalakes", "featuresets", "trainingjobs", "inferenceservices"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.loom.dev" in names


def test_explain_prints_field_descriptions(kubectl: Kubectl, crds: None) -> None:
    out = kubectl.run("explain", "datalake.spec").stdout
    assert "Desired Iceberg namespace and tables." in out
    assert "Retain keeps the tables when the DataLake is deleted" in out
    nested = kubectl.run("explain", "trainingjob.spec.model.alias").stdout
    assert "MLflow alias moved to the new version when it passes the evaluation gate" in nested


def test_category_and_short_names(kc: Kubectl) -> None:
    kc.apply(sample("datalake"))
    kc.apply(sample("featureset"))
    listed = kc.run("get", "loom", "-o", "name").stdout.split()
    assert "datalake.loom.dev/movielens" in listed
    assert "featureset.loom.dev/user-features" in listed
    assert "movielens" in kc.run("get", "dl").stdout
    table = kc.run("get", "datalake", "movielens").stdout.splitlines()[0].split()
    assert table[:4] == ["NAME", "CATALOG", "NAMESPACE", "TABLES"]
