"""`loom` command line: run the operator, manage the local control plane, generate manifests."""

from __future__ import annotations

import argparse
import ctypes
import difflib
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CRD_DIR = Path("crds")
# Imported by a dependency whenever it is installed, never used by the operator: Feast imports torch
# (about 560 MiB resident with its CUDA libraries) for tensor results the operator never asks for.
# Training imports it in its own processes. Kopf imports the Kubernetes client libraries whenever they
# are installed (for their types, and to log in with them): `kubernetes.client` alone is ~60 MiB
# resident, and Loom talks to the API server with its own small client (drivers/kube_http.py).
NOT_IN_OPERATOR = ("torch", "kubernetes", "kubernetes_asyncio", "pykube")
TRIM_SECONDS = 30.0


def lean_process() -> None:
    """Keep the operator process small: an import of a module of NOT_IN_OPERATOR raises ImportError,
    which Feast handles as torch being absent; and free memory goes back to the system every
    TRIM_SECONDS. glibc's malloc returns only the top of its heap by itself, so after a burst (many
    objects reconciled or deleted at once) the pages freed below live data stay resident;
    `malloc_trim(0)` releases them (measured: 203 to 155 MiB after deleting 1,000 objects)."""
    for name in NOT_IN_OPERATOR:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    if trim is not None:
        threading.Thread(target=_trim_every, args=(trim, TRIM_SECONDS), name="loom-malloc-trim", daemon=True).start()


def _trim_every(trim: Callable[[int], object], seconds: float) -> None:
    while True:
        time.sleep(seconds)
        trim(0)


def _run(args: argparse.Namespace) -> int:
    lean_process()
    import kopf

    from loom import logs
    from loom.config import OperatorConfig
    from loom.handlers import build_registry

    flags = {"metrics_port": args.metrics_port, "executor": args.executor}
    config = OperatorConfig(**{k: v for k, v in flags.items() if v is not None})  # flags win over LOOM_*
    logs.configure(config.log_format, verbose=args.verbose)
    kopf.run(
        registry=build_registry(config),
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=True,
        liveness_endpoint=args.liveness,
    )
    return 0


def _manifests(args: argparse.Namespace) -> int:
    from loom.api.crd import render, write_all
    from loom.api.kinds import KINDS
    from loom.api.meta import GROUP
    from loom.chartsync import stale_chart_files, sync_chart

    if not args.check:
        for path in write_all(args.output):
            print(path)
        for path in sync_chart(Path(".")):
            print(path)
        return 0
    stale = []
    for kind in KINDS:
        path = args.output / f"{GROUP}_{kind.plural}.yaml"
        want = render(kind)
        have = path.read_text() if path.exists() else ""
        if have != want:
            stale.append(path)
            sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), str(path), "generated"))
    if stale:
        print(f"{len(stale)} CRD(s) out of date; run `make manifests`", file=sys.stderr)
        return 1
    if stale_chart_files(Path(".")):
        print("chart copies out of date; run `make manifests`", file=sys.stderr)
        return 1
    return 0


def _dev(args: argparse.Namespace) -> int:
    from loom import devcluster

    state_dir = args.state_dir
    if args.action == "up":
        cluster = devcluster.up(state_dir)
        print(f"control plane ready at {cluster.server}; kubeconfig {cluster.kubeconfig}", file=sys.stderr)
        print(devcluster.env(state_dir))
    elif args.action == "down":
        devcluster.down(state_dir, purge=args.purge)
    else:
        print(devcluster.env(state_dir))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loom", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster")
    run.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable)")
    run.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, 0 disables (LOOM_METRICS_PORT; 8080)")
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL")
    run.add_argument("--executor", choices=("kubernetes", "local"),
                     help="where workloads run: Kubernetes Jobs, or local processes (LOOM_EXECUTOR; kubernetes)")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)

    man = sub.add_parser("manifests", help="generate crds/*.yaml from the API models")
    man.add_argument("--output", type=Path, default=CRD_DIR)
    man.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    man.set_defaults(func=_manifests)

    dev = sub.add_parser("dev", help="the embedded local control plane (etcd + kube-apiserver)")
    dev.add_argument("action", choices=("up", "down", "env"))
    dev.add_argument("--state-dir", type=Path, default=None)
    dev.add_argument("--purge", action="store_true", help="with down: also delete the etcd data")
    dev.set_defaults(func=_dev)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "run":  # `loom run` configures logging through loom.logs
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
