"""The Helm chart with the real helm CLI (built from the Go module proxy) against the real kube-apiserver.

There is no kubelet, so pods never start: installs use --wait=false, and what is checked is what the
API server holds — the objects, the CRDs, and what RBAC lets the operator's ServiceAccount do.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom import devcluster
from loom.api.inferenceservice import Revision, Target
from loom.api.kinds import KINDS
from loom.api.meta import GROUP
from loom.api.trainingjob import Backend
from loom.builders.labels import MANAGER
from loom.config import OperatorConfig
from loom.devcluster.binaries import ensure_helm
from loom.domain.rollout import Split
from loom.domain.serving import Serving
from loom.domain.training import Training
from loom.domain.workloads import OwnerRef, PythonEnv, Workload
from loom.drivers.kube import KubeClient
from loom.drivers.kube_http import KubeHttp, from_kubeconfig
from loom.executors.kubernetes import KubernetesExecutor
from loom.executors.kubernetes_training import KINDS as TRAINING_CHILDREN
from loom.gpuprofiles import load_profiles
from loom.handlers.runs import TRAINING_KINDS
from loom.handlers.serving import SERVING_KINDS
from loom.services.inferenceservice.cluster_serving import LAYOUTS, ClusterServing
from tests.conftest import ROOT, eventually
from tests.integration.conftest import Kubectl, sample
from tests.integration.test_serving_manifests import serving_crds  # noqa: F401  (the module's CRDs)
from tests.support.kubeflow import kubeflow_cleanup, kubeflow_crds  # noqa: F401  (fixtures used by name)

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "loom"
LOOM_CRDS = ("datalakes", "featuresets", "trainingjobs", "inferenceservices")
# What the operator's ServiceAccount may do, and why: the one table rbac.yaml renders its rules from.
PERMISSIONS: dict[str, list[dict[str, Any]]] = yaml.safe_load((CHART / "permissions.yaml").read_text())
Grant = tuple[str, str]  # verb, resource as plural[.group][/subresource] (what `kubectl auth can-i` takes)


def rules(*sections: str) -> list[dict[str, list[str]]]:
    """The RBAC rules of these sections of the table, as the chart renders them."""
    return [{key: rule[key] for key in ("apiGroups", "resources", "verbs")}
            for section in sections for rule in PERMISSIONS[section]]


def grants(*sections: str) -> list[Grant]:
    """Every (verb, resource) the rules of these sections grant, one by one."""
    found = []
    for rule in rules(*sections):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                plural, _, subresource = resource.partition("/")
                name = f"{plural}.{group}" if group else plural
                found += [(verb, f"{name}/{subresource}" if subresource else name) for verb in rule["verbs"]]
    return found


def resource(api_version: str, plural: str) -> str:
    group = api_version.rpartition("/")[0]
    return f"{plural}.{group}" if group else plural


def needed_by_the_code() -> set[Grant]:
    """The calls the operator makes in a namespace it watches, from the code's own tables of kinds where
    it has them; server-side apply (a PATCH that creates a missing object) needs patch and create."""
    apply, needed = ("create", "patch"), set()
    for kind in KINDS:  # Kopf: list, watch, patch (progress, finalizer); drivers/kube.py: get, patch status
        loom = f"{kind.plural}.{GROUP}"
        needed |= {(verb, loom) for verb in ("get", "list", "watch", "patch")}
        needed |= {("patch", f"{loom}/status"), ("update", f"{loom}/finalizers")}  # the latter for blockOwnerDeletion
    needed |= {("create", "events"), ("get", "secrets")}  # Kopf's kopf.event; drivers/kube.py get_secret
    # executors/kubernetes.py: files, Jobs, CronJobs, and the pods of a failed Job; handlers/runs.py watches Jobs.
    needed |= {(verb, "configmaps") for verb in (*apply, "delete")}
    needed |= {(verb, "jobs.batch") for verb in ("get", "list", "watch", *apply, "deletecollection")}
    needed |= {(verb, "cronjobs.batch") for verb in ("list", *apply, "delete")}
    needed.add(("list", "pods"))
    for training in TRAINING_CHILDREN.values():  # executors/kubernetes_training.py
        needed |= {(verb, resource(training.api_version, training.plural)) for verb in (*apply, "list", "delete")}
    for layout in LAYOUTS.values():  # services/inferenceservice/cluster_serving.py: apply, list, prune
        for child in layout.kinds:
            needed |= {(verb, resource(child.api_version, child.plural)) for verb in (*apply, "list", "delete")}
    for group, version, plural in (*TRAINING_KINDS, *SERVING_KINDS):  # the handlers' watches
        needed |= {(verb, resource(f"{group}/{version}", plural)) for verb in ("list", "watch")}
    return needed


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
    [[], ["--set", "watchNamespaces={team-a,team-b}"], ["--set", "serviceMonitor.enabled=true"],
     ["--set", "workloadImages.main.repository=loom-main", "--set", "defaults.prometheusUrl=http://prometheus:9090"]],
    ids=["cluster-wide", "namespaced", "servicemonitor", "settings"],
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
    # Empty defaults stay unset, so the operator's own fallbacks apply; the serve image has a default.
    assert container["env"] == [
        {"name": "LOOM_GPU_PROFILES_DIR", "value": "/etc/loom/gpu-profiles"},
        {"name": "LOOM_IMAGE_SERVE", "value": "loom-serve:0.1.0"},
    ]
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert cluster_role["rules"] == rules("cluster", "namespaced")
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
    assert all(role["rules"] == rules("namespaced") for role in by_kind(docs, "Role"))
    (cluster_role,) = by_kind(docs, "ClusterRole")
    # Cluster-wide the namespaced mode keeps only the two reads Kopf makes outside the watched namespaces.
    assert cluster_role["rules"] == rules("cluster", "namespacedMode") == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert {"name": "LOOM_MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in container["env"]


def test_the_permissions_are_exactly_what_the_code_calls() -> None:
    """Every verb on every kind the code applies, lists, watches, reads or deletes is in the table, and
    nothing else is: a kind added to the code without its rule, or a rule the code no longer needs (like
    Seldon Core v1's SeldonDeployments), fails here."""
    granted = grants("namespaced")
    assert len(granted) == len(set(granted)), "a verb granted twice"
    assert set(granted) == needed_by_the_code()
    assert all(rule["why"].strip() for section in PERMISSIONS.values() for rule in section)


# Non-default settings and the environment variables of the operator they become.
SETTINGS = {
    "defaults": {"mlflowTrackingUri": "http://mlflow.mlflow:5000", "prometheusUrl": "http://prometheus.monitoring:9090",
                 "feastRegistry": "postgresql://feast@postgres.feast/registry"},
    "workloadImages": {"serve": {"repository": "registry.example.com:5000/mlops/loom-serve", "tag": "0.2.0"},
                       "main": {"repository": "registry.example.com:5000/mlops/loom-main", "tag": ""}},
}
SETTINGS_ENV = {
    "LOOM_GPU_PROFILES_DIR": "/etc/loom/gpu-profiles",
    "LOOM_IMAGE_MAIN": "registry.example.com:5000/mlops/loom-main:0.1.0",
    "LOOM_IMAGE_SERVE": "registry.example.com:5000/mlops/loom-serve:0.2.0",
    "LOOM_MLFLOW_TRACKING_URI": "http://mlflow.mlflow:5000",
    "LOOM_FEAST_REGISTRY": "postgresql://feast@postgres.feast/registry",
    "LOOM_PROMETHEUS_URL": "http://prometheus.monitoring:9090",
}


def settings_file(tmp_path: Path) -> str:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(SETTINGS))
    return str(path)


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_template_settings_are_the_operators_environment(
    helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (deployment,) = by_kind(helm.template("--values", settings_file(tmp_path)), "Deployment")
    env = container_env(deployment)
    assert env == SETTINGS_ENV
    # The operator reads every one of them under that name.
    for name in [n for n in os.environ if n.startswith("LOOM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = OperatorConfig()
    assert (config.image_main, config.image_serve) == (env["LOOM_IMAGE_MAIN"], env["LOOM_IMAGE_SERVE"])
    assert (config.tracking_uri, config.prometheus_url) == (env["LOOM_MLFLOW_TRACKING_URI"], env["LOOM_PROMETHEUS_URL"])
    assert (config.feast_registry_uri, str(config.gpu_profiles_dir)) == (
        env["LOOM_FEAST_REGISTRY"], env["LOOM_GPU_PROFILES_DIR"])


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
        (["--set", "workloadImages.serve.tag=latest"], "at '/workloadImages/serve/tag'"),
        (["--set", "workloadImages.main.repository=loom-main:0.1.0"], "at '/workloadImages/main/repository'"),
        (["--set", "image.tag=latest"], "at '/image/tag'"),
        (["--set", "defaults.prometheusUrl=prometheus:9090"], "at '/defaults/prometheusUrl'"),
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


# What the operator does in a namespace it watches (the table), and what it must never be able to do there.
ALLOWED = grants("namespaced")
DENIED: list[Grant] = [
    ("list", "secrets"), ("watch", "secrets"), ("create", "secrets"), ("update", "secrets"), ("patch", "secrets"),
    ("delete", "secrets"),
    ("get", "pods"), ("create", "pods"), ("delete", "pods"), ("create", "pods/exec"), ("create", "pods/attach"),
    ("create", "pods/portforward"), ("get", "pods/log"),
    ("get", "configmaps"), ("list", "configmaps"), ("update", "jobs.batch"), ("delete", "jobs.batch"),
    ("delete", "datalakes.loom.dev"), ("create", "trainingjobs.loom.dev"), ("update", "featuresets.loom.dev"),
    ("create", "deployments.apps"), ("create", "serviceaccounts/token"),
    ("create", "trainingruntimes.trainer.kubeflow.org"), ("create", "clustertrainingruntimes.trainer.kubeflow.org"),
    ("create", "serverconfigs.mlops.seldon.io"), ("create", "seldonruntimes.mlops.seldon.io"),
    ("watch", "servers.mlops.seldon.io"), ("get", "servingruntimes.serving.kserve.io"),
    ("create", "seldondeployments.machinelearning.seldon.io"),  # Seldon Core v1: Loom serves on Core 2 only
    ("create", "roles.rbac.authorization.k8s.io"), ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("patch", "events"), ("delete", "events"),
]
CRD = "customresourcedefinitions.apiextensions.k8s.io"
CLUSTER_DENIED: list[Grant] = [
    ("create", CRD), ("patch", CRD), ("delete", CRD), ("get", "nodes"), ("impersonate", "users"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"), ("escalate", "clusterroles.rbac.authorization.k8s.io"),
]


def in_namespaces(checks: list[Grant], *namespaces: str | None) -> list[Check]:
    return [(verb, resource, namespace) for namespace in namespaces for verb, resource in checks]


def test_install_cluster_wide(install: Any, kubectl: Kubectl, helm: Helm, tmp_path: Path) -> None:
    release = install("--values", settings_file(tmp_path))
    kc = kubectl.in_namespace(release.namespace)
    deployment = kc.get("deployment", release.service_account)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == release.service_account
    assert container_env(deployment) == SETTINGS_ENV
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
            allowed=in_namespaces(ALLOWED, *namespaces) + in_namespaces(grants("cluster", "namespaced"), None),
            # Kopf reads namespaces only when it watches a subset of them.
            denied=in_namespaces(DENIED, *namespaces) + in_namespaces(CLUSTER_DENIED + grants("namespacedMode"), None),
        )
        assert permissions(kubectl, release, list(expected)) == expected
        # The same answers through the command an administrator types.
        ns = f"--namespace={elsewhere}"
        assert can_i(kubectl, release, "patch", "datalakes.loom.dev", "--subresource=status", ns)
        assert can_i(kubectl, release, "create", "events", ns)
        assert can_i(kubectl, release, "get", "secrets", ns)
        assert can_i(kubectl, release, "create", "jobs.batch", ns)
        assert not can_i(kubectl, release, "list", "secrets", ns)
        assert not can_i(kubectl, release, "create", "secrets", ns)
        assert not can_i(kubectl, release, "create", "pods", "--subresource=exec", ns)
        assert not can_i(kubectl, release, "delete", "customresourcedefinitions.apiextensions.k8s.io")
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
            allowed=in_namespaces(ALLOWED, watched) + in_namespaces(grants("cluster", "namespacedMode"), None),
            # Neither an unwatched namespace nor the operator's own grants anything; nor do all namespaces.
            denied=in_namespaces(ALLOWED, unwatched, release.namespace, None) + in_namespaces(DENIED, watched)
            + in_namespaces(CLUSTER_DENIED + [("get", "namespaces")], None),
        )
        assert permissions(kubectl, release, list(expected)) == expected
    finally:
        for namespace in (watched, unwatched):
            kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


# --- the operator's own calls, made with the installed ServiceAccount's token ---------------------------


def service_account_api(kubectl: Kubectl, cluster: devcluster.Cluster, release: Release) -> KubeHttp:
    """Loom's client of the cluster, authenticated as the release's ServiceAccount (a bound token)."""
    token = kubectl.run("create", "token", release.service_account, "--namespace", release.namespace,
                        "--duration=10m").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    (entry,) = [c for c in admin["clusters"] if c["name"] == context["cluster"]]
    kubeconfig = cluster.kubeconfig.parent / f"{release.name}.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{**entry, "name": "cluster"}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "cluster", "user": "operator"}}],
    }))
    return from_kubeconfig([kubeconfig])


def owner_of(kc: Kubectl, kind: str, name: str) -> OwnerRef:
    obj = kc.get(kind, name)
    return OwnerRef(obj["apiVersion"], obj["kind"], name, obj["metadata"]["uid"])


def serving(namespace: str, owner: OwnerRef, canary: bool) -> Serving:
    stable = Revision(name="recommender-v3", model_name="recommender", model_version="3",
                      model_uri="s3://mlflow/m-3/artifacts")
    new = Revision(name="recommender-v4", model_name="recommender", model_version="4",
                   model_uri="s3://mlflow/m-4/artifacts") if canary else None
    split = Split(stable.name, new.name if new else None, 10 if new else 0, 0)
    return Serving(name="recommender", namespace=namespace, image="registry.example.com/loom/serve:0.1.0",
                   stable=stable, split=split, canary=new, owner=owner, replicas=1, model_memory="600Mi",
                   extra={"k": 20})


@pytest.mark.usefixtures("serving_crds", "kubeflow_crds", "kubeflow_cleanup")
def test_the_operators_calls_succeed_as_its_service_account(
    install: Any, kubectl: Kubectl, cluster: devcluster.Cluster
) -> None:
    """What the code does in a watched namespace, through Loom's own drivers and executor with the
    ServiceAccount's token, in the narrower (namespaced) mode: every call is allowed, or this fails
    with the API server's Forbidden naming the verb and the resource."""
    watched = fresh_namespace(kubectl, "watched")
    try:
        release = install("--set", f"watchNamespaces={{{watched}}}")
        kc = kubectl.in_namespace(watched)
        kc.apply(sample("datalake"))
        isvc = sample("inferenceservice")
        isvc["metadata"]["annotations"] = {"loom.dev/promote": "true"}
        kc.apply(isvc)
        kc.run("create", "secret", "generic", "lake-credentials", "--from-literal=password=s3cret")
        api = service_account_api(kubectl, cluster, release)
        try:
            # drivers/kube.py: Loom objects, their status and annotations, Secrets by name.
            kube = KubeClient(api)
            datalake, inferenceservice = (next(k for k in KINDS if k.kind == kind) for kind in ("DataLake", "InferenceService"))
            lake_name = sample("datalake")["metadata"]["name"]
            assert kube.get_loom(datalake, watched, lake_name) is not None
            kube.patch_status(datalake, watched, lake_name, {"observedGeneration": 1})
            isvc_name = isvc["metadata"]["name"]
            kube.remove_annotation(inferenceservice, watched, isvc_name, "loom.dev/promote")
            assert kube.get_secret(watched, "lake-credentials") == {"password": "s3cret"}

            # Serving: a canary layout, read back, then the promotion that prunes the retired children.
            backend = ClusterServing(api, MANAGER)
            isvc_owner = owner_of(kc, "inferenceservices.loom.dev", isvc_name)
            for target in Target:
                backend.apply(serving(watched, isvc_owner, canary=True), target)
                layout = serving(watched, isvc_owner, canary=False)
                assert backend.observe(watched, layout.name, target, [layout.stable]).missing is None
                backend.apply(layout, target)

            # Workloads: a Job with its files, a CronJob, a TrainJob and a PyTorchJob; their runs; their removal.
            executor = KubernetesExecutor({PythonEnv.MAIN: "registry.example.com/loom/main:0.1.0"}, api)
            lake_owner = owner_of(kc, "datalakes.loom.dev", lake_name)
            labels = {"loom.dev/datalake": lake_name}
            workloads = [
                Workload("lake-ingest-1a2b", watched, "ingest", files={"catalog.json": "{}"}, owner=lake_owner,
                         labels=labels),
                Workload("lake-maintain", watched, "maintain", owner=lake_owner, labels=labels, schedule="0 3 * * *"),
                *(Workload(f"lake-train-{kind.value.lower()}", watched, "train", files={"train.json": "{}"},
                           owner=lake_owner, labels=labels, training=Training(backend=kind)) for kind in Backend),
            ]
            for workload in workloads:
                executor.submit(workload)
            assert executor.names(watched, labels) == {w.name for w in workloads}
            for workload in workloads:
                executor.runs(watched, workload.name)
                executor.delete(watched, workload.name)
            assert executor.names(watched, labels) == set()
        finally:
            api.close()
    finally:
        kubectl.run("delete", "namespace", watched, "--wait=false", check=False)
