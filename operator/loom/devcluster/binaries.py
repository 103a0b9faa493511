"""Control-plane binaries: built once from the Go module proxy, cached by version outside the repo.

The versions live only in the wrapper modules' go.mod files (``hack/controlplane``, ``hack/etcd``,
``hack/helm``), so bumping a version there is the single edit that makes every caller rebuild into a
new cache dir.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

K8S_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
HELM_MODULE = "helm.sh/helm/v3"
K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kubectl")


class BinariesError(RuntimeError):
    """The binaries could not be located or built."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the cached control-plane executables."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path

    @property
    def bin_dir(self) -> Path:
        """The directory to put on PATH so the matching kubectl is used."""
        return self.kubectl.parent


@dataclass(frozen=True)
class _Component:
    """One wrapper module and what `go build` produces from it into one cache dir."""

    wrapper: str
    module: str
    cache_prefix: str
    packages: tuple[str, ...]
    outputs: tuple[str, ...]
    # Control-plane parts share cache_root(); tools that are not part of the cluster sit beside it.
    controlplane: bool = True


_K8S = _Component(
    wrapper="controlplane",
    module=K8S_MODULE,
    cache_prefix="k8s",
    packages=tuple(f"{K8S_MODULE}/cmd/{name}" for name in K8S_COMMANDS),
    outputs=K8S_COMMANDS,
)
_ETCD = _Component(
    wrapper="etcd",
    module=ETCD_MODULE,
    cache_prefix="etcd",
    packages=(ETCD_MODULE,),
    outputs=("etcd",),
)
_HELM = _Component(
    wrapper="helm",
    module=HELM_MODULE,
    cache_prefix="helm",
    packages=(f"{HELM_MODULE}/cmd/helm",),
    outputs=("helm",),
    controlplane=False,
)


def hack_dir() -> Path:
    """The repo's ``hack`` dir, found by walking up from this file (editable install or source tree)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "hack" / _K8S.wrapper / "go.mod"
        if candidate.is_file():
            return candidate.parent.parent
    raise BinariesError("cannot find hack/controlplane/go.mod above " + str(Path(__file__).resolve()))


def cache_root() -> Path:
    """Where built binaries live: outside the repo so `git clean` never forces a rebuild."""
    base = os.environ.get("LOOM_CACHE_DIR") or str(Path.home() / ".cache" / "loom")
    return Path(base).expanduser() / "controlplane"


def module_version(go_mod: Path, module: str) -> str:
    """The version a go.mod requires for ``module`` (single-line or block ``require`` form)."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    match = pattern.search(go_mod.read_text())
    if match is None:
        raise BinariesError(f"{go_mod} does not require {module}")
    return match.group(1)


def _cache_dir(component: _Component, hack: Path) -> Path:
    version = module_version(hack / component.wrapper / "go.mod", component.module)
    root = cache_root() if component.controlplane else cache_root().parent
    return root / f"{component.cache_prefix}-{version}"


def _complete(directory: Path, outputs: tuple[str, ...]) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in outputs)


def _ldflags(component: _Component, hack: Path) -> str:
    """Strip symbols; stamp Kubernetes' version so `kubectl version` and kubeVersion checks see it."""
    if component is _HELM:
        return _helm_ldflags(hack)
    if component is not _K8S:
        return "-s"
    version = module_version(hack / component.wrapper / "go.mod", component.module)
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return f"-s -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"


def _helm_ldflags(hack: Path) -> str:
    """What helm's own Makefile stamps: its version, and the Kubernetes version of its client-go as the
    default for `helm lint`/`helm template` (unstamped it is 1.20, which fails any kubeVersion >= 1.21)."""
    go_mod = hack / _HELM.wrapper / "go.mod"
    version = module_version(go_mod, HELM_MODULE)
    client_major, client_minor = module_version(go_mod, "k8s.io/client-go").lstrip("v").split(".")[:2]
    major, minor = str(int(client_major) + 1), client_minor
    flags = ["-s", f"-X {HELM_MODULE}/internal/version.version={version}"]
    for pkg in ("pkg/lint/rules", "pkg/chartutil"):
        flags += [f"-X {HELM_MODULE}/{pkg}.k8sVersionMajor={major}", f"-X {HELM_MODULE}/{pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def _go_build(component: _Component, hack: Path, out_dir: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise BinariesError("the `go` toolchain is needed to build the control plane; put it on PATH")
    # One package is named by -o itself (etcd's would otherwise be called `server`); several need a dir.
    output = str(out_dir / component.outputs[0]) if len(component.packages) == 1 else f"{out_dir}/"
    cmd = [go, "build", "-C", str(hack / component.wrapper), "-trimpath", f"-ldflags={_ldflags(component, hack)}",
           "-o", output, *component.packages]
    log.info("building %s (several minutes on a cold Go cache): %s", component.cache_prefix, " ".join(cmd))
    started = time.monotonic()
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-30:])
        raise BinariesError(f"go build of {component.cache_prefix} failed ({result.returncode}):\n{tail}")
    log.info("built %s in %.0f s", component.cache_prefix, time.monotonic() - started)


def _ensure(component: _Component, hack: Path, build: bool) -> Path:
    """Return the complete cache dir, building into a sibling temp dir then renaming it into place.

    The rename is atomic, so an interrupted build leaves at most a stray temp dir, never a half cache.
    """
    target = _cache_dir(component, hack)
    if _complete(target, component.outputs):
        return target
    if not build:
        raise BinariesError(f"{target} is missing; run hack/build-controlplane.sh")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _go_build(component, hack, staging)
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the binaries from other users of a shared cache
        if not _complete(target, component.outputs):  # a concurrent build may have finished first
            shutil.rmtree(target, ignore_errors=True)  # incomplete leftover, e.g. a manual copy
            staging.rename(target)
    except OSError:
        if not _complete(target, component.outputs):  # losing the rename race is fine
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_binaries(build: bool = True) -> Binaries:
    """Paths of etcd, kube-apiserver, kube-controller-manager and kubectl, building them if absent."""
    hack = hack_dir()
    k8s = _ensure(_K8S, hack, build)
    etcd = _ensure(_ETCD, hack, build)
    return Binaries(
        etcd=etcd / "etcd",
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kubectl=k8s / "kubectl",
    )


def ensure_helm() -> Path:
    """Path of the helm CLI pinned in hack/helm/go.mod, building it on first use (about two minutes)."""
    return _ensure(_HELM, hack_dir(), build=True) / "helm"
