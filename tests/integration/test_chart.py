"""The Helm chart with the real helm CLI (built from the Go module proxy) against the real kube-apiserver.

There is no kubelet, so pods never start: installs use --wait=false, and what is checked is what the
API server holds — the objects, the CRDs, and what RBAC lets the operator's ServiceAccount do.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom import devcluster
from loom.devcluster.binaries import ensure_helm
from loom.gpuprofiles import load_profiles
from tests.conftest import ROOT, eventually
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "loom"
LOOM_CRDS = ("datalakes", "featuresets", "trainingjobs", "inferenceservices")


@dataclass
class Helm:
    binary: Path
    env: dict[str, str]
    kubeconfig: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def template(self, *args: str) -> list[dict[str, Any]]:
        out = self.run("template", "loom", str(CHART), "--namespace", "loom-system", *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def helm(cluster: devcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm at the version pinned in hack/helm/go.mod, with its cache/config/data kept out of $HOME."""
    home = tmp_path_factory.mktemp("helm")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    env |= {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}
    return Helm(ensure_helm(), env, cluster.kubeconfig)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def operator_args(docs: list[dict[str, Any]]) -> list[str]:
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container["command"] + container["args"]


# --- helm lint / template: the chart renders what a platform engineer expects -------------------------


@pytest.mark.parametrize(
    "values",
    [[], ["--set", "watchNamespaces={team-a,team-b}"], ["--set", "serviceMonitor.enabled=true"]],
    ids=["cluster-wide", "namespaced", "servicemonitor"],
)
def test_helm_lint_passes(helm: Helm, values: list[str]) -> None:
    out = helm.run("lint", "--strict", str(CHART), *values).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[ERROR]" not in out and "[WARNING]" not in out


def test_template_cluster_wide(helm: Helm) -> None:
    docs = helm.template()
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service", "ServiceAccount",
    ]
    assert operator_args(docs) == [
        "loom", "run", "--executor=kubernetes", "--metrics-port=8080", "--liveness=http://0.0.0.0:8081/healthz",
    ]
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["image"] == "loom-operator:0.1.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 8080, "healthz": 8081}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Empty defaults stay unset, so the operator's own fallbacks apply.
    assert [e["name"] for e in container["env"]] == ["LOOM_GPU_PROFILES_DIR"]
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "loom", "namespace": "loom-system"}]
    (service,) = by_kind(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_template_namespaced(helm: Helm) -> None:
    docs = helm.template("--set", "watchNamespaces={team-a,team-b}",
                         "--set", "defaults.mlflowTrackingUri=http://mlflow:5000")
    assert operator_args(docs)[:4] == ["loom", "run", "--namespace=team-a", "--namespace=team-b"]
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "Role")) == ["team-a", "team-b"]
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "RoleBinding")) == ["team-a", "team-b"]
    (cluster_role,) = by_kind(docs, "ClusterRole")
    # Cluster-wide the namespaced mode keeps only the two reads Kopf makes outside the watched namespaces.
    assert cluster_role["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert {"name": "LOOM_MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in container["env"]


def test_template_servicemonitor_is_opt_in(helm: Helm) -> None:
    assert not by_kind(helm.template(), "ServiceMonitor")
    (monitor,) = by_kind(helm.template("--set", "serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_template_crds_are_the_generated_ones(helm: Helm) -> None:
    rendered = {d["metadata"]["name"]: d for d in by_kind(helm.template("--include-crds"), "CustomResourceDefinition")}
    committed = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        committed[doc["metadata"]["name"]] = doc
    assert rendered == committed
    assert sorted(rendered) == sorted(f"{plural}.loom.dev" for plural in LOOM_CRDS)


def test_rendered_gpu_profiles_are_what_the_operator_loads(helm: Helm, tmp_path: Path) -> None:
    extra = tmp_path / "values.yaml"
    extra.write_text(yaml.safe_dump({"gpuProfiles": {"extra": {"nvidia-l40s": {
        "description": "One NVIDIA L40S (48 GB) per replica.",
        "gpu": {"count": 1, "resourceName": "nvidia.com/gpu"},
        "resources": {"requests": {"cpu": "8", "memory": "48Gi"}, "limits": {"cpu": "12", "memory": "56Gi"}},
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L40S"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "shmSize": "16Gi",
        "env": {"NCCL_DEBUG": "WARN", "OMP_NUM_THREADS": "6"},
    }}}}))
    (configmap,) = by_kind(helm.template("--values", str(extra)), "ConfigMap")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    for key, text in configmap["data"].items():
        (mounted / key).write_text(text)
    shipped = load_profiles(ROOT / "gpu-profiles")
    loaded = load_profiles(mounted)
    assert loaded.keys() == shipped.keys() | {"nvidia-l40s"}
    assert all(loaded[name] == profile for name, profile in shipped.items())
    assert loaded["nvidia-l40s"].node_selector == {"nvidia.com/gpu.product": "NVIDIA-L40S"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "replicas=2"], "at '/replicas': value must be one of 0, 1"),
        (["--set", "executor=local"], "at '/executor'"),
        (["--set", "watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
        (["--set", "metrics.prot=9090"], "additional properties 'prot' not allowed"),
        (["--set", "serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false"],
         "serviceMonitor.enabled needs metrics.service.enabled"),
    ],
)
def test_bad_values_are_refused(helm: Helm, values: list[str], message: str) -> None:
    proc = helm.run("template", "loom", str(CHART), *values, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


# --- helm install on the real API server -----------------------------------------------------------------


@dataclass
class Release:
    name: str
    namespace: str
    service_account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def fresh_namespace(kubectl: Kubectl, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    return name


@pytest.fixture
def install(helm: Helm, kubectl: Kubectl) -> Iterator[Any]:
    """`install(*values)`: helm install into a fresh namespace; uninstalled (and checked clean) afterwards."""
    releases: list[Release] = []
    namespaces: list[str] = []

    def _install(*values: str) -> Release:
        name = f"loom-{uuid.uuid4().hex[:6]}"  # contains the chart name, so it is also the full name
        release = Release(name, fresh_namespace(kubectl, "chart"), service_account=name)
        namespaces.append(release.namespace)
        out = helm.run("install", release.name, str(CHART), "--namespace", release.namespace,
                       "--wait=false", *values).stdout
        assert "STATUS: deployed" in out
        assert "GPU profiles a TrainingJob can name" in out  # NOTES.txt rendered
        releases.append(release)
        return release

    yield _install
    for release in releases:
        helm.run("uninstall", release.name, "--namespace", release.namespace, "--wait")
        assert release.name not in helm.run("list", "--all-namespaces", "--short").stdout
        cluster_name = f"{release.service_account}-{release.namespace}"
        for kind in ("clusterrole", "clusterrolebinding"):
            eventually(lambda kind=kind: kubectl.run("get", kind, cluster_name, check=False).returncode != 0,
                       what=f"{kind} {cluster_name} deleted")
        leftovers = kubectl.run(
            "get", "deployment,service,configmap,serviceaccount,role,rolebinding", "--all-namespaces",
            "-l", f"app.kubernetes.io/instance={release.name}", "-o", "name").stdout
        assert leftovers.strip() == ""
        # Helm never deletes CRDs: the other tests sharing this cluster keep theirs.
        for plural in LOOM_CRDS:
            kubectl.run("get", "crd", f"{plural}.loom.dev")
    for namespace in namespaces:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


Check = tuple[str, str, str | None]  # verb, resource[.group][/subresource], namespace (None: cluster-wide)


def permissions(kubectl: Kubectl, release: Release, checks: list[Check]) -> dict[Check, bool]:
    """Ask real RBAC with SubjectAccessReviews for the operator's ServiceAccount (one kubectl call for all):
    what `kubectl auth can-i --as` sends, except that the API group is explicit, since can-i resolves
    `pytorchjobs.kubeflow.org` through discovery and, with no such CRD installed, asks about group ""."""
    reviews = []
    for verb, resource, namespace in checks:
        name, _, subresource = resource.partition("/")
        plural, _, group = name.partition(".")
        reviews.append({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": release.user,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{release.namespace}",
                           "system:authenticated"],
                "resourceAttributes": {"verb": verb, "group": group, "resource": plural,
                                       "subresource": subresource, "namespace": namespace or ""},
            },
        })
    listing = {"apiVersion": "v1", "kind": "List", "items": reviews}
    out = kubectl.run("create", "-f", "-", "-o", "yaml", stdin=json.dumps(listing)).stdout
    answers = [review["status"].get("allowed", False) for review in yaml.safe_load_all(out)]
    assert len(answers) == len(checks)
    return dict(zip(checks, answers))


def expect(allowed: list[Check], denied: list[Check]) -> dict[Check, bool]:
    return {**{check: True for check in allowed}, **{check: False for check in denied}}


def can_i(kubectl: Kubectl, release: Release, *args: str) -> bool:
    """The check an administrator runs by hand; only for resources the API server serves."""
    proc = kubectl.run("auth", "can-i", *args, f"--as={release.user}", check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stdout + proc.stderr
    return proc.stdout.strip() == "yes"


# What the operator does in a namespace it watches, and what it must never be able to do there.
ALLOWED = [
    ("get", "datalakes.loom.dev"), ("watch", "trainingjobs.loom.dev"), ("patch", "featuresets.loom.dev"),
    ("patch", "datalakes.loom.dev/status"), ("patch", "inferenceservices.loom.dev/status"),
    ("update", "trainingjobs.loom.dev/finalizers"),
    ("create", "events"), ("patch", "events"),
    ("get", "secrets"),
    ("create", "configmaps"), ("delete", "configmaps"),
    ("create", "jobs.batch"), ("watch", "jobs.batch"), ("patch", "cronjobs.batch"),
    ("get", "pods"), ("list", "pods"),
    ("create", "pytorchjobs.kubeflow.org"), ("create", "trainjobs.trainer.kubeflow.org"),
    ("watch", "trainjobs.trainer.kubeflow.org"), ("patch", "seldondeployments.machinelearning.seldon.io"),
]
DENIED = [
    ("list", "secrets"), ("watch", "secrets"), ("create", "secrets"), ("delete", "secrets"), ("update", "secrets"),
    ("create", "pods"), ("delete", "pods"), ("create", "pods/exec"), ("get", "pods/log"),
    ("delete", "datalakes.loom.dev"), ("create", "trainingjobs.loom.dev"), ("update", "featuresets.loom.dev"),
    ("create", "deployments.apps"), ("create", "serviceaccounts/token"),
    ("create", "trainingruntimes.trainer.kubeflow.org"), ("create", "clustertrainingruntimes.trainer.kubeflow.org"),
    ("create", "roles.rbac.authorization.k8s.io"), ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("delete", "events"),
]


def test_install_cluster_wide(install: Any, kubectl: Kubectl, helm: Helm) -> None:
    release = install()
    kc = kubectl.in_namespace(release.namespace)
    deployment = kc.get("deployment", release.service_account)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == release.service_account
    assert "--namespace" not in " ".join(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    kc.get("service", f"{release.service_account}-metrics")
    profiles = kc.get("configmap", f"{release.service_account}-gpu-profiles")["data"]
    assert {"cpu.yaml", "nvidia-a100-mig-1g-5gb.yaml", "nvidia-h100-80gb.yaml"} <= profiles.keys()
    for plural in LOOM_CRDS:
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s", f"crd/{plural}.loom.dev")

    elsewhere = fresh_namespace(kubectl, "other")
    try:
        namespaces = (release.namespace, elsewhere)
        expected = expect(
            allowed=[(verb, resource, ns) for ns in namespaces for verb, resource in ALLOWED]
            + [("list", "datalakes.loom.dev", None), ("watch", "customresourcedefinitions.apiextensions.k8s.io", None)],
            denied=[(verb, resource, ns) for ns in namespaces for verb, resource in DENIED]
            + [("create", "customresourcedefinitions.apiextensions.k8s.io", None),
               ("delete", "customresourcedefinitions.apiextensions.k8s.io", None),
               ("list", "namespaces", None),  # Kopf reads namespaces only when it watches a subset of them
               ("get", "nodes", None),
               ("create", "clusterrolebindings.rbac.authorization.k8s.io", None)],
        )
        assert permissions(kubectl, release, list(expected)) == expected
        # The same answers through the command an administrator types.
        ns = f"--namespace={elsewhere}"
        assert can_i(kubectl, release, "patch", "datalakes.loom.dev", "--subresource=status", ns)
        assert can_i(kubectl, release, "create", "events", ns)
        assert can_i(kubectl, release, "get", "secrets", ns)
        assert can_i(kubectl, release, "create", "jobs.batch", ns)
        assert not can_i(kubectl, release, "delete", "secrets", ns)
        assert not can_i(kubectl, release, "create", "pods", "--subresource=exec", ns)
    finally:
        kubectl.run("delete", "namespace", elsewhere, "--wait=false", check=False)
    assert release.name in helm.run("list", "--namespace", release.namespace, "--short").stdout


def test_install_namespaced(install: Any, kubectl: Kubectl) -> None:
    watched, unwatched = fresh_namespace(kubectl, "watched"), fresh_namespace(kubectl, "unwatched")
    try:
        release = install("--set", f"watchNamespaces={{{watched}}}")
        args = kubectl.in_namespace(release.namespace).get("deployment", release.service_account)[
            "spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--namespace={watched}" in args
        expected = expect(
            allowed=[(verb, resource, watched) for verb, resource in ALLOWED]
            + [("watch", "namespaces", None), ("list", "customresourcedefinitions.apiextensions.k8s.io", None)],
            # Neither an unwatched namespace nor the operator's own grants anything; nor do all namespaces.
            denied=[(verb, resource, ns) for ns in (unwatched, release.namespace) for verb, resource in ALLOWED]
            + [(verb, resource, watched) for verb, resource in DENIED]
            + [("list", "datalakes.loom.dev", None), ("get", "secrets", None), ("get", "namespaces", None)],
        )
        assert permissions(kubectl, release, list(expected)) == expected
    finally:
        for namespace in (watched, unwatched):
            kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
